//! The layer in axum (`Router::layer` and `route_layer`, with `MatchedPath`
//! templates) and in tonic (a real server and client on 127.0.0.1).

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::{API, STAGE, clock, settings};
use http::{Request, StatusCode};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{ApiStage, UsagePlan};
use portcullis_test_support::grpc::{self, check, health_client};
use portcullis_throttle::{KeyBy, ThrottleLayer};
use tower::ServiceExt;

fn plan_with_pet_override() -> Arc<UsagePlan> {
    let mut throttle = BTreeMap::new();
    throttle.insert("/pets/{petId}/GET".parse().unwrap(), settings(1.0, 1));
    Arc::new(
        UsagePlan::new("p")
            .unwrap()
            .with_throttle(settings(100.0, 100))
            .with_api_stage(ApiStage {
                api_id: API.into(),
                stage: STAGE.into(),
                throttle,
            }),
    )
}

fn keyed(uri: &str, plan: &Arc<UsagePlan>) -> Request<Body> {
    let mut request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new("k").with_usage_plan(Arc::clone(plan)));
    request
}

#[tokio::test]
async fn axum_route_layer_matches_the_route_template() {
    let clock = clock();
    let plan = plan_with_pet_override();
    let layer = ThrottleLayer::new(API, STAGE).clock(Arc::new(clock.clone()));
    let app = Router::new()
        .route("/pets/{id}", get(|| async { "pet" }))
        .route_layer(layer);
    let status = |uri: &'static str| {
        let app = app.clone();
        let plan = Arc::clone(&plan);
        async move { app.oneshot(keyed(uri, &plan)).await.unwrap().status() }
    };
    assert_eq!(status("/pets/1").await, StatusCode::OK);
    // `/pets/{id}` is the per-method override's resource with the `axum`
    // feature (MatchedPath); without it the concrete path `/pets/2` still
    // matches the `{petId}` template. Either way it is one bucket.
    assert_eq!(status("/pets/2").await, StatusCode::TOO_MANY_REQUESTS);
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(status("/pets/3").await, StatusCode::OK);
}

#[tokio::test]
async fn axum_router_layer_refuses_with_the_gateway_body() {
    let clock = clock();
    let layer = ThrottleLayer::new(API, STAGE)
        .clock(Arc::new(clock.clone()))
        .key_by(KeyBy::global())
        .key_limit(settings(1.0, 2));
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(layer);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = app
            .clone()
            .oneshot(Request::builder().uri("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        seen.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "1");
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            assert_eq!(&body[..], br#"{"message":"Too Many Requests"}"#);
        }
    }
    assert_eq!(seen, [200, 200, 429]);
}

#[tokio::test]
async fn tonic_client_sees_resource_exhausted() {
    let clock = clock();
    let layer = ThrottleLayer::new(API, STAGE)
        .clock(Arc::new(clock.clone()))
        .key_by(KeyBy::global())
        .key_limit(settings(1.0, 2));
    let addr = grpc::serve(layer, grpc::health()).await;
    let mut client = health_client(addr).await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let result = check(&mut client, "", []).await;
        codes.push(result.err().map(|status| status.code()));
    }
    assert_eq!(codes[..2], [None, None]);
    assert_eq!(codes[2], Some(tonic::Code::ResourceExhausted));
    clock.advance(std::time::Duration::from_secs(1));
    assert!(check(&mut client, "", []).await.is_ok());
}
