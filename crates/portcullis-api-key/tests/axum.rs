//! The layer in an axum `Router`: `route_layer` for the routes that need a
//! key, `layer` for a whole router; driven with `oneshot`, no socket.

// Test code: helper functions outside `#[test]` unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::{get, post};
use common::*;
use http::{Request, StatusCode};
use portcullis_core::context::RequestContext;
use tower::ServiceExt;

async fn points(Extension(context): Extension<RequestContext>) -> String {
    let Some(key) = context.api_key() else {
        return "no key".to_owned();
    };
    format!(
        "points for {} on plan {}",
        key.customer_id().unwrap_or("?"),
        key.usage_plan().map_or("-", |p| p.id())
    )
}

fn get_with(uri: &str, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(uri);
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn route_layer_guards_only_the_routes_that_need_a_key() {
    let (keys, value) = keys_with_one_key().await;
    let app = Router::new()
        .route("/loyalty/{customer_id}", get(points))
        .route(
            "/loyalty/{customer_id}/redeem",
            post(|| async { "redeemed" }),
        )
        .route_layer(keys.layer(API_ID, STAGE))
        .route("/health", get(|| async { "ok" }));

    // No key needed.
    let response = app
        .clone()
        .oneshot(get_with("/health", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_string(response.into_body()).await, "ok");

    // Key needed, none given: API Gateway's 403.
    let response = app
        .clone()
        .oneshot(get_with("/loyalty/42", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()["x-amzn-errortype"], "ForbiddenException");
    assert_eq!(
        body_string(response.into_body()).await,
        r#"{"message":"Forbidden"}"#
    );

    // Key given: the handler reads the context.
    let response = app
        .clone()
        .oneshot(get_with("/loyalty/42", Some(value.expose())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_string(response.into_body()).await,
        "points for acme on plan basic"
    );

    // route_layer does not turn an unknown path into a 403.
    let response = app
        .clone()
        .oneshot(get_with("/nowhere", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Disabled while the router runs.
    keys.disable("k1").await.unwrap();
    let response = app
        .oneshot(get_with("/loyalty/42", Some(value.expose())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn router_layer_guards_every_route() {
    let (keys, value) = keys_with_one_key().await;
    let app = Router::new()
        .route("/loyalty/{customer_id}", get(points))
        .route("/health", get(|| async { "ok" }))
        .layer(keys.layer(API_ID, STAGE));
    let response = app
        .clone()
        .oneshot(get_with("/health", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app
        .oneshot(get_with("/health", Some(value.expose())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
