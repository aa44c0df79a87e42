//! The layer's metrics: every decision (the mode's selection, the mode
//! layer's verdict, AppSync's key expiry) counted in
//! `portcullis_graphql_decisions_total` by outcome and reason, and timed in
//! `portcullis_graphql_decision_seconds`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_api_key::{ApiKeys, NewApiKey};
use portcullis_core::clock::{Clock, ManualClock, SharedClock};
use portcullis_graphql::{AppSyncAuthLayer, AuthMode, BoxBody};
use portcullis_test_support::metrics::{CapturedMetrics, with_recorder};
use tower::{Layer, ServiceExt};

async fn resolver(_: Request<BoxBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"data\":{}}",
    ))))
}

#[test]
fn every_decision_is_counted_and_timed() {
    let recorder = CapturedMetrics::default();
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
    // One sample per decision.
    recorder.assert_durations("portcullis_graphql_decision_seconds", 4);
}
