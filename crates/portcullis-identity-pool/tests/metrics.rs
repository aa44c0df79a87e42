//! The credentials service's metrics: every exchange counted in
//! `portcullis_identity_pool_decisions_total` by outcome and reason, and
//! timed in `portcullis_identity_pool_decision_seconds`.

mod common;

use common::*;
use http::StatusCode;
use portcullis_test_support::metrics::{CapturedMetrics, with_recorder};
use serde_json::json;

#[test]
fn every_exchange_is_counted_and_timed() {
    let recorder = CapturedMetrics::default();
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
    // One sample per exchange.
    recorder.assert_durations("portcullis_identity_pool_decision_seconds", 4);
}
