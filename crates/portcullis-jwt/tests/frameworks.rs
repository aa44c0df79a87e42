//! The layer in axum (per-route groups and scopes, the `Claims<T>`
//! extractor), in a plain hyper server, and in tonic with a real client.

mod common;

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Extension, Router};
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{Caller, RequestContext};
use portcullis_jwt::{Claims, Issuer, JwtClaims, JwtLayer, Match};
use portcullis_test_support::grpc::{self, health_client};
use serde_json::json;
use tonic::Code;
use tower::ServiceExt;

fn auth() -> JwtLayer {
    JwtLayer::builder()
        .issuer(Issuer::new(ISS).jwks(jwks(&[&rsa1()])))
        .clock(clock())
        .build()
        .expect("config")
}

#[derive(serde::Deserialize)]
struct Profile {
    sub: String,
    email: String,
}

fn app() -> Router {
    let auth = auth();
    Router::new()
        .route(
            "/me",
            get(|Claims(profile): Claims<Profile>| async move {
                format!("{} {}", profile.sub, profile.email)
            }),
        )
        .route(
            "/admin",
            get(|Extension(context): Extension<RequestContext>| async move {
                context
                    .caller()
                    .map(Caller::principal)
                    .unwrap_or("-")
                    .to_owned()
            })
            .route_layer(auth.clone().require_groups(Match::Any, ["admins"])),
        )
        .route(
            "/points",
            get(|| async { "points" })
                .post(|| async { "added" })
                .route_layer(auth.clone().require_scopes(Match::Any, ["loyalty/write"])),
        )
        .route("/public", get(|| async { "public" }))
        .route_layer(auth)
}

async fn call(uri: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app()
        .oneshot(request.body(axum::body::Body::empty()).expect("request"))
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
async fn axum_routes_enforce_their_own_groups_and_scopes() {
    let member = sign(&rsa1(), &claims(json!({"email": "m@example.com"})));
    let admin = sign(
        &rsa1(),
        &claims(
            json!({"sub": "boss", "email": "b@example.com", "cognito:groups": ["admins"], "scope": "loyalty/write"}),
        ),
    );

    assert_eq!(
        call("/me", Some(&member)).await,
        (StatusCode::OK, "user-1 m@example.com".into())
    );
    assert_eq!(call("/me", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call("/admin", Some(&member)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        call("/admin", Some(&admin)).await,
        (StatusCode::OK, "boss".into())
    );
    assert_eq!(
        call("/points", Some(&member)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call("/points", Some(&admin)).await.0, StatusCode::OK);
    assert_eq!(call("/public", Some(&member)).await.0, StatusCode::OK);
    assert_eq!(call("/public", None).await.0, StatusCode::UNAUTHORIZED);

    // A token whose claims lack the extractor's fields: 401, not a 500.
    let no_email = sign(&rsa1(), &claims(json!({})));
    assert_eq!(
        call("/me", Some(&no_email)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_plain_hyper_server_is_protected() {
    let service = tower::ServiceBuilder::new()
        .layer(auth().require_groups(Match::Any, ["members"]))
        .service_fn(|request: Request<hyper::body::Incoming>| async move {
            let caller = request.caller().expect("caller").clone();
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from(caller.principal().to_owned()),
            )))
        });
    let addr = portcullis_test_support::serve::serve(move |_peer| service.clone()).await;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let token = sign(&rsa1(), &claims(json!({})));
    let request = |token: Option<&str>| {
        let mut builder = Request::get(format!("http://{addr}/"));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(http_body_util::Empty::new()).expect("request")
    };
    let response = client.request(request(Some(&token))).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "user-1");
    let response = client.request(request(None)).await.expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

async fn serve_grpc(layer: JwtLayer) -> SocketAddr {
    let (_reporter, health) = tonic_health::server::health_reporter();
    // The handler side reads the caller from the tonic request extensions.
    let health = tonic::service::interceptor::InterceptedService::new(
        health,
        |request: tonic::Request<()>| {
            let caller = request
                .extensions()
                .caller()
                .ok_or_else(|| tonic::Status::internal("no caller"))?;
            let claims = JwtClaims::from_extensions(request.extensions())
                .ok_or_else(|| tonic::Status::internal("no claims"))?;
            if claims.subject() != Some(caller.principal()) {
                return Err(tonic::Status::internal("claims and caller disagree"));
            }
            Ok(request)
        },
    );
    grpc::serve(layer, tonic::service::Routes::new(health)).await
}

async fn check(addr: SocketAddr, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = health_client(addr).await;
    let bearer = token.map(|token| format!("Bearer {token}"));
    let metadata = bearer.as_deref().map(|value| ("authorization", value));
    grpc::check(&mut client, "", metadata).await
}

#[tokio::test]
async fn a_tonic_client_sees_unauthenticated_and_permission_denied() {
    let addr = serve_grpc(auth().require_groups(Match::Any, ["members"])).await;
    let member = sign(&rsa1(), &claims(json!({})));
    check(addr, Some(&member)).await.expect("a member passes");

    let status = check(addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "Unauthorized");
    let expired = sign(&rsa1(), &claims(json!({"exp": NOW - 5})));
    let status = check(addr, Some(&expired)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "The incoming token has expired");
    let outsider = sign(&rsa1(), &claims(json!({"cognito:groups": ["guests"]})));
    assert_eq!(
        check(addr, Some(&outsider)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}
