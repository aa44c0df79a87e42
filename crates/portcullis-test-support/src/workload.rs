//! The command line of a fixed-workload program: a `harness = false` bench
//! target that callgrind or `perf stat` runs, rather than criterion.
//!
//! Such a program takes its mode and counts as words:
//! `cargo bench --bench NAME -- MODE [COUNT]` runs it with those words (and
//! the `--bench` flag Cargo appends, which is ignored), as does running the
//! built binary directly. `cargo test --benches` runs it with no words at
//! all: then it is a smoke test, and [`Args::requests`] is small.
//!
//! ```
//! use portcullis_test_support::workload::Args;
//!
//! let args = Args::from_words(["hit", "5000", "--bench"]);
//! assert_eq!(args.word(0), Some("hit"));
//! assert_eq!(args.requests(1, 200_000), 5_000);
//!
//! // As `cargo test --benches` runs it.
//! let smoke = Args::from_words(Vec::<String>::new());
//! assert_eq!(smoke.word(0), None);
//! assert_eq!(smoke.requests(1, 200_000), 100);
//! ```

/// The requests of a smoke run: enough to exercise the workload once.
const SMOKE_REQUESTS: u32 = 100;

/// A fixed-workload program's words, without the flags Cargo passes.
#[derive(Clone, Debug)]
pub struct Args {
    words: Vec<String>,
    smoke: bool,
}

impl Args {
    /// The process's arguments, without the program's name.
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_words(std::env::args().skip(1))
    }

    /// These arguments: with none at all, a smoke run (`cargo test
    /// --benches`); words starting with `--` (Cargo's `--bench`) are
    /// dropped.
    #[must_use]
    pub fn from_words<I>(arguments: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let arguments: Vec<String> = arguments.into_iter().map(Into::into).collect();
        let smoke = arguments.is_empty();
        let words = arguments
            .into_iter()
            .filter(|argument| !argument.starts_with("--"))
            .collect();
        Self { words, smoke }
    }

    /// The word at `index`, if given.
    #[must_use]
    pub fn word(&self, index: usize) -> Option<&str> {
        self.words.get(index).map(String::as_str)
    }

    /// The number of requests: the word at `index` if it is one, else
    /// `default`; in a smoke run, at most 100.
    #[must_use]
    pub fn requests(&self, index: usize, default: u32) -> u32 {
        if self.smoke {
            return default.min(SMOKE_REQUESTS);
        }
        self.word(index)
            .and_then(|word| word.parse().ok())
            .unwrap_or(default)
    }
}

/// Sends `requests` requests, each made by `request`, through `service`
/// when `layered`, else through [`Bare`](crate::Bare) (the loop's own cost,
/// a layer's fixed workload's bare mode); each is answered at once, as
/// [`status_now`](crate::status_now) needs. Checks their statuses and
/// answers the sum of the status codes (for `black_box`).
///
/// Every status must be `200`; when `refused_after_first` (a layer whose
/// limit is 1), the first `200` and the rest `429`.
///
/// ```
/// use portcullis_test_support::Bare;
/// use portcullis_test_support::workload::drive;
///
/// assert_eq!(drive(&mut Bare, true, false, 3, || http::Request::new(())), 600);
/// ```
///
/// # Panics
///
/// If a status differs, or an answer is not ready at once.
pub fn drive<S, B>(
    service: &mut S,
    layered: bool,
    refused_after_first: bool,
    requests: u32,
    mut request: impl FnMut() -> http::Request<()>,
) -> u64
where
    S: tower_service::Service<
            http::Request<()>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        >,
{
    let statuses: u64 = (0..requests)
        .map(|_| {
            let status = if layered {
                crate::status_now(service, request())
            } else {
                crate::status_now(&mut crate::Bare, request())
            };
            u64::from(status.as_u16())
        })
        .sum();
    let expected = if refused_after_first {
        200 + 429 * u64::from(requests.saturating_sub(1))
    } else {
        200 * u64::from(requests)
    };
    assert_eq!(
        statuses, expected,
        "every request admitted, or refused past a limit of 1"
    );
    statuses
}

#[cfg(test)]
mod tests {
    use super::Args;

    #[test]
    fn cargo_bench_flag_alone_runs_the_default_workload() {
        let args = Args::from_words(["--bench"]);
        assert_eq!(args.word(0), None);
        assert_eq!(args.requests(1, 200_000), 200_000);
    }

    #[test]
    fn a_word_that_is_not_a_number_leaves_the_default() {
        let args = Args::from_words(["layer", "day"]);
        assert_eq!(args.word(1), Some("day"));
        assert_eq!(args.requests(1, 20_000), 20_000);
        assert_eq!(args.requests(2, 20_000), 20_000);
    }
}
