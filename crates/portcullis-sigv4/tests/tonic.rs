//! The layer in a real tonic server (the standard health service), called by a
//! real tonic client over 127.0.0.1 whose requests are signed by `aws-sigv4`
//! (with `UNSIGNED-PAYLOAD`, as gRPC bodies stream).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_sigv4::{Credential, SigV4Layer, StaticCredentialProvider};
use portcullis_test_support::grpc;
use portcullis_test_support::sigv4::{ACCESS_KEY, REGION, SECRET, Signing, sign_request};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

async fn serve() -> SocketAddr {
    let allow = PolicyDocument::from_json(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke",
            "Resource":"arn:aws:execute-api:us-east-1:123456789012:grpc/prod/POST/grpc.health.v1.Health/*"}}"#,
    )
    .expect("policy");
    let provider = StaticCredentialProvider::new()
        .with(
            Credential::new(ACCESS_KEY, SECRET, "arn:aws:iam::123456789012:user/alice")
                .with_policy(allow),
        )
        .with(Credential::new(
            "AKIDBOB",
            "bob-secret",
            "arn:aws:iam::123456789012:user/bob",
        ));
    let api = ExecuteApiArn::new(REGION, "123456789012", "grpc", "prod").expect("arn");
    // gRPC bodies stream: the client signs UNSIGNED-PAYLOAD, which the
    // layer accepts only when asked to.
    grpc::serve(
        SigV4Layer::new(api, provider).allow_unsigned_payload(true),
        grpc::health(),
    )
    .await
}

/// A channel that signs every request, as an AWS SDK would.
#[derive(Clone)]
struct Signed {
    inner: Channel,
    addr: SocketAddr,
    signing: Option<Signing>,
}

impl tower::Service<http::Request<tonic::body::Body>> for Signed {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // The channel adds the authority later; the signer needs it now.
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *request.uri_mut() = format!("http://{}{path}", self.addr).parse().expect("uri");
        if let Some(signing) = &self.signing {
            let signing = Signing {
                unsigned_payload: true,
                ..signing.clone()
            };
            sign_request(&mut request, b"", &signing);
        }
        Box::pin(self.inner.call(request))
    }
}

async fn check(addr: SocketAddr, signing: Option<Signing>) -> Result<(), tonic::Status> {
    let mut client = HealthClient::new(Signed {
        inner: grpc::channel(addr).await,
        addr,
        signing,
    });
    grpc::check(&mut client, "", []).await
}

#[tokio::test]
async fn a_tonic_client_must_sign_and_be_allowed() {
    let addr = serve().await;

    check(addr, Some(Signing::now()))
        .await
        .expect("a signed, allowed call");

    let status = check(addr, None).await.expect_err("unsigned");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "Missing Authentication Token");

    let wrong = Signing {
        secret: "wrong".to_owned(),
        ..Signing::now()
    };
    let status = check(addr, Some(wrong)).await.expect_err("wrong secret");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .starts_with("The request signature we calculated does not match")
    );

    let bob = Signing {
        access_key: "AKIDBOB".to_owned(),
        secret: "bob-secret".to_owned(),
        ..Signing::now()
    };
    let status = check(addr, Some(bob)).await.expect_err("no policy");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:grpc/prod/POST/grpc.health.v1.Health/Check"
    );
}
