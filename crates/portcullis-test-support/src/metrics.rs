//! A `metrics` recorder that keeps what the code under test records, for
//! tests to read back: counters by name and labels, histogram samples.
//!
//! ```
//! use portcullis_test_support::metrics::{CapturedMetrics, with_recorder};
//!
//! let recorder = CapturedMetrics::default();
//! with_recorder(&recorder, async {
//!     metrics::counter!("requests_total", "outcome" => "allowed").increment(2);
//!     metrics::histogram!("decision_seconds").record(0.5);
//! });
//! assert_eq!(recorder.counted("requests_total", &[("outcome", "allowed")]), 2.0);
//! assert_eq!(recorder.of("decision_seconds").len(), 1);
//! ```

use std::sync::{Arc, Mutex};

#[allow(clippy::cast_precision_loss, reason = "test counts are far below 2^53")]
fn u64_to_f64(value: u64) -> f64 {
    value as f64
}

/// A `metrics` recorder that keeps every counter increment and histogram
/// sample, with the metric's name and labels, for the test to read.
#[derive(Clone, Debug, Default)]
pub struct CapturedMetrics(Arc<Mutex<Vec<Sample>>>);

/// One increment or sample: the metric's name, its labels (sorted) and the
/// value.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The metric's name.
    pub name: String,
    /// Its labels, sorted by key.
    pub labels: Vec<(String, String)>,
    /// The increment or the sample.
    pub value: f64,
}

impl CapturedMetrics {
    /// The samples of the metric `name`.
    #[must_use]
    pub fn of(&self, name: &str) -> Vec<Sample> {
        self.0
            .lock()
            .expect("no test thread panicked holding the lock")
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// The sum of the counter `name` with these labels.
    #[must_use]
    pub fn counted(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.of(name)
            .iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Asserts that the histogram `name` holds exactly `count` samples, each
    /// a duration in seconds (finite, not negative) with no labels.
    ///
    /// # Panics
    ///
    /// When it does not.
    pub fn assert_durations(&self, name: &str, count: usize) {
        let samples = self.of(name);
        assert_eq!(samples.len(), count, "{name}: {samples:?}");
        assert!(
            samples
                .iter()
                .all(|s| s.value.is_finite() && s.value >= 0.0 && s.labels.is_empty()),
            "{name}: {samples:?}"
        );
    }

    fn handle(&self, key: &metrics::Key) -> Arc<Handle> {
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        Arc::new(Handle {
            name: key.name().to_owned(),
            labels,
            log: self.clone(),
        })
    }
}

struct Handle {
    name: String,
    labels: Vec<(String, String)>,
    log: CapturedMetrics,
}

impl Handle {
    fn push(&self, value: f64) {
        self.log
            .0
            .lock()
            .expect("no test thread panicked holding the lock")
            .push(Sample {
                name: self.name.clone(),
                labels: self.labels.clone(),
                value,
            });
    }
}

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(u64_to_f64(value));
    }

    fn absolute(&self, value: u64) {
        self.push(u64_to_f64(value));
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl metrics::Recorder for CapturedMetrics {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.handle(key))
    }
}

/// Runs `test` on a current-thread runtime with `recorder` as this
/// thread's recorder: every layer call of the test is on this thread.
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn with_recorder<F: std::future::Future>(recorder: &CapturedMetrics, test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    metrics::with_local_recorder(recorder, || runtime.block_on(test))
}
