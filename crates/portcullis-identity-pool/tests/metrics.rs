//! The credentials service's metrics: every exchange counted in
//! `portcullis_identity_pool_decisions_total` by outcome and reason, and
//! timed in `portcullis_identity_pool_decision_seconds`.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use http::StatusCode;
use serde_json::json;

/// A `metrics` recorder that keeps every counter increment and histogram
/// sample, with the metric's name and labels, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Sample>>>);

/// One increment or sample: the metric's name, its labels (sorted) and the
/// value.
#[derive(Clone, Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Captured {
    /// The samples of the metric `name`.
    fn of(&self, name: &str) -> Vec<Sample> {
        self.0
            .lock()
            .expect("no test thread panicked holding the lock")
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// The sum of the counter `name` with these labels.
    fn counted(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
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
    log: Captured,
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
        self.push(value as f64);
    }

    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl metrics::Recorder for Captured {
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
fn with_recorder<F: std::future::Future>(recorder: &Captured, test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    metrics::with_local_recorder(recorder, || runtime.block_on(test))
}

#[test]
fn every_exchange_is_counted_and_timed() {
    let recorder = Captured::default();
    with_recorder(&recorder, async {
        let clock = clock();
        let pool = pool(config(), &clock);
        let (status, answer) = sign_in(&pool, &id_token("alice", &[], NOW)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, _) = exchange(&pool, json!({})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = sign_in(&pool, "not.a.token").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = exchange_raw(&pool, bytes::Bytes::from_static(b"{\"Logins\":")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    });
    let counter = "portcullis_identity_pool_decisions_total";
    assert_eq!(
        recorder.counted(counter, &[("outcome", "allowed"), ("reason", "OK")]),
        2.0
    );
    assert_eq!(recorder.counted(counter, &[("outcome", "refused")]), 2.0);
    let seconds = recorder.of("portcullis_identity_pool_decision_seconds");
    assert_eq!(seconds.len(), 4, "one sample per exchange: {seconds:?}");
    assert!(
        seconds
            .iter()
            .all(|s| s.value.is_finite() && s.value >= 0.0 && s.labels.is_empty()),
        "{seconds:?}"
    );
}
