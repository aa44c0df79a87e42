//! axum `Router::nest`: a layer mounted inside a nested router sees the path
//! with the prefix stripped; with the `axum` feature it signs-checks axum's
//! `OriginalUri` (the path the client signed) instead, and the policy's
//! execute-api ARN names the full path too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_core::clock::ManualClock;
use portcullis_core::context::RequestContextExt;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_sigv4::{
    Credential, SigV4Layer, SignatureForm, StaticCredentialProvider, VerifiedSignature,
};
use portcullis_test_support::sigv4::{ACCESS_KEY, SECRET, Signing, sign_request};
use tower::ServiceExt;

/// 2015-08-30T12:36:00Z.
const T0: u64 = 1_440_938_160;
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

fn layer() -> SigV4Layer {
    // Only the nested API's full path is allowed: a stripped path in the ARN
    // would be refused.
    let policy = PolicyDocument::from_json(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/v1/pets/*"}]}"#,
    )
    .expect("policy");
    let provider = StaticCredentialProvider::new()
        .with(Credential::new(ACCESS_KEY, SECRET, ALICE).with_policy(policy));
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "api", "prod").expect("arn");
    SigV4Layer::new(api, provider).clock(Arc::new(ManualClock::at_unix(T0)))
}

async fn pet(request: axum::extract::Request) -> String {
    let caller = request
        .caller()
        .map(|c| c.principal().to_owned())
        .unwrap_or_default();
    let verified = request
        .extensions()
        .get::<VerifiedSignature>()
        .expect("verified signature");
    let form = verified.form;
    assert_eq!(verified.scope.region.as_ref(), "us-east-1");
    assert_eq!(verified.scope.service.as_ref(), "execute-api");
    assert_eq!(
        verified.scope.date,
        time::macros::date!(2015 - 08 - 30),
        "the scope's day"
    );
    assert!(verified.signed_header_names().any(|name| name == "host"));
    assert!(!verified.streaming);
    let form = match form {
        SignatureForm::Header => "header",
        SignatureForm::Query => "query",
    };
    format!("{caller} saw {} by {form}", request.uri().path())
}

fn signed(uri: &str, presign: bool) -> Request<axum::body::Body> {
    let mut request = Request::builder()
        .uri(uri)
        .body(axum::body::Body::empty())
        .expect("request");
    let mut signing = Signing::at(SystemTime::UNIX_EPOCH + Duration::from_secs(T0));
    if presign {
        signing.presign = Some(Duration::from_secs(300));
    }
    sign_request(&mut request, b"", &signing);
    request
}

#[tokio::test]
async fn a_layer_inside_a_nested_router_verifies_the_original_uri() {
    let inner = Router::new().route("/pets/{id}", get(pet)).layer(layer());
    let app = Router::new().nest("/v1", inner);
    for presign in [false, true] {
        let response = app
            .clone()
            .oneshot(signed("https://example.com/v1/pets/7?x=1", presign))
            .await
            .expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(
            status,
            StatusCode::OK,
            "presign {presign}: {}",
            String::from_utf8_lossy(&body)
        );
        let form = if presign { "query" } else { "header" };
        assert_eq!(
            body,
            format!("{ALICE} saw /pets/7 by {form}"),
            "the handler still sees the stripped path"
        );
    }

    // A signature over the stripped path is not the one the client sent.
    let mut stripped = signed("https://example.com/pets/7?x=1", false);
    *stripped.uri_mut() = "https://example.com/v1/pets/7?x=1".parse().expect("uri");
    let response = app.clone().oneshot(stripped).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "InvalidSignatureException"
    );
}

#[tokio::test]
async fn route_layer_inside_nest_and_the_outer_layer_agree() {
    let route_layered = Router::new().nest(
        "/v1",
        Router::new()
            .route("/pets/{id}", get(pet))
            .route_layer(layer()),
    );
    let outer = Router::new()
        .nest("/v1", Router::new().route("/pets/{id}", get(pet)))
        .layer(layer());
    for app in [route_layered, outer] {
        let response = app
            .oneshot(signed("https://example.com/v1/pets/9", false))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
