//! Where buckets live: the [`ThrottleStore`] trait, and what one request asks
//! of it.
//!
//! A request touches up to three buckets (its key's, its method's on the
//! stage, the account's). The layer hands them all to the store in **one**
//! call, [`ThrottleStore::acquire`], and the store decides them together,
//! all or nothing: either every bucket gives one token and the request is
//! admitted, or none keeps a token taken for it and the request is refused. A
//! networked store (Redis) runs the whole decision in one round trip, for
//! example in one Lua script; the in-memory store
//! ([`InMemoryThrottleStore`](crate::InMemoryThrottleStore)) decides synchronously and
//! answers [`Answer::Ready`], so the layer neither boxes nor waits.

use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::hash::{Hash, Hasher};

use portcullis_core::plan::MethodSelector;
pub use portcullis_core::store::Answer;

use crate::gcra::Gcra;

/// The level a bucket belongs to, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Level {
    /// One caller's bucket: the API key under its usage plan (or a per-method
    /// override of the plan), or another key the layer was told to use.
    Key,
    /// A per-method limit of the stage, shared by all callers.
    Stage,
    /// The account-level limit, shared by everything.
    Account,
}

impl Level {
    /// The name used in metrics, logs and the `RateLimit-Policy` header.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Key => "key",
            Level::Stage => "stage",
            Level::Account => "account",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller key was taken from. Keys from different sources never share
/// a bucket, even when their bytes are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallerKeySource {
    /// The id of the API key (`ApiKeyContext::key_id`).
    ApiKey,
    /// The authenticated caller's principal.
    Principal,
    /// The client IP address (its 4 or 16 bytes).
    ClientIp,
    /// The value of a request header.
    Header,
    /// One key for every request.
    Global,
    /// A key computed by an application function.
    Custom,
}

impl CallerKeySource {
    /// A short name, used in the canonical bucket name.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            CallerKeySource::ApiKey => "apikey",
            CallerKeySource::Principal => "principal",
            CallerKeySource::ClientIp => "ip",
            CallerKeySource::Header => "header",
            CallerKeySource::Global => "global",
            CallerKeySource::Custom => "custom",
        }
    }
}

/// The caller part of a [`Level::Key`] bucket's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallerKey<'a> {
    /// Where the key came from.
    pub source: CallerKeySource,
    /// The key's bytes. They may be secret-free identifiers only: the layer
    /// never puts an API key's value here, only its id.
    pub value: &'a [u8],
}

/// The stage a bucket is scoped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StageId<'a> {
    /// The API's id.
    pub api_id: &'a str,
    /// The stage's name.
    pub stage: &'a str,
}

/// The name of one bucket. Two checks with equal keys are the same bucket.
///
/// | bucket | `level` | `stage` | `method` | `caller` |
/// |---|---|---|---|---|
/// | a key under its plan's throttle (all stages of the plan) | `Key` | `None` | `None` | `Some` |
/// | a key under a plan's per-method override | `Key` | `Some` | `Some` | `Some` |
/// | a stage's per-method limit | `Stage` | `Some` | `Some` | `None` |
/// | the account | `Account` | `None` | `None` | `None` |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketKey<'a> {
    /// The level.
    pub level: Level,
    /// The stage, for per-method buckets.
    pub stage: Option<StageId<'a>>,
    /// The method selector, for per-method buckets.
    pub method: Option<&'a MethodSelector>,
    /// The caller, for [`Level::Key`] buckets.
    pub caller: Option<CallerKey<'a>>,
}

// The common form's tag holds the level in bits 4..6 and the source in bits
// 0..3.
const _: () = assert!((Level::Account as u8) < 8 && (CallerKeySource::Custom as u8) < 16);

impl Hash for BucketKey<'_> {
    /// Feeds the hasher few, large pieces (a hasher such as SipHash pays per
    /// call): one word for the shape, then the strings, each closed by a
    /// `0xff` byte that UTF-8 text never contains, then the caller's bytes.
    ///
    /// The common bucket, a caller's under its plan (no stage, no method, a
    /// caller of at most 56 bytes), is one call instead: a one-byte tag for
    /// the level and the source, then the caller's bytes. The tag is at
    /// least `0x80`, where the first byte of the shape word of the general
    /// form is the level (0 to 2, or 0 on a big-endian machine), so no byte
    /// stream of one form is a stream of the other: distinct keys feed
    /// distinct streams.
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.stage.is_none()
            && self.method.is_none()
            && let Some(caller) = &self.caller
            && caller.value.len() <= 56
        {
            let mut buf = [0u8; 57];
            let len = 1 + caller.value.len();
            buf[0] = 0x80 | (self.level as u8) << 4 | caller.source as u8;
            buf[1..len].copy_from_slice(caller.value);
            state.write(&buf[..len]);
            return;
        }
        let shape = self.level as u64
            | u64::from(self.stage.is_some()) << 8
            | u64::from(self.method.is_some()) << 9
            | self.caller.map_or(0, |c| c.source as u64 + 1) << 16;
        state.write_u64(shape);
        if let Some(stage) = self.stage {
            state.write(stage.api_id.as_bytes());
            state.write_u8(0xff);
            state.write(stage.stage.as_bytes());
            state.write_u8(0xff);
        }
        if let Some(method) = self.method {
            state.write(method.resource().as_bytes());
            state.write_u8(0xff);
            state.write(method.method().as_bytes());
            state.write_u8(0xff);
        }
        if let Some(caller) = self.caller {
            state.write(caller.value);
        }
    }
}

impl BucketKey<'_> {
    /// Writes the bucket's canonical name, a string that a networked store can
    /// use as its key: `level|api_id/stage|selector|source:hex(value)`, with
    /// empty fields for the parts the bucket does not have. Two bucket keys
    /// are equal exactly when their canonical names are.
    pub fn write_canonical(&self, out: &mut String) {
        out.push_str(self.level.as_str());
        out.push('|');
        if let Some(stage) = self.stage {
            // `/` and `|` cannot occur in API ids; stage names are escaped
            // below by length prefixing.
            let _ = write!(
                out,
                "{}:{}/{}",
                stage.stage.len(),
                stage.api_id,
                stage.stage
            );
        }
        out.push('|');
        if let Some(method) = self.method {
            let _ = write!(out, "{method}");
        }
        out.push('|');
        if let Some(caller) = self.caller {
            out.push_str(caller.source.as_str());
            out.push(':');
            for byte in caller.value {
                let _ = write!(out, "{byte:02x}");
            }
        }
    }

    /// The canonical name as a new string (see
    /// [`write_canonical`](Self::write_canonical)).
    #[must_use]
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(48);
        self.write_canonical(&mut out);
        out
    }
}

/// One bucket a request must take a token from, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketCheck<'a> {
    /// Which bucket.
    pub key: BucketKey<'a>,
    /// Its size and refill rate, as they are now. They may change between
    /// requests (a run-time rate change); the store applies the parameters it
    /// is given to the bucket's stored state (see [`Gcra::decide`]).
    pub gcra: Gcra,
}

/// What the store decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether every bucket gave a token.
    pub admitted: bool,
    /// The bucket the outcome reports on, as an index into the checks: the
    /// bucket that refused, or, when admitted, the one with the fewest tokens
    /// left (the first such).
    pub bucket: usize,
    /// Tokens left in that bucket after this request (0 when refused).
    pub remaining: u32,
    /// When refused: nanoseconds until that bucket has a token again. When
    /// admitted: 0.
    pub retry_after_nanos: u64,
    /// Nanoseconds until that bucket is full again.
    pub full_after_nanos: u64,
}

impl Outcome {
    /// The outcome of a request that no bucket applies to.
    #[must_use]
    pub fn unlimited() -> Self {
        Outcome {
            admitted: true,
            bucket: 0,
            remaining: u32::MAX,
            retry_after_nanos: 0,
            full_after_nanos: 0,
        }
    }
}

/// A store failed to decide (a network error, a timeout, a script error).
///
/// The layer fails open by default, as API Gateway does when its usage-plan
/// check fails: the request is served and the failure logged.
#[derive(Debug, thiserror::Error)]
#[error("throttle store failed: {message}")]
#[non_exhaustive]
pub struct ThrottleStoreError {
    /// What went wrong.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl ThrottleStoreError {
    /// An error with a message and no source.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`.
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        let source = source.into();
        Self {
            message: source.to_string(),
            source: Some(source),
        }
    }
}

/// Where buckets live.
///
/// # Contract
///
/// [`acquire`](Self::acquire) decides **all** the buckets of one request in
/// one call, atomically as far as the request is concerned:
///
/// - each bucket is decided with [`Gcra::decide`] against its stored TAT (a
///   bucket the store does not hold is full), at `now_unix_nanos`; a bucket
///   that refuses stores [`Gcra::normalize`]'s TAT when it gives one;
/// - if every bucket admits, each stores its new TAT and the outcome is
///   admitted;
/// - if any bucket refuses, **no bucket keeps a token taken for this
///   request** (a store may take tokens in order and give them back with
///   [`Gcra::refund`], or check everything before writing anything), and the
///   outcome names the first bucket, in the order given, that refused;
/// - checks arrive most specific first ([`Level::Key`], then
///   [`Level::Stage`], then [`Level::Account`]); the layer sends at most
///   three, and a store may refuse more than eight with an error.
///
/// A store may forget a bucket that is full (TAT at or before now): that
/// loses nothing. A store that bounds its memory may forget other buckets
/// too, and must document which.
pub trait ThrottleStore: Send + Sync + 'static {
    /// The future of a decision that could not be made synchronously.
    type Future: Future<Output = Result<Outcome, ThrottleStoreError>> + Send + 'static;

    /// Takes one token from every bucket in `checks`, or from none.
    ///
    /// `checks` is never empty. The store copies what it needs from `checks`
    /// before returning: the future must not borrow them.
    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future>;
}

impl<T: ThrottleStore> ThrottleStore for std::sync::Arc<T> {
    type Future = T::Future;

    #[inline]
    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future> {
        (**self).acquire(checks, now_unix_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_separate_levels_and_sources() {
        let selector: MethodSelector = "/pets/GET".parse().unwrap();
        let stage = StageId {
            api_id: "a1b2c3",
            stage: "prod",
        };
        let key = BucketKey {
            level: Level::Key,
            stage: Some(stage),
            method: Some(&selector),
            caller: Some(CallerKey {
                source: CallerKeySource::ApiKey,
                value: b"k1",
            }),
        };
        assert_eq!(key.canonical(), "key|4:a1b2c3/prod|/pets/GET|apikey:6b31");
        let account = BucketKey {
            level: Level::Account,
            stage: None,
            method: None,
            caller: None,
        };
        assert_eq!(account.canonical(), "account|||");
        let by_ip = BucketKey {
            caller: Some(CallerKey {
                source: CallerKeySource::ClientIp,
                value: b"k1",
            }),
            ..key
        };
        assert_ne!(by_ip.canonical(), key.canonical());
    }
}
