//! The layer in axum (`Router::layer` and `route_layer`, no socket) and in a
//! real tonic server; the HTTP adapter against a real local HTTP authorizer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_authorizer::{
    AuthorizerError, AuthorizerEvent, AuthorizerLayer, AuthorizerResponse, HttpAuthorizer,
    IdentitySource,
};
use portcullis_core::context::{Caller, RequestContext};
use portcullis_iam::PolicyDocument;
use portcullis_test_support::grpc::{self, health_client};
use portcullis_test_support::serve::listener;
use tower::ServiceExt;

const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}}"#;

async fn token_authorizer(event: AuthorizerEvent) -> Result<AuthorizerResponse, AuthorizerError> {
    match event.token() {
        Some("good") => Ok(AuthorizerResponse::new(
            "axum-user",
            PolicyDocument::from_json(ALLOW_ALL).map_err(AuthorizerError::failed)?,
        )),
        _ => Err(AuthorizerError::Unauthorized),
    }
}

async fn whoami(Extension(context): Extension<RequestContext>) -> String {
    context
        .caller()
        .map(Caller::principal)
        .unwrap_or("-")
        .to_owned()
}

async fn call(app: Router, token: Option<&str>, path: &str) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("valid request"))
        .await
        .expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn axum_router_layer_and_route_layer() {
    let app = Router::new()
        .route("/me", get(whoami))
        .layer(AuthorizerLayer::token(token_authorizer));
    assert_eq!(
        call(app.clone(), Some("good"), "/me").await,
        (StatusCode::OK, "axum-user".to_owned())
    );
    let (status, body) = call(app.clone(), Some("bad"), "/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, r#"{"message":"Unauthorized"}"#);
    assert_eq!(call(app, None, "/me").await.0, StatusCode::UNAUTHORIZED);

    // route_layer: only matched routes are authorized; others still 404.
    let app = Router::new()
        .route("/me", get(whoami))
        .route_layer(AuthorizerLayer::token(token_authorizer))
        .route("/public", get(|| async { "open" }));
    assert_eq!(
        call(app.clone(), Some("good"), "/me").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(app.clone(), None, "/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(app.clone(), None, "/public").await,
        (StatusCode::OK, "open".to_owned())
    );
    assert_eq!(call(app, None, "/nowhere").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tonic_server_with_a_real_client() {
    let addr = grpc::serve(AuthorizerLayer::token(token_authorizer), grpc::health()).await;
    let mut client = health_client(addr).await;
    let mut check = async |token: Option<&'static str>| {
        grpc::check(&mut client, "", token.map(|token| ("authorization", token))).await
    };
    check(Some("good"))
        .await
        .expect("an authorized client is let through");
    let status = check(Some("bad")).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "Unauthorized");
    let status = check(None).await.expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

/// A local HTTP authorizer: answers by token, and records what it was sent.
async fn http_authorizer_server(calls: Arc<AtomicUsize>) -> SocketAddr {
    async fn authorize(
        Extension(calls): Extension<Arc<AtomicUsize>>,
        body: axum::body::Bytes,
    ) -> (StatusCode, String) {
        calls.fetch_add(1, Ordering::SeqCst);
        let event: serde_json::Value =
            serde_json::from_slice(&body).expect("the adapter sends JSON");
        assert!(
            event["methodArn"]
                .as_str()
                .is_some_and(|a| a.starts_with("arn:aws:execute-api:"))
        );
        let token = event["authorizationToken"]
            .as_str()
            .or_else(|| event["headers"]["x-token"].as_str())
            .unwrap_or_default()
            .to_owned();
        match token.as_str() {
            "allow" => (
                StatusCode::OK,
                serde_json::json!({
                    "principalId": "http-user",
                    "policyDocument": serde_json::from_str::<serde_json::Value>(ALLOW_ALL).expect("json"),
                    "context": {"plan": "pro", "n": 3, "flag": true},
                    "usageIdentifierKey": "key-from-http-authorizer-01"
                })
                .to_string(),
            ),
            "deny" => (
                StatusCode::OK,
                r#"{"principalId":"x","policyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"execute-api:Invoke","Resource":"*"}]}}"#.to_owned(),
            ),
            "unauthorized" => (StatusCode::OK, r#"{"errorMessage":"Unauthorized"}"#.to_owned()),
            "status401" => (StatusCode::UNAUTHORIZED, String::new()),
            "error500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_owned()),
            "malformed" => (StatusCode::OK, r#"{"principalId": "x", "policyDocument": "#.to_owned()),
            "bad-context" => (
                StatusCode::OK,
                format!(r#"{{"principalId":"x","policyDocument":{ALLOW_ALL},"context":{{"nested":{{"a":1}}}}}}"#),
            ),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                (StatusCode::OK, String::new())
            }
            _ => (StatusCode::BAD_REQUEST, String::new()),
        }
    }
    let app = Router::new()
        .route("/authorize", post(authorize))
        .layer(Extension(calls));
    let (listener, addr) = listener().await;
    tokio::spawn(async move { axum::serve(listener, app).await.expect("server runs") });
    addr
}

#[tokio::test]
async fn http_adapter_against_a_real_local_authorizer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = http_authorizer_server(calls.clone()).await;
    let authorizer = HttpAuthorizer::new(
        format!("http://{addr}/authorize")
            .parse()
            .expect("valid uri"),
    )
    .timeout(Duration::from_millis(300));

    // Straight through the trait.
    let event = |token: &str| {
        serde_json::from_value::<AuthorizerEvent>(serde_json::json!({
            "type": "TOKEN",
            "authorizationToken": token,
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/prod/GET/"
        }))
        .expect("valid event")
    };
    use portcullis_authorizer::Authorizer;
    let answer = authorizer
        .authorize(event("allow"))
        .await
        .expect("an answer");
    assert_eq!(answer.principal_id, "http-user");
    assert_eq!(answer.context["plan"], "pro");
    assert_eq!(
        answer.usage_identifier_key.as_deref(),
        Some("key-from-http-authorizer-01")
    );
    assert_eq!(
        authorizer.authorize(event("unauthorized")).await,
        Err(AuthorizerError::Unauthorized)
    );
    assert_eq!(
        authorizer.authorize(event("status401")).await,
        Err(AuthorizerError::Unauthorized)
    );
    assert!(
        matches!(authorizer.authorize(event("error500")).await, Err(AuthorizerError::Failed(m)) if m.contains("500"))
    );
    assert!(matches!(
        authorizer.authorize(event("malformed")).await,
        Err(AuthorizerError::Malformed(_))
    ));
    assert!(
        matches!(authorizer.authorize(event("bad-context")).await, Err(AuthorizerError::Malformed(m)) if m.contains("nested"))
    );
    let started = std::time::Instant::now();
    assert!(
        matches!(authorizer.authorize(event("slow")).await, Err(AuthorizerError::Failed(m)) if m.contains("no answer"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout cut the call short"
    );

    // Through the layer, in axum.
    let app = Router::new()
        .route(
            "/me",
            get(|Extension(context): Extension<RequestContext>| async move {
                let Some(caller) = context.caller() else {
                    return "no caller".to_owned();
                };
                format!(
                    "{} {} {}",
                    caller.principal(),
                    caller.claim("plan").and_then(|v| v.as_str()).unwrap_or("-"),
                    context
                        .usage_identifier_key()
                        .map(|k| k.expose().to_owned())
                        .unwrap_or_default()
                )
            }),
        )
        .layer(AuthorizerLayer::token(authorizer.clone()).result_ttl_seconds(0));
    assert_eq!(
        call(app.clone(), Some("allow"), "/me").await,
        (
            StatusCode::OK,
            "http-user pro key-from-http-authorizer-01".to_owned()
        )
    );
    assert_eq!(
        call(app.clone(), Some("deny"), "/me").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(app.clone(), Some("unauthorized"), "/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    for failing in ["error500", "malformed", "slow"] {
        let (status, body) = call(app.clone(), Some(failing), "/me").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{failing}");
        assert_eq!(body, r#"{"message":"Internal server error"}"#, "{failing}");
    }

    // A REQUEST authorizer over HTTP sends the headers.
    let app = Router::new()
        .route("/me", get(whoami))
        .layer(AuthorizerLayer::request(
            authorizer.clone(),
            [IdentitySource::header(http::HeaderName::from_static(
                "x-token",
            ))],
        ));
    let request = Request::get("/me")
        .header("x-token", "allow")
        .body(Body::empty())
        .expect("valid");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);

    // An unreachable endpoint is a failure too.
    let (closed, closed_addr) = listener().await;
    drop(closed);
    let unreachable =
        HttpAuthorizer::new(format!("http://{closed_addr}/").parse().expect("valid uri"));
    assert!(matches!(
        unreachable.authorize(event("allow")).await,
        Err(AuthorizerError::Failed(_))
    ));
    assert!(calls.load(Ordering::SeqCst) >= 13);
}
