//! The seed's usage-plan walkthrough through the API-key, throttle and quota
//! layers stacked in API Gateway's order in an axum router, on a manual clock.
//!
//! REFERENCE.md §1: the API key is checked first, then the usage plan's
//! throttle, then its quota; a throttled request consumes no quota.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_api_key::{ApiKeys, NewApiKey};
use portcullis_core::clock::{ManualClock, SharedClock};
use portcullis_core::plan::{ApiStage, QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::{QuotaLayer, UsageUpdate};
use portcullis_throttle::ThrottleLayer;
use time::macros::{date, datetime};
use tower::{ServiceBuilder, ServiceExt};

const API_ID: &str = "a1b2c3d4e5";
const STAGE: &str = "prod";

struct Gateway {
    app: Router,
    clock: ManualClock,
    key: String,
    plan: Arc<UsagePlan>,
    usage: portcullis_quota::UsageApi,
}

/// The seed's plan: rate 1 request per second, burst 2, and 10 requests a day.
async fn gateway() -> Gateway {
    let clock = ManualClock::at(datetime!(2026-11-23 09:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let keys = ApiKeys::new().with_clock(shared.clone());
    keys.put_usage_plan(
        UsagePlan::new("loyalty-basic")
            .expect("valid id")
            .with_throttle(ThrottleSettings::new(1.0, 2).expect("valid"))
            .with_quota(QuotaSettings::new(10, QuotaPeriod::Day).expect("valid"))
            .with_api_stage(ApiStage {
                api_id: API_ID.into(),
                stage: STAGE.into(),
                throttle: Default::default(),
            }),
    )
    .await
    .expect("plan stored");
    let created = keys
        .create(NewApiKey::new().name("postman").usage_plan("loyalty-basic"))
        .await
        .expect("key created");
    let plan = keys.usage_plan("loyalty-basic").expect("plan stored");
    let quota = QuotaLayer::new().clock(shared.clone());
    let usage = quota.usage_api();

    let app = Router::new()
        .route(
            "/loyalty/{customer_id}/get",
            get(|| async { r#"{"points":1250,"tier":"silver"}"# }),
        )
        .route_layer(
            ServiceBuilder::new()
                .layer(keys.layer(API_ID, STAGE))
                .layer(ThrottleLayer::new(API_ID, STAGE).clock(shared))
                .layer(quota),
        )
        .route("/health", get(|| async { "ok" }));
    Gateway {
        app,
        clock,
        key: created.value.expose().to_owned(),
        plan,
        usage,
    }
}

async fn call(app: &Router, key: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get("/loyalty/c-42/get");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("valid request"))
        .await
        .expect("infallible router");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn used_today(gateway: &Gateway) -> u64 {
    let day = date!(2026 - 11 - 23);
    let usage = gateway
        .usage
        .get_usage(&gateway.plan, None, day, day)
        .await
        .expect("usage report");
    usage.items.values().map(|days| days[0][0]).sum()
}

#[tokio::test]
async fn the_seed_walkthrough() {
    let gateway = gateway().await;
    let app = &gateway.app;

    // Routes that need no key are not wrapped.
    let health = app
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).expect("valid"))
        .await
        .expect("infallible");
    assert_eq!(health.status(), StatusCode::OK);

    // No key: 403 Forbidden.
    assert_eq!(
        call(app, None).await,
        (
            StatusCode::FORBIDDEN,
            r#"{"message":"Forbidden"}"#.to_owned()
        )
    );
    // A wrong key: the same.
    assert_eq!(
        call(app, Some("wrongwrongwrongwrongwrong")).await.0,
        StatusCode::FORBIDDEN
    );

    // With the key: the burst of 2 passes, the third quick request is throttled.
    assert_eq!(call(app, Some(&gateway.key)).await.0, StatusCode::OK);
    assert_eq!(call(app, Some(&gateway.key)).await.0, StatusCode::OK);
    assert_eq!(
        call(app, Some(&gateway.key)).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"message":"Too Many Requests"}"#.to_owned()
        )
    );
    // The throttled request did not count against the quota.
    assert_eq!(used_today(&gateway).await, 2);

    // One request a second: eight more fill the day's quota of 10.
    for _ in 0..8 {
        gateway.clock.advance(Duration::from_secs(1));
        assert_eq!(call(app, Some(&gateway.key)).await.0, StatusCode::OK);
    }
    assert_eq!(used_today(&gateway).await, 10);

    // The 11th in the day: Limit Exceeded.
    gateway.clock.advance(Duration::from_secs(1));
    assert_eq!(
        call(app, Some(&gateway.key)).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"message":"Limit Exceeded"}"#.to_owned()
        )
    );
    assert_eq!(used_today(&gateway).await, 10);

    // The operator grants a temporary extension of 1: one more gets through.
    let key_id = gateway
        .usage
        .get_usage(
            &gateway.plan,
            None,
            date!(2026 - 11 - 23),
            date!(2026 - 11 - 23),
        )
        .await
        .expect("usage report")
        .items
        .into_keys()
        .next()
        .expect("the key was counted");
    gateway
        .usage
        .update_usage(&gateway.plan, &key_id, UsageUpdate::Extend(1))
        .await
        .expect("extension granted");
    gateway.clock.advance(Duration::from_secs(1));
    assert_eq!(call(app, Some(&gateway.key)).await.0, StatusCode::OK);
    gateway.clock.advance(Duration::from_secs(1));
    assert_eq!(
        call(app, Some(&gateway.key)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // After 00:00 UTC the quota starts again.
    gateway.clock.set(datetime!(2026-11-24 00:00 UTC));
    assert_eq!(call(app, Some(&gateway.key)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn throttled_requests_never_consume_quota() {
    let gateway = gateway().await;
    // A client hammering at a frozen instant: 2 admitted, every other one
    // throttled, and the quota sees only the 2.
    let mut statuses = Vec::new();
    for _ in 0..50 {
        statuses.push(call(&gateway.app, Some(&gateway.key)).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 2);
    assert!(
        statuses[2..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(used_today(&gateway).await, 2);
}
