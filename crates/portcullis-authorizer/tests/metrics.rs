//! The layer's metrics: every decision counted in
//! `portcullis_authorizer_decisions_total` by outcome and reason, and timed
//! in `portcullis_authorizer_decision_seconds`, whichever path decided it
//! (before the authorizer, a call to it, a cached answer).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use portcullis_authorizer::{
    AuthorizerError, AuthorizerEvent, AuthorizerLayer, AuthorizerResponse,
};
use portcullis_iam::PolicyDocument;
use tower::{ServiceBuilder, ServiceExt};

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

fn policy(effect: &str) -> PolicyDocument {
    PolicyDocument::from_json(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/*/*/*"}}]}}"#
    ))
    .expect("valid policy")
}

async fn answer(event: AuthorizerEvent) -> Result<AuthorizerResponse, AuthorizerError> {
    let token = match &event {
        AuthorizerEvent::Token(t) => t.authorization_token.clone(),
        AuthorizerEvent::Request(_) => String::new(),
    };
    match token.as_str() {
        "allow" => Ok(AuthorizerResponse::new("user-1", policy("Allow"))),
        "deny" => Ok(AuthorizerResponse::new("user-2", policy("Deny"))),
        _ => Err(AuthorizerError::failed("boom")),
    }
}

async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn get(token: Option<&str>) -> Request<String> {
    let mut builder = Request::get("/pets");
    if let Some(token) = token {
        builder = builder.header("authorization", token);
    }
    builder.body(String::new()).expect("valid request")
}

#[test]
fn every_decision_is_counted_and_timed() {
    let recorder = Captured::default();
    with_recorder(&recorder, async {
        let service = ServiceBuilder::new()
            .layer(AuthorizerLayer::token(answer))
            .service_fn(ok);
        // A call to the authorizer, then the cached answer, a deny, a
        // failure and no token at all.
        for (token, status) in [
            (Some("allow"), StatusCode::OK),
            (Some("allow"), StatusCode::OK),
            (Some("deny"), StatusCode::FORBIDDEN),
            (Some("fail"), StatusCode::INTERNAL_SERVER_ERROR),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let response = service
                .clone()
                .oneshot(get(token))
                .await
                .expect("infallible");
            assert_eq!(response.status(), status, "{token:?}");
        }
    });
    let counter = "portcullis_authorizer_decisions_total";
    for (outcome, reason, count) in [
        ("allowed", "OK", 2.0),
        ("refused", "ACCESS_DENIED", 1.0),
        ("refused", "AUTHORIZER_FAILURE", 1.0),
        ("refused", "UNAUTHORIZED", 1.0),
    ] {
        assert_eq!(
            recorder.counted(counter, &[("outcome", outcome), ("reason", reason)]),
            count,
            "{outcome} {reason}"
        );
    }
    let seconds = recorder.of("portcullis_authorizer_decision_seconds");
    assert_eq!(seconds.len(), 5, "one sample per decision: {seconds:?}");
    assert!(
        seconds
            .iter()
            .all(|s| s.value.is_finite() && s.value >= 0.0 && s.labels.is_empty()),
        "{seconds:?}"
    );
}
