//! The signed requests, layers and handler the benches use.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use portcullis_core::clock::ManualClock;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
pub use portcullis_test_support::sigv4::{ACCESS_KEY, SECRET};
use portcullis_test_support::sigv4::{Signing, sign_request};

pub const T0: u64 = 1_440_938_160;

/// A request signed by `aws-sigv4` at T0, kept as parts to rebuild cheaply.
#[derive(Clone)]
pub struct Fixture {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Fixture {
    pub fn signed(method: &str, uri: &str, body: &'static [u8], sha_header: bool) -> Self {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "example.amazonaws.com")
            .body(())
            .expect("request");
        let mut signing = Signing::at(SystemTime::UNIX_EPOCH + Duration::from_secs(T0));
        signing.content_sha256_header = sha_header;
        sign_request(&mut request, body, &signing);
        let (parts, ()) = request.into_parts();
        Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body: Bytes::from_static(body),
        }
    }

    pub fn request<B>(&self, body: B) -> Request<B> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

pub fn policy_with(statements: usize) -> PolicyDocument {
    let mut list: Vec<String> = (0..statements.saturating_sub(1))
        .map(|i| {
            format!(
                r#"{{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/other{i}/*"}}"#
            )
        })
        .collect();
    list.push(r#"{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/pets*"}"#.to_owned());
    PolicyDocument::from_json(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        list.join(",")
    ))
    .expect("policy")
}

pub fn layer(authorize: bool) -> SigV4Layer {
    let provider = StaticCredentialProvider::new().with(
        Credential::new(ACCESS_KEY, SECRET, "arn:aws:iam::123456789012:user/alice")
            .with_policy(policy_with(20)),
    );
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "api", "prod").expect("arn");
    let layer = SigV4Layer::new(api, provider).clock(Arc::new(ManualClock::at_unix(T0)));
    if authorize {
        layer
    } else {
        layer.authentication_only()
    }
}

/// The signed GET the CPU-time bench and the fixed workload send.
pub fn signed_get() -> Fixture {
    Fixture::signed(
        "GET",
        "https://example.amazonaws.com/pets?limit=10&sort=asc",
        b"",
        false,
    )
}

/// The handler behind the layer: 200 with an empty body.
pub async fn handler(
    _request: Request<SigV4Body<Full<Bytes>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::new())))
}
