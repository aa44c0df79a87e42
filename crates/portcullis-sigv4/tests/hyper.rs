//! The layer in a plain hyper server: the peer address reaches IAM's
//! `aws:SourceIp` condition through the core client-IP resolver.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_core::client_ip::PeerAddr;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
use portcullis_test_support::sigv4::{ACCESS_KEY, REGION, SECRET, Signing, sign_request};
use tower::ServiceBuilder;

fn only_from(network: &str) -> PolicyDocument {
    PolicyDocument::from_json(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"execute-api:Invoke",
            "Resource":"arn:aws:execute-api:us-east-1:123456789012:hyper/prod/*",
            "Condition":{{"IpAddress":{{"aws:SourceIp":"{network}"}}}}}}}}"#
    ))
    .expect("policy")
}

async fn serve() -> SocketAddr {
    let provider = StaticCredentialProvider::new()
        .with(
            Credential::new(ACCESS_KEY, SECRET, "arn:aws:iam::123456789012:user/alice")
                .with_policy(only_from("127.0.0.0/8")),
        )
        .with(
            Credential::new(
                "AKIDBOB",
                "bob-secret",
                "arn:aws:iam::123456789012:user/bob",
            )
            .with_policy(only_from("10.0.0.0/8")),
        );
    let api = ExecuteApiArn::new(REGION, "123456789012", "hyper", "prod").expect("arn");
    let layer = SigV4Layer::new(api, provider);
    portcullis_test_support::serve::serve(move |peer| {
        ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                request
            })
            .layer(layer.clone())
            .service_fn(|request: Request<SigV4Body<Incoming>>| async move {
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                Ok::<_, Infallible>(Response::new(Full::new(body)))
            })
    })
    .await
}

async fn send(addr: SocketAddr, body: &'static [u8], signing: &Signing) -> (StatusCode, Bytes) {
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/echo"))
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    sign_request(&mut request, body, signing);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("response");
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    )
}

#[tokio::test]
async fn a_plain_hyper_server_checks_signature_and_source_ip() {
    let addr = serve().await;
    let (status, body) = send(addr, b"from loopback", &Signing::now()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "from loopback");

    let bob = Signing {
        access_key: "AKIDBOB".to_owned(),
        secret: "bob-secret".to_owned(),
        ..Signing::now()
    };
    let (status, body) = send(addr, b"from loopback", &bob).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        String::from_utf8_lossy(&body).contains("User: arn:aws:iam::123456789012:user/bob is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:hyper/prod/POST/echo"),
        "{body:?}"
    );
}
