//! Live signing: requests signed now by the `aws-sigv4` crate, sent over real
//! HTTP to an axum server on 127.0.0.1 with the layer.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request as AxumRequest;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_core::context::RequestContextExt;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_sigv4::{Credential, SigV4Layer, StaticCredentialProvider};
use portcullis_test_support::sigv4::{ACCESS_KEY, REGION, SECRET, Signing, sign_request};

const TEMP_KEY: &str = "ASIATEMPORARYKEY";
const TEMP_SECRET: &str = "temporary/secret+key";
const TOKEN: &str = "FwoGZXIvYXdzEPT//////////wEaDtemporary+token/with=chars";

/// Echoes what it received: method, path, query, caller and body.
async fn echo(request: AxumRequest) -> String {
    let caller = request
        .caller()
        .map(|c| c.principal().to_owned())
        .unwrap_or_default();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    format!(
        "{method} {path} ?{query} by {caller} body {}",
        String::from_utf8_lossy(&body)
    )
}

async fn serve() -> SocketAddr {
    let allow_all = PolicyDocument::from_json(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:live/prod/*"}]}"#,
    )
    .expect("policy");
    let provider = StaticCredentialProvider::new()
        .with(
            Credential::new(ACCESS_KEY, SECRET, "arn:aws:iam::123456789012:user/alice")
                .with_policy(allow_all.clone()),
        )
        .with(
            Credential::new(
                TEMP_KEY,
                TEMP_SECRET,
                "arn:aws:sts::123456789012:assumed-role/app/session",
            )
            .with_policy(allow_all)
            .with_session_token(
                TOKEN,
                Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
            ),
        );
    let api = ExecuteApiArn::new(REGION, "123456789012", "live", "prod").expect("arn");
    let app = Router::new()
        .fallback(echo)
        .layer(SigV4Layer::new(api, provider).max_body_bytes(4 * 1024 * 1024));
    let (listener, addr) = portcullis_test_support::serve::listener().await;
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server");
    });
    addr
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    signing: Option<&Signing>,
) -> (StatusCode, String, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path_and_query}"))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    if let Some(signing) = signing {
        sign_request(&mut request, body, signing);
    }
    let response = tokio::time::timeout(Duration::from_secs(10), client().request(request))
        .await
        .expect("in time")
        .expect("response");
    let status = response.status();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        error_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn requests_signed_by_aws_sigv4_pass_over_http() {
    let addr = serve().await;
    let alice = "arn:aws:iam::123456789012:user/alice";

    // Unsigned.
    let (status, error_type, _) = send(addr, "GET", "/pets", b"", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "MissingAuthenticationTokenException");

    // GET with no body.
    let (status, _, body) = send(addr, "GET", "/pets", b"", Some(&Signing::now())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, format!("GET /pets ? by {alice} body "));

    // POST with a body, hashed by the layer (no x-amz-content-sha256).
    let (status, _, body) = send(
        addr,
        "POST",
        "/orders",
        b"{\"miles\": 1200}",
        Some(&Signing::now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        format!("POST /orders ? by {alice} body {{\"miles\": 1200}}")
    );

    // POST with a 1 MiB body and a signed x-amz-content-sha256.
    let big: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let signing = Signing {
        content_sha256_header: true,
        ..Signing::now()
    };
    let (status, _, body) = send(addr, "PUT", "/bulk", &big, Some(&signing)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with(std::str::from_utf8(&big).expect("ascii")));

    // UNSIGNED-PAYLOAD: refused unless the layer opts in (tests/tonic.rs
    // does, and sees the body passed through without hashing).
    let signing = Signing {
        unsigned_payload: true,
        ..Signing::now()
    };
    let (status, error_type, body) =
        send(addr, "POST", "/stream", b"not hashed", Some(&signing)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_type, "IncompleteSignatureException");
    assert!(body.contains("UNSIGNED-PAYLOAD is not accepted"), "{body}");

    // Repeated and unsorted query keys, encoded values.
    let query = "/search?z=last&a=2&a=1&b=x%20y&c=%2Fslash&empty=&plus=a+b";
    let (status, _, body) = send(addr, "GET", query, b"", Some(&Signing::now())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("?z=last&a=2&a=1"), "{body}");

    // Reserved and unicode characters in the path.
    for path in [
        "/pets/a%3Ab/%E2%9C%93/caf%C3%A9",
        "/x/@!$'()*,;=:/~tilde",
        "/spaces/a%20b/%7E",
    ] {
        let (status, _, body) = send(addr, "GET", path, b"", Some(&Signing::now())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // An encoded `/` and dot segments verify as signed, but name no
    // resource a policy can be evaluated against (portcullis_core::path):
    // refused as API Gateway refuses a path that matches no resource, not as
    // a bad signature.
    for path in ["/spaces/a%20b/%2F", "/dots/./a/../b"] {
        let (status, _, body) = send(addr, "GET", path, b"", Some(&Signing::now())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body.contains("Missing Authentication Token"),
            "{path}: {body}"
        );
    }

    // Temporary credentials with a session token.
    let temporary = Signing {
        access_key: TEMP_KEY.to_owned(),
        secret: TEMP_SECRET.to_owned(),
        token: Some(TOKEN.to_owned()),
        ..Signing::now()
    };
    let (status, _, body) = send(addr, "GET", "/me", b"", Some(&temporary)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("assumed-role/app/session"));

    // The same key with a wrong token.
    let wrong_token = Signing {
        token: Some("not-the-token".to_owned()),
        ..temporary.clone()
    };
    let (status, error_type, body) = send(addr, "GET", "/me", b"", Some(&wrong_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "UnrecognizedClientException");
    assert!(body.contains("The security token included in the request is invalid."));

    // A presigned URL, with and without a session token.
    let presigned = Signing {
        presign: Some(Duration::from_secs(300)),
        ..Signing::now()
    };
    let (status, _, body) = send(addr, "GET", "/download?file=a.txt", b"", Some(&presigned)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("X-Amz-Signature="));
    let presigned_temporary = Signing {
        presign: Some(Duration::from_secs(300)),
        ..temporary.clone()
    };
    let (status, _, body) = send(addr, "GET", "/download", b"", Some(&presigned_temporary)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A wrong secret.
    let wrong_secret = Signing {
        secret: "not-the-secret".to_owned(),
        ..Signing::now()
    };
    let (status, error_type, _) = send(addr, "GET", "/pets", b"", Some(&wrong_secret)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "InvalidSignatureException");

    // An unknown key.
    let unknown = Signing {
        access_key: "AKIDUNKNOWN".to_owned(),
        ..Signing::now()
    };
    let (status, error_type, _) = send(addr, "GET", "/pets", b"", Some(&unknown)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "UnrecognizedClientException");

    // Signed ten minutes ago.
    let old = Signing::at(std::time::SystemTime::now() - Duration::from_secs(600));
    let (status, error_type, body) = send(addr, "GET", "/pets", b"", Some(&old)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "InvalidSignatureException");
    assert!(body.contains("Signature expired: "), "{body}");

    // A body over the layer's 4 MiB limit.
    let huge = vec![b'x'; 4 * 1024 * 1024 + 1];
    let (status, error_type, _) = send(addr, "POST", "/upload", &huge, Some(&Signing::now())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_type, "RequestTooLargeException");
}

/// The body reaches the handler as the chunks the client streamed.
#[tokio::test]
async fn a_streamed_body_is_hashed_and_replayed() {
    let addr = serve().await;
    let chunks: Vec<Bytes> = (0..50)
        .map(|i| Bytes::from(format!("chunk-{i:03};")))
        .collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/chunks"))
        .body(())
        .expect("request");
    sign_request(&mut request, &whole, &Signing::now());
    let (parts, ()) = request.into_parts();
    let stream = futures_stream(chunks);
    let request = Request::from_parts(parts, Body::from_stream(stream));
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let response = client.request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).ends_with(std::str::from_utf8(&whole).expect("ascii")));
}

fn futures_stream(
    chunks: Vec<Bytes>,
) -> impl tokio_stream::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    tokio_stream::iter(chunks.into_iter().map(Ok))
}
