//! The request's span, `portcullis.request`, and its id from the facade's
//! stack with the default features (API key, throttle and quota, no access
//! log): every response carries `x-amzn-RequestId`, and the layers' spans
//! are children of the request's span, which records what they decided.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::config::Config;
use portcullis::{Gateway, GatewayLayer};
use tower::ServiceExt;

#[path = "support/capture.rs"]
mod capture;

use capture::captured;

const API_KEY: &str = "SpanKey0123456789abcdefghijk";

/// A key under a plan of 2 requests a day.
fn gateway() -> Gateway {
    let digest = portcullis::api_key::KeyDigest::of(API_KEY.as_bytes()).to_hex();
    let config = Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"

        [[usage_plans]]
        id = "span-plan"
        throttle = {{ rate_limit = 100.0, burst_limit = 100 }}
        quota = {{ limit = 2, period = "DAY", offset = 0 }}

        [[api_keys]]
        id = "span-key"
        value_sha256 = "{digest}"
        enabled = true
        usage_plans = ["span-plan"]

        [store]
        kind = "memory"
        "#
    ))
    .expect("valid configuration");
    Gateway::builder(config)
        .build()
        .expect("the gateway builds")
}

fn app(layer: GatewayLayer) -> Router {
    Router::new()
        .route("/loyalty", get(|| async { "ok" }))
        .layer(layer)
}

/// The lines written so far that name request `id`.
fn lines_of(id: &str) -> Vec<String> {
    captured()
        .text()
        .lines()
        .filter(|line| line.contains(id))
        .map(str::to_owned)
        .collect()
}

/// Sends `GET /loyalty` (with the key, if any); the status and the
/// response's request id.
async fn call(app: &Router, key: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get("/loyalty");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let id = response
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .expect("every response has a request id")
        .to_owned();
    (response.status(), id)
}

/// The request span's own line as it closed.
fn request_span_closed(lines: &[String]) -> &str {
    let closed: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains(" portcullis.request{") && line.contains(": close time."))
        .filter(|line| !line.contains("}:portcullis."))
        .collect();
    assert_eq!(closed.len(), 1, "one request span closed in:\n{lines:#?}");
    closed[0]
}

/// That `layer`'s span closed directly under the request's span (whose
/// `request_id` is `id`), with all of `fields`.
fn assert_child_span(lines: &[String], id: &str, layer: &str, fields: &[&str]) {
    let parent = format!("portcullis.request{{request_id=\"{id}\"");
    let open = format!("}}:portcullis.{layer}{{");
    let found = lines.iter().any(|line| {
        let Some((context, rest)) = line.split_once(&open) else {
            return false;
        };
        line.contains(": close time.")
            && context.trim_start().contains(&parent)
            // No span between the request's and the layer's.
            && context.matches("portcullis.").count() == 1
            && rest
                .split_once("}:")
                .is_some_and(|(own, _)| fields.iter().all(|f| own.contains(f)))
    });
    assert!(
        found,
        "no portcullis.{layer} span under the request's with {fields:?} in:\n{lines:#?}"
    );
}

fn assert_one_request_span_per_line(lines: &[String]) {
    for line in lines {
        assert!(
            line.matches("portcullis.request{").count() <= 1,
            "two request spans: {line}"
        );
    }
}

#[tokio::test]
async fn the_layers_spans_are_children_of_the_request_span_with_its_id() {
    captured();
    let gateway = gateway();
    let app = app(gateway.layer());

    let (status, id) = call(&app, Some(API_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let lines = lines_of(&id);
    let closed = request_span_closed(&lines);
    for field in [
        &format!("request_id=\"{id}\"") as &str,
        "method=GET",
        "path=\"/loyalty\"",
        "key_id=\"span-key\"",
        "outcome=\"allowed\"",
        "status=200",
    ] {
        assert!(closed.contains(field), "{field} in {closed}");
    }
    for layer in ["api_key", "throttle", "quota"] {
        assert_child_span(
            &lines,
            &id,
            layer,
            &["outcome=\"allowed\"", "key_id=\"span-key\""],
        );
    }
    assert_one_request_span_per_line(&lines);

    // A refusal by the API key: refused, with the reason.
    let (status, id) = call(&app, Some("NotTheKey0123456789abcdefgh")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let lines = lines_of(&id);
    let closed = request_span_closed(&lines);
    for field in [
        "outcome=\"refused\"",
        "reason=\"INVALID_API_KEY\"",
        "status=403",
    ] {
        assert!(closed.contains(field), "{field} in {closed}");
    }
    assert_child_span(&lines, &id, "api_key", &["outcome=\"refused\""]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request refused") && l.contains("reason=\"INVALID_API_KEY\"")),
        "{lines:#?}"
    );

    // A refusal further in (the day's quota of 2 is spent): the request's
    // span still names the key the API key layer found.
    let (status, _) = call(&app, Some(API_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, id) = call(&app, Some(API_KEY)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let lines = lines_of(&id);
    let closed = request_span_closed(&lines);
    for field in [
        "key_id=\"span-key\"",
        "outcome=\"refused\"",
        "reason=\"QUOTA_EXCEEDED\"",
        "status=429",
    ] {
        assert!(closed.contains(field), "{field} in {closed}");
    }
    assert_child_span(&lines, &id, "quota", &["outcome=\"refused\""]);
}

#[tokio::test]
async fn without_the_request_span_the_response_still_has_an_id() {
    captured();
    let gateway = gateway();
    let app = app(gateway.layer().without_request_span());
    let (status, id) = call(&app, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(id.len(), 36, "{id}");
    let lines = lines_of(&id);
    assert!(lines.is_empty(), "no span names the id: {lines:#?}");
    // And a layer stacked twice opens one span.
    let app = app_twice(&gateway);
    let (_, id) = call(&app, Some(API_KEY)).await;
    let lines = lines_of(&id);
    request_span_closed(&lines);
    assert_one_request_span_per_line(&lines);
}

/// The gateway's stack around another of its stacks (an app-wide stack and
/// a route's): one request span.
fn app_twice(gateway: &Gateway) -> Router {
    Router::new()
        .route(
            "/loyalty",
            get(|| async { "ok" }).route_layer(gateway.layer().without_api_key()),
        )
        .layer(gateway.layer().without_api_key())
}
