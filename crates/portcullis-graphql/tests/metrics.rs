//! The layer's metrics: every decision (the mode's selection, the mode
//! layer's verdict, AppSync's key expiry) counted in
//! `portcullis_graphql_decisions_total` by outcome and reason, and timed in
//! `portcullis_graphql_decision_seconds`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_api_key::{ApiKeys, NewApiKey};
use portcullis_core::clock::{Clock, ManualClock, SharedClock};
use portcullis_graphql::{AppSyncAuthLayer, AuthMode, BoxBody};
use tower::{Layer, ServiceExt};

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

async fn resolver(_: Request<BoxBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"data\":{}}",
    ))))
}

#[test]
fn every_decision_is_counted_and_timed() {
    let recorder = Captured::default();
    with_recorder(&recorder, async {
        let clock = ManualClock::at_unix(1_900_000_000);
        let shared: SharedClock = Arc::new(clock.clone());
        let keys = ApiKeys::new().with_clock(Arc::clone(&shared));
        let live = keys
            .create(NewApiKey::new().id("da2-live"))
            .await
            .expect("a key");
        let old = keys
            .create(NewApiKey::new().id("da2-old"))
            .await
            .expect("a key");
        let layer = AppSyncAuthLayer::new(
            AuthMode::ApiKey,
            keys.layer("api", "graphql").require_usage_plan(false),
        )
        .api_key_expires("da2-old", clock.now() - time::Duration::days(1))
        .clock(shared);
        let service = layer.layer(tower::service_fn(resolver));
        let post = |key: Option<&str>| {
            let mut request = Request::post("/graphql");
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            request
                .body(Full::new(Bytes::from_static(b"{\"query\":\"{ a }\"}")))
                .expect("a request")
        };
        for (key, status) in [
            (Some(live.value.expose()), StatusCode::OK),
            (
                Some("da2-unknownunknownunknownunknown"),
                StatusCode::UNAUTHORIZED,
            ),
            (Some(old.value.expose()), StatusCode::UNAUTHORIZED),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let response = service
                .clone()
                .oneshot(post(key))
                .await
                .expect("infallible");
            assert_eq!(response.status(), status);
        }
    });
    let counter = "portcullis_graphql_decisions_total";
    assert_eq!(
        recorder.counted(counter, &[("outcome", "allowed"), ("reason", "OK")]),
        1.0
    );
    assert_eq!(
        recorder.counted(
            counter,
            &[("outcome", "refused"), ("reason", "UNAUTHORIZED")]
        ),
        3.0
    );
    let seconds = recorder.of("portcullis_graphql_decision_seconds");
    assert_eq!(seconds.len(), 4, "one sample per decision: {seconds:?}");
    assert!(
        seconds
            .iter()
            .all(|s| s.value.is_finite() && s.value >= 0.0 && s.labels.is_empty()),
        "{seconds:?}"
    );
}
