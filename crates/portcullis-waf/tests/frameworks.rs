//! The layer in axum (`Router::layer`, `route_layer`, no socket) and in tonic
//! (a real server on 127.0.0.1:0 with a real client).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_test_support::grpc::{self, health_client};
use portcullis_waf::{AclSources, WafLayer};
use serde_json::json;
use tonic::Code;
use tower::ServiceExt;

fn vc() -> serde_json::Value {
    json!({"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "m"})
}

fn tt() -> serde_json::Value {
    json!([{"Priority": 0, "Type": "NONE"}])
}

/// Blocks requests with an `x-evil` header, requests whose body contains
/// `evil-service`, and requests from 192.0.2.0/24.
fn layer() -> WafLayer {
    let acl = json!({"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "evil-header", "Priority": 1, "Action": {"Block": {}}, "VisibilityConfig": vc(),
         "Statement": {"SizeConstraintStatement": {"FieldToMatch": {"SingleHeader": {"Name": "x-evil"}},
            "ComparisonOperator": "GE", "Size": 0, "TextTransformations": tt()}}},
        {"Name": "evil-body", "Priority": 2, "Action": {"Block": {}}, "VisibilityConfig": vc(),
         "Statement": {"ByteMatchStatement": {"SearchString": "evil-service", "PositionalConstraint": "CONTAINS",
            "FieldToMatch": {"Body": {"OversizeHandling": "CONTINUE"}}, "TextTransformations": tt()}}},
        {"Name": "bad-ips", "Priority": 3, "Action": {"Block": {}}, "VisibilityConfig": vc(),
         "Statement": {"IPSetReferenceStatement": {"ARN": "arn:bad"}}}
    ]});
    let compiled = AclSources::from_json(&acl.to_string())
        .unwrap()
        .with_ip_set_json(r#"{"IPSet": {"ARN": "arn:bad", "Addresses": ["192.0.2.0/24"]}}"#)
        .unwrap()
        .compile()
        .unwrap();
    WafLayer::new(compiled)
}

fn from(ip: &str, request: Request<Body>) -> Request<Body> {
    let mut request = request;
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 1234)));
    request
}

#[tokio::test]
async fn axum_router_layer_and_route_layer() {
    let app = Router::new()
        .route("/echo", post(|body: String| async move { body }))
        .route("/", get(|| async { "hello" }))
        .layer(layer());

    let ok = app
        .clone()
        .oneshot(from(
            "198.51.100.1",
            Request::get("/").body(Body::empty()).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let header = app
        .clone()
        .oneshot(from(
            "198.51.100.1",
            Request::get("/")
                .header("x-evil", "1")
                .body(Body::empty())
                .unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(header.status(), StatusCode::FORBIDDEN);
    assert_eq!(header.headers()["x-amzn-errortype"], "WAFFilteredException");

    // The peer address comes from axum's ConnectInfo.
    let ip = app
        .clone()
        .oneshot(from(
            "192.0.2.9",
            Request::get("/").body(Body::empty()).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(ip.status(), StatusCode::FORBIDDEN);

    let body = app
        .clone()
        .oneshot(from(
            "198.51.100.1",
            Request::post("/echo")
                .body(Body::from("call evil-service now"))
                .unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(body.status(), StatusCode::FORBIDDEN);

    let echoed = app
        .oneshot(from(
            "198.51.100.1",
            Request::post("/echo")
                .body(Body::from("a fine body"))
                .unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(echoed.status(), StatusCode::OK);
    assert_eq!(
        echoed.into_body().collect().await.unwrap().to_bytes(),
        "a fine body"
    );

    // route_layer: only matched routes are guarded; unknown routes stay 404.
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route_layer(layer());
    let guarded = app
        .clone()
        .oneshot(from(
            "192.0.2.1",
            Request::get("/").body(Body::empty()).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(guarded.status(), StatusCode::FORBIDDEN);
    let missing = app
        .oneshot(from(
            "192.0.2.1",
            Request::get("/nope").body(Body::empty()).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn serve(layer: WafLayer) -> SocketAddr {
    grpc::serve(layer, grpc::health()).await
}

async fn check(addr: SocketAddr, service: &str, evil_header: bool) -> Result<(), tonic::Status> {
    let mut client = health_client(addr).await;
    grpc::check(&mut client, service, evil_header.then_some(("x-evil", "1"))).await
}

#[tokio::test]
async fn tonic_server_with_a_real_client() {
    let addr = serve(layer()).await;
    check(addr, "", false)
        .await
        .expect("an allowed call succeeds");

    let refused = check(addr, "", true).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(refused.message(), "Forbidden");

    // The protobuf body is inspected (the service name is in it) and, when
    // allowed, reaches the health service whole: an unknown service is
    // NotFound from the health service itself.
    let body = check(addr, "evil-service", false).await.unwrap_err();
    assert_eq!(body.code(), Code::PermissionDenied);
    let unknown = check(addr, "some-other-service", false).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // The client is 127.0.0.1 (tonic's TcpConnectInfo): an IP set holding it blocks.
    let acl = json!({"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "loopback", "Priority": 1, "Action": {"Block": {}}, "VisibilityConfig": vc(),
         "Statement": {"IPSetReferenceStatement": {"ARN": "arn:lo"}}}]});
    let compiled = AclSources::from_json(&acl.to_string())
        .unwrap()
        .with_ip_set_json(r#"{"IPSet": {"ARN": "arn:lo", "Addresses": ["127.0.0.0/8"]}}"#)
        .unwrap()
        .compile()
        .unwrap();
    let addr = serve(WafLayer::new(compiled)).await;
    assert_eq!(
        check(addr, "", false).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}
