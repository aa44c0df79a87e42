//! The layer in an axum application (`Router::layer` and `route_layer`), and
//! the admin service mounted with `nest_service`, end to end, with no socket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use http_body_util::BodyExt;
use portcullis_core::clock::ManualClock;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_quota::admin::{PlanKey, StaticKeys, UsageAdmin};
use serde_json::{Value, json};
use time::macros::datetime;
use tower::ServiceExt;

fn plans() -> BTreeMap<&'static str, Arc<UsagePlan>> {
    let basic = UsagePlan::new("basic")
        .expect("test setup")
        .with_name("Basic")
        .with_throttle(ThrottleSettings::new(1.0, 2).expect("test setup"))
        .with_quota(QuotaSettings::new(3, QuotaPeriod::Day).expect("test setup"));
    let gold = UsagePlan::new("gold")
        .expect("test setup")
        .with_quota(QuotaSettings::with_offset(1000, QuotaPeriod::Month, 10).expect("test setup"));
    BTreeMap::from([("basic", Arc::new(basic)), ("gold", Arc::new(gold))])
}

/// Stands in for the API-key layer: `x-api-key: <key id>:<plan id>`.
async fn api_key(mut request: Request, next: Next) -> Response {
    let context = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(':'))
        .and_then(|(key, plan)| plans().get(plan).map(|p| (key.to_owned(), p.clone())))
        .map(|(key, plan)| ApiKeyContext::new(key).with_usage_plan(plan));
    if let Some(context) = context {
        request.request_context_mut().set_api_key(context);
    }
    next.run(request).await
}

/// Stands in for the application's admin authentication.
async fn admins_only(request: Request, next: Next) -> Result<Response, StatusCode> {
    match request.headers().get("authorization") {
        Some(v) if v == "Bearer admin" => Ok(next.run(request).await),
        _ => Err(StatusCode::FORBIDDEN),
    }
}

fn app(clock: &ManualClock, route_layer: bool) -> Router {
    let quota = QuotaLayer::new().clock(clock.clone());
    let keys = StaticKeys::new()
        .plan_key(PlanKey::new("k1").with_name("Loyalty web"), "basic")
        .key("k2", "basic")
        .key("k3", "gold");
    let admin = UsageAdmin::new(quota.usage_api(), plans().into_values(), keys);
    let api = Router::new().route("/loyalty/{id}", get(|| async { "points" }));
    let api = if route_layer {
        api.route_layer(quota)
    } else {
        api.layer(quota)
    };
    Router::new()
        .merge(api.layer(middleware::from_fn(api_key)))
        .nest_service("/admin", admin)
        .layer(middleware::from_fn(admins_only_for_admin))
}

/// Applies `admins_only` to `/admin` paths only.
async fn admins_only_for_admin(request: Request, next: Next) -> Result<Response, StatusCode> {
    if request.uri().path().starts_with("/admin") {
        admins_only(request, next).await
    } else {
        Ok(next.run(request).await)
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, http::HeaderMap, Value) {
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if uri.starts_with("/admin") {
        request = request.header("authorization", "Bearer admin");
    }
    let response = app
        .clone()
        .oneshot(
            request
                .body(Body::from(body.to_owned()))
                .expect("test setup"),
        )
        .await
        .expect("test setup");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("test setup").to_bytes();
    let json = if bytes.is_empty()
        || !parts
            .headers
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap_or("").contains("json"))
    {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        serde_json::from_slice(&bytes).expect("test setup")
    };
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn router_layer_and_route_layer_enforce_the_quota() {
    for route_layer in [false, true] {
        let clock = ManualClock::at(datetime!(2026-11-23 22:00 UTC));
        let app = app(&clock, route_layer);
        for _ in 0..3 {
            let (status, _, body) = call(&app, "GET", "/loyalty/42", Some("k1:basic"), "").await;
            assert_eq!((status, body), (StatusCode::OK, json!("points")));
        }
        let (status, headers, body) = call(&app, "GET", "/loyalty/42", Some("k1:basic"), "").await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "route_layer: {route_layer}"
        );
        assert_eq!(body, json!({"message": "Limit Exceeded"}));
        assert_eq!(headers["retry-after"], "7200");
        // No key: the quota does not apply (the API-key layer decides).
        let (status, ..) = call(&app, "GET", "/loyalty/42", None, "").await;
        assert_eq!(status, StatusCode::OK);
        clock.advance(Duration::from_secs(7200));
        let (status, ..) = call(&app, "GET", "/loyalty/42", Some("k1:basic"), "").await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_admin_endpoints_end_to_end() {
    let clock = ManualClock::at(datetime!(2026-11-23 10:00 UTC));
    let app = app(&clock, false);

    // The admin service sits behind the application's auth.
    let refused = app
        .clone()
        .oneshot(
            http::Request::get("/admin/usageplans")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Plans, in API Gateway's shape.
    let (status, _, plans) = call(&app, "GET", "/admin/usageplans", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plans["items"].as_array().unwrap().len(), 2);
    let (_, _, basic) = call(&app, "GET", "/admin/usageplans/basic", None, "").await;
    assert_eq!(
        basic,
        json!({
            "id": "basic", "name": "Basic", "apiStages": [],
            "throttle": {"burstLimit": 2, "rateLimit": 1.0},
            "quota": {"limit": 3, "offset": 0, "period": "DAY"}
        })
    );
    let (_, _, by_key) = call(&app, "GET", "/admin/usageplans?keyId=k3", None, "").await;
    assert_eq!(by_key["items"][0]["id"], "gold");
    assert_eq!(by_key["items"].as_array().unwrap().len(), 1);

    // Keys.
    let (_, _, keys) = call(&app, "GET", "/admin/usageplans/basic/keys", None, "").await;
    assert_eq!(
        keys,
        json!({"items": [
            {"id": "k1", "type": "API_KEY", "name": "Loyalty web"},
            {"id": "k2", "type": "API_KEY"}
        ]})
    );
    let (status, _, key) = call(&app, "GET", "/admin/usageplans/basic/keys/k2", None, "").await;
    assert_eq!(
        (status, key),
        (StatusCode::OK, json!({"id": "k2", "type": "API_KEY"}))
    );

    // Traffic, then usage: yesterday had none.
    for _ in 0..2 {
        call(&app, "GET", "/loyalty/1", Some("k1:basic"), "").await;
    }
    let (status, _, usage) = call(
        &app,
        "GET",
        "/admin/usageplans/basic/usage?startDate=2026-11-22&endDate=2026-11-23",
        None,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        usage,
        json!({
            "usagePlanId": "basic", "startDate": "2026-11-22", "endDate": "2026-11-23",
            "items": {"k1": [[0, 3], [2, 1]], "k2": [[0, 3], [0, 3]]}
        })
    );

    // UpdateUsage: API Gateway's `replace` sets what remains (1 -> 3), and
    // `add` extends it.
    let patch = r#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"3"}]}"#;
    let (status, _, updated) = call(
        &app,
        "PATCH",
        "/admin/usageplans/basic/keys/k1/usage",
        None,
        patch,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["items"]["k1"], json!([[2, 3]]));
    for _ in 0..3 {
        let (status, ..) = call(&app, "GET", "/loyalty/1", Some("k1:basic"), "").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, ..) = call(&app, "GET", "/loyalty/1", Some("k1:basic"), "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let extend = r#"{"patchOperations":[{"op":"add","path":"/remaining","value":1}]}"#;
    let (_, _, updated) = call(
        &app,
        "PATCH",
        "/admin/usageplans/basic/keys/k1/usage",
        None,
        extend,
    )
    .await;
    assert_eq!(updated["items"]["k1"], json!([[5, 1]]));
    let (status, ..) = call(&app, "GET", "/loyalty/1", Some("k1:basic"), "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, ..) = call(&app, "GET", "/loyalty/1", Some("k1:basic"), "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (_, _, usage) = call(
        &app,
        "GET",
        "/admin/usageplans/basic/usage?keyId=k1&startDate=2026-11-23&endDate=2026-11-23",
        None,
        "",
    )
    .await;
    assert_eq!(usage["items"], json!({"k1": [[6, 0]]}));
}

#[tokio::test]
async fn the_admin_usage_endpoint_pages_with_position_and_limit() {
    let clock = ManualClock::at(datetime!(2026-11-23 10:00 UTC));
    let app = app(&clock, false);
    let base = "/admin/usageplans/basic/usage?startDate=2026-11-23&endDate=2026-11-23";
    let (status, _, first) = call(&app, "GET", &format!("{base}&limit=1"), None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"], json!({"k1": [[0, 3]]}));
    let position = first["position"].as_str().expect("a next page").to_owned();
    let (status, _, second) = call(
        &app,
        "GET",
        &format!("{base}&limit=1&position={position}"),
        None,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["items"], json!({"k2": [[0, 3]]}));
    assert!(second.get("position").is_none(), "{second}");
    // Without paging parameters: the first 25 keys, here both, no position.
    let (_, _, all) = call(&app, "GET", base, None, "").await;
    assert_eq!(all["items"], json!({"k1": [[0, 3]], "k2": [[0, 3]]}));
    assert!(all.get("position").is_none(), "{all}");
    for bad in ["limit=0", "limit=501", "limit=x", "position=nothex"] {
        let (status, headers, _) = call(&app, "GET", &format!("{base}&{bad}"), None, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(headers["x-amzn-errortype"], "BadRequestException", "{bad}");
    }
}

#[tokio::test]
async fn the_admin_service_refuses_bad_requests() {
    let clock = ManualClock::at(datetime!(2026-11-23 10:00 UTC));
    let app = app(&clock, false);
    let usage = "/admin/usageplans/basic/keys/k1/usage";
    let cases: [(&str, &str, &str, StatusCode, &str); 10] = [
        (
            "GET",
            "/admin/apikeys",
            "",
            StatusCode::NOT_FOUND,
            "NotFoundException",
        ),
        (
            "GET",
            "/admin/usageplans/nope",
            "",
            StatusCode::NOT_FOUND,
            "NotFoundException",
        ),
        (
            "GET",
            "/admin/usageplans/basic/keys/k3",
            "",
            StatusCode::NOT_FOUND,
            "NotFoundException",
        ),
        (
            "DELETE",
            "/admin/usageplans/basic",
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowedException",
        ),
        (
            "GET",
            usage,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowedException",
        ),
        (
            "GET",
            "/admin/usageplans/basic/usage?startDate=2026-11-01",
            "",
            StatusCode::BAD_REQUEST,
            "BadRequestException",
        ),
        (
            "GET",
            "/admin/usageplans/basic/usage?startDate=2026-11-01&endDate=11/02/2026",
            "",
            StatusCode::BAD_REQUEST,
            "BadRequestException",
        ),
        (
            "GET",
            "/admin/usageplans/basic/usage?startDate=2026-11-03&endDate=2026-11-02",
            "",
            StatusCode::BAD_REQUEST,
            "BadRequestException",
        ),
        (
            "PATCH",
            usage,
            "{",
            StatusCode::BAD_REQUEST,
            "BadRequestException",
        ),
        (
            "PATCH",
            usage,
            r#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"lots"}]}"#,
            StatusCode::BAD_REQUEST,
            "BadRequestException",
        ),
    ];
    for (method, uri, body, status, error_type) in cases {
        let (got, headers, json) = call(&app, method, uri, None, body).await;
        assert_eq!(got, status, "{method} {uri}: {json}");
        assert_eq!(headers["x-amzn-errortype"], error_type, "{method} {uri}");
        assert!(json["message"].is_string(), "{method} {uri}: {json}");
    }

    // The body is limited before it is parsed.
    let big = format!(
        r#"{{"patchOperations":[{{"op":"replace","path":"/remaining","value":"1","pad":"{}"}}]}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, headers, _) = call(&app, "PATCH", usage, None, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["x-amzn-errortype"], "RequestTooLargeException");
    // Nothing changed: the key still has its full quota.
    let (_, _, today) = call(
        &app,
        "GET",
        "/admin/usageplans/basic/usage?keyId=k1&startDate=2026-11-23&endDate=2026-11-23",
        None,
        "",
    )
    .await;
    assert_eq!(today["items"]["k1"], json!([[0, 3]]));
}
