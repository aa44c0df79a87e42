//! Each route with its own layers: the app called with `Router::oneshot`,
//! and once over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum_routes::{DEMO_API_KEY, app, mint_token};
use http_body_util::BodyExt;
use portcullis_core::clock::{ManualClock, SharedClock};
use serde_json::{Value, json};
use tower::ServiceExt;

const HOUR: Duration = Duration::from_secs(3600);

struct App {
    router: Router,
    clock: ManualClock,
    shared: SharedClock,
}

/// What came back: status, `x-amzn-ErrorType`, body (JSON, or a string).
type Answer = (StatusCode, Option<String>, Value);

async fn start() -> App {
    // 2026-11-24 12:00 UTC.
    let clock = ManualClock::at_unix(1_795_521_600);
    let shared: SharedClock = Arc::new(clock.clone());
    let router = app(shared.clone()).await.expect("the demo app builds");
    App {
        router,
        clock,
        shared,
    }
}

impl App {
    fn token(&self, subject: &str, groups: &[&str]) -> String {
        mint_token(subject, groups, HOUR, &self.shared).expect("mints")
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, error_type, body)
    }

    async fn get(&self, uri: &str, header: Option<(&str, &str)>) -> Answer {
        let mut request = Request::get(uri);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    async fn partner(&self) -> Answer {
        self.get("/loyalty/C-1001", Some(("x-api-key", DEMO_API_KEY)))
            .await
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn health_needs_nothing_and_the_partner_route_needs_a_key() {
    let app = start().await;
    assert_eq!(
        app.get("/health", None).await,
        (StatusCode::OK, None, json!("ok"))
    );
    assert_eq!(
        app.get("/loyalty/C-1001", None).await,
        (
            StatusCode::FORBIDDEN,
            Some("ForbiddenException".into()),
            json!({"message": "Forbidden"})
        )
    );
    // A member's token is no API key: the route asks for a key only.
    let alice = bearer(&app.token("alice", &[]));
    assert_eq!(
        app.get("/loyalty/C-1001", Some(("authorization", &alice)))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/loyalty/C-1002", Some(("x-api-key", DEMO_API_KEY)))
            .await,
        (
            StatusCode::OK,
            None,
            json!({"customerId": "C-1002", "points": 58_250, "tier": "GOLD", "partner": "partner-1"})
        )
    );
}

#[tokio::test]
async fn the_partner_route_is_throttled_then_out_of_quota() {
    let app = start().await;
    assert_eq!(app.partner().await.0, StatusCode::OK);
    assert_eq!(app.partner().await.0, StatusCode::OK);
    let (status, error_type, body) = app.partner().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_type.as_deref(), Some("TooManyRequestsException"));
    assert_eq!(body, json!({"message": "Too Many Requests"}));
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(1));
        assert_eq!(app.partner().await.0, StatusCode::OK);
    }
    app.clock.advance(Duration::from_secs(1));
    let (status, error_type, body) = app.partner().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_type.as_deref(), Some("LimitExceededException"));
    assert_eq!(body, json!({"message": "Limit Exceeded"}));
    // Other routes do not share the partner route's limits.
    assert_eq!(app.get("/health", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn me_reads_the_token_with_the_claims_extractor() {
    let app = start().await;
    let alice = bearer(&app.token("alice", &["members"]));
    assert_eq!(
        app.get("/me", Some(("authorization", &alice))).await,
        (
            StatusCode::OK,
            None,
            json!({"sub": "alice", "email": "alice@example.com", "groups": ["members"]})
        )
    );
    let (status, error_type, _) = app.get("/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_type.as_deref(), Some("UnauthorizedException"));
    // The API key is no token.
    assert_eq!(
        app.get("/me", Some(("x-api-key", DEMO_API_KEY))).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(2 * HOUR);
    assert_eq!(
        app.get("/me", Some(("authorization", &alice))).await,
        (
            StatusCode::UNAUTHORIZED,
            Some("UnauthorizedException".into()),
            json!({"message": "The incoming token has expired"})
        )
    );
}

#[tokio::test]
async fn the_usage_admin_service_is_for_admins_only() {
    let app = start().await;
    for _ in 0..2 {
        assert_eq!(app.partner().await.0, StatusCode::OK);
    }
    let usage =
        "/admin/usageplans/partners/usage?keyId=partner-1&startDate=2026-11-24&endDate=2026-11-24";
    assert_eq!(app.get(usage, None).await.0, StatusCode::UNAUTHORIZED);
    let member = bearer(&app.token("alice", &["members"]));
    assert_eq!(
        app.get(usage, Some(("authorization", &member))).await.0,
        StatusCode::FORBIDDEN
    );

    // GetUsage: 2 used, 3 left today.
    let admin = bearer(&app.token("root", &["admins"]));
    assert_eq!(
        app.get(usage, Some(("authorization", &admin))).await,
        (
            StatusCode::OK,
            None,
            json!({"usagePlanId": "partners", "startDate": "2026-11-24", "endDate": "2026-11-24",
                   "items": {"partner-1": [[2, 3]]}})
        )
    );

    // UpdateUsage: a temporary extension of 10 requests for today.
    let extend = Request::builder()
        .method(Method::PATCH)
        .uri("/admin/usageplans/partners/keys/partner-1/usage")
        .header("authorization", &admin)
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"patchOperations":[{"op":"add","path":"/remaining","value":"10"}]}"#,
        ))
        .expect("request");
    let (status, _, body) = app.send(extend).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"]["partner-1"], json!([[2, 13]]));

    // A member cannot grant themselves quota.
    let sneaky = Request::builder()
        .method(Method::PATCH)
        .uri("/admin/usageplans/partners/keys/partner-1/usage")
        .header("authorization", &member)
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"patchOperations":[{"op":"add","path":"/remaining","value":"1000"}]}"#,
        ))
        .expect("request");
    assert_eq!(app.send(sneaky).await.0, StatusCode::FORBIDDEN);
    // ... and nothing changed.
    let report = app.get(usage, Some(("authorization", &admin))).await.2;
    assert_eq!(report["items"]["partner-1"], json!([[2, 13]]));
}

#[tokio::test]
async fn over_real_http() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let app = start().await;
    let (listener, addr) = portcullis_test_support::serve::listener().await;
    let service = app
        .router
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let get = |path: &str, key: Option<&str>| {
        let mut request = Request::get(format!("http://{addr}{path}"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        client.request(request.body(Body::empty()).expect("request"))
    };
    let status = |path, key| async move { get(path, key).await.expect("answers").status() };
    assert_eq!(status("/health", None).await, StatusCode::OK);
    assert_eq!(status("/loyalty/C-1001", None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        status("/loyalty/C-1001", Some(DEMO_API_KEY)).await,
        StatusCode::OK
    );
    assert_eq!(status("/me", None).await, StatusCode::UNAUTHORIZED);
}
