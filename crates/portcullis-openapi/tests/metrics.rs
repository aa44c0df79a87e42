//! The layer's metrics: every decision of the API definition's own checks
//! (a method's required protection, request validation) counted in
//! `portcullis_openapi_decisions_total` by outcome and reason, and timed in
//! `portcullis_openapi_decision_seconds`.

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use http::{Request, Response, StatusCode};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::{GatewayResponse, GatewayResponseType, ResponseBody};
use portcullis_openapi::{ApiDefinition, OpenApiLayer, Route};
use portcullis_test_support::metrics::{CapturedMetrics, with_recorder};
use tower::ServiceExt;
use tower::layer::layer_fn;
use tower::service_fn;
use tower::util::BoxCloneSyncService;

type Check = fn(&mut Request<Body>) -> Result<(), GatewayResponseType>;

/// A stand-in for the API key layer: it runs `check`, which leaves an
/// [`ApiKeyContext`] as the real layer would, or not.
fn stand_in(
    check: Check,
) -> impl tower_layer::Layer<
    Route<Body, Body, Infallible>,
    Service = BoxCloneSyncService<Request<Body>, Response<ResponseBody<Body>>, Infallible>,
> + Clone {
    layer_fn(move |inner: Route<Body, Body, Infallible>| {
        BoxCloneSyncService::new(service_fn(move |mut request: Request<Body>| {
            let inner = inner.clone();
            async move {
                match check(&mut request) {
                    Ok(()) => Ok(inner.oneshot(request).await?.map(ResponseBody::inner)),
                    Err(kind) => Ok(GatewayResponse::new(kind).into_response(&request)),
                }
            }
        }))
    })
}

/// Any `x-api-key` is a key; without one, it lets the request through
/// without saying whose key it was (the layer then refuses it itself).
fn lenient_key(request: &mut Request<Body>) -> Result<(), GatewayResponseType> {
    if request.headers().contains_key("x-api-key") {
        request
            .request_context_mut()
            .set_api_key(ApiKeyContext::new("key-1"));
    }
    Ok(())
}

fn app() -> Router {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/validation-sample.json"
    ))
    .expect("the fixture reads");
    let definition = ApiDefinition::from_slice(&bytes).expect("the fixture loads");
    let layer = OpenApiLayer::builder(definition)
        .api_key(stand_in(lenient_key))
        .build()
        .expect("the layer builds");
    Router::new()
        .route("/{*rest}", any(|| async { "from the app" }))
        .layer(layer)
}

#[test]
fn every_decision_is_counted_and_timed() {
    let recorder = CapturedMetrics::default();
    with_recorder(&recorder, async {
        let app = app();
        let post = |body: &str| {
            Request::post("/validation")
                .header("x-api-key", "k")
                .header("h1", "v")
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .expect("a request")
        };
        let get = |uri: &str, key: bool| {
            let mut builder = Request::get(uri);
            if key {
                builder = builder.header("x-api-key", "k");
            }
            builder.body(Body::empty()).expect("a request")
        };
        for (request, status) in [
            (get("/validation?q1=cat", true), StatusCode::OK),
            (
                post(r#"{"name":"Rex","type":"dog","price":100}"#),
                StatusCode::OK,
            ),
            (get("/validation", true), StatusCode::BAD_REQUEST),
            (post("not json"), StatusCode::BAD_REQUEST),
            (get("/validation?q1=cat", false), StatusCode::FORBIDDEN),
        ] {
            let response = app.clone().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), status);
        }
    });
    let counter = "portcullis_openapi_decisions_total";
    for (outcome, reason, count) in [
        ("allowed", "OK", 2.0),
        ("refused", "BAD_REQUEST_PARAMETERS", 1.0),
        ("refused", "BAD_REQUEST_BODY", 1.0),
        ("refused", "INVALID_API_KEY", 1.0),
    ] {
        assert_eq!(
            recorder.counted(counter, &[("outcome", outcome), ("reason", reason)]),
            count,
            "{outcome} {reason}"
        );
    }
    // One sample per decision.
    recorder.assert_durations("portcullis_openapi_decision_seconds", 5);
}
