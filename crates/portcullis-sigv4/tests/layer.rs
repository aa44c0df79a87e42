//! The layer at its public surface: policy integration, what it leaves in the
//! extensions, providers, debug mode, and bad input.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::clock::ManualClock;
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{AuthMethod, Caller};
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_sigv4::{
    Credential, CredentialLookup, CredentialProvider, ProviderError, SigV4Body, SigV4Config,
    SigV4Error, SigV4Layer, SignatureForm, StaticCredentialProvider, VerifiedSignature,
};
use portcullis_test_support::sigv4::{ACCESS_KEY, SECRET, Signing, sign_request};
use tower::{ServiceBuilder, ServiceExt};

/// 2015-08-30T12:36:00Z.
const T0: u64 = 1_440_938_160;
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0)
}

fn policy(json: &str) -> PolicyDocument {
    PolicyDocument::from_json(json).expect("policy")
}

fn provider() -> StaticCredentialProvider {
    let alice = policy(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/*"},
            {"Effect":"Deny","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/DELETE/*"}]}"#,
    );
    StaticCredentialProvider::new()
        .with(Credential::new(ACCESS_KEY, SECRET, ALICE).with_policy(alice))
        .with(Credential::new("AKIDBOB", "bob-secret", BOB))
        .with(
            Credential::new("ASIAEXPIRED", "expired-secret", ALICE).with_session_token(
                "tok",
                Some(time::OffsetDateTime::from_unix_timestamp(T0 as i64 - 1).expect("time")),
            ),
        )
}

fn api() -> ExecuteApiArn {
    ExecuteApiArn::new("us-east-1", "123456789012", "api", "prod").expect("arn")
}

fn layer() -> SigV4Layer {
    SigV4Layer::new(api(), provider()).clock(Arc::new(ManualClock::at_unix(T0)))
}

type Seen = (Option<Caller>, Option<VerifiedSignature>, Bytes);

async fn call(
    layer: SigV4Layer,
    request: Request<Full<Bytes>>,
) -> (StatusCode, String, String, Option<Seen>) {
    let seen: Arc<std::sync::Mutex<Option<Seen>>> = Arc::default();
    let seen_by_handler = seen.clone();
    let service = ServiceBuilder::new().layer(layer).service_fn(
        move |request: Request<SigV4Body<Full<Bytes>>>| {
            let seen = seen_by_handler.clone();
            async move {
                let caller = request.caller().cloned();
                let verified = request.extensions().get::<VerifiedSignature>().cloned();
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                *seen.lock().expect("lock") = Some((caller, verified, body));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        },
    );
    let response = service.oneshot(request).await.expect("infallible");
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
    let message = if status.is_success() {
        String::new()
    } else {
        serde_json::from_slice::<serde_json::Value>(&body).expect("json")["message"]
            .as_str()
            .expect("message")
            .to_owned()
    };
    let seen = seen.lock().expect("lock").take();
    (status, error_type, message, seen)
}

fn signed(method: &str, uri: &str, body: &'static [u8], signing: &Signing) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    sign_request(&mut request, body, signing);
    request
}

#[tokio::test]
async fn an_allowed_principal_gets_through_with_its_caller() {
    let request = signed("GET", "https://example.com/pets/7", b"", &Signing::at(t0()));
    let (status, _, _, seen) = call(layer(), request).await;
    assert_eq!(status, StatusCode::OK);
    let (caller, verified, _) = seen.expect("handler ran");
    let caller = caller.expect("caller");
    assert_eq!(caller.principal(), ALICE);
    assert_eq!(caller.method(), AuthMethod::Iam);
    let verified = verified.expect("verified signature");
    assert_eq!(&*verified.access_key_id, ACCESS_KEY);
    assert_eq!(verified.form, SignatureForm::Header);
    assert_eq!(verified.signed_at, T0 as i64);
    assert!(!verified.temporary);
}

#[tokio::test]
async fn an_explicit_deny_and_an_implicit_deny_get_iams_messages() {
    let request = signed(
        "DELETE",
        "https://example.com/pets/7",
        b"",
        &Signing::at(t0()),
    );
    let (status, error_type, message, seen) = call(layer(), request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "AccessDeniedException");
    assert_eq!(
        message,
        format!(
            "User: {ALICE} is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:api/prod/DELETE/pets/7 with an explicit deny"
        )
    );
    assert!(seen.is_none(), "the inner service was not called");

    let bob = Signing {
        access_key: "AKIDBOB".to_owned(),
        secret: "bob-secret".to_owned(),
        ..Signing::at(t0())
    };
    let request = signed("GET", "https://example.com/pets", b"", &bob);
    let (status, error_type, message, _) = call(layer(), request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "AccessDeniedException");
    assert_eq!(
        message,
        format!(
            "User: {BOB} is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/pets"
        )
    );
}

#[tokio::test]
async fn a_resource_policy_allows_and_denies_with_the_identity_policies() {
    let resource = policy(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/*"},
            {"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/*/admin/*"}]}"#,
    );
    let layer = layer().resource_policy(resource);
    let bob = Signing {
        access_key: "AKIDBOB".to_owned(),
        secret: "bob-secret".to_owned(),
        ..Signing::at(t0())
    };
    let (status, _, _, _) = call(
        layer.clone(),
        signed("GET", "https://example.com/pets", b"", &bob),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the resource policy allows bob");
    let (status, _, message, _) = call(
        layer,
        signed(
            "GET",
            "https://example.com/admin/x",
            b"",
            &Signing::at(t0()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(message.ends_with("with an explicit deny"), "{message}");
}

#[tokio::test]
async fn authentication_only_skips_policies() {
    let bob = Signing {
        access_key: "AKIDBOB".to_owned(),
        secret: "bob-secret".to_owned(),
        ..Signing::at(t0())
    };
    let (status, _, _, _) = call(
        layer().authentication_only(),
        signed("GET", "https://example.com/", b"", &bob),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn expired_temporary_credentials_get_expired_token() {
    let signing = Signing {
        access_key: "ASIAEXPIRED".to_owned(),
        secret: "expired-secret".to_owned(),
        token: Some("tok".to_owned()),
        ..Signing::at(t0())
    };
    let (status, error_type, message, _) = call(
        layer(),
        signed("GET", "https://example.com/pets", b"", &signing),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "ExpiredTokenException");
    assert_eq!(
        message,
        "The security token included in the request is expired"
    );
}

#[tokio::test]
async fn debug_mode_shows_the_canonical_request_and_string_to_sign() {
    let mut request = signed("GET", "https://example.com/pets", b"", &Signing::at(t0()));
    *request.uri_mut() = "https://example.com/pets?tampered=1".parse().expect("uri");
    let (status, _, message, _) = call(layer().debug_signatures(true), request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.starts_with("The request signature we calculated does not match"),
        "{message}"
    );
    assert!(
        message.contains("\n\nThe Canonical String for this request should have been\n'GET\n/pets\ntampered=1\nhost:example.com\n"),
        "{message}"
    );
    assert!(message.contains("\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/execute-api/aws4_request\n"), "{message}");

    // Off by default.
    let mut request = signed("GET", "https://example.com/pets", b"", &Signing::at(t0()));
    *request.uri_mut() = "https://example.com/pets?tampered=1".parse().expect("uri");
    let (_, _, message, _) = call(layer(), request).await;
    assert!(!message.contains("Canonical String"));
}

#[derive(Debug)]
struct SlowProvider {
    inner: StaticCredentialProvider,
    calls: Arc<AtomicUsize>,
    fail: bool,
}

impl CredentialProvider for SlowProvider {
    fn lookup(&self, access_key_id: &str) -> CredentialLookup {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let found = self.inner.lookup(access_key_id);
        let fail = self.fail;
        CredentialLookup::Pending(Box::pin(async move {
            tokio::task::yield_now().await;
            if fail {
                return Err(ProviderError::new("database down"));
            }
            found.resolve().await
        }))
    }
}

#[tokio::test]
async fn an_async_provider_is_awaited_and_its_failure_is_a_500() {
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = SlowProvider {
        inner: provider(),
        calls: calls.clone(),
        fail: false,
    };
    let layer = SigV4Layer::new(api(), slow).clock(Arc::new(ManualClock::at_unix(T0)));
    let (status, _, _, seen) = call(
        layer,
        signed("GET", "https://example.com/pets", b"", &Signing::at(t0())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen.expect("ran").0.expect("caller").principal(), ALICE);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let failing = SlowProvider {
        inner: provider(),
        calls,
        fail: true,
    };
    let layer = SigV4Layer::new(api(), failing).clock(Arc::new(ManualClock::at_unix(T0)));
    let (status, error_type, _, _) = call(
        layer,
        signed("GET", "https://example.com/pets", b"", &Signing::at(t0())),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_type, "AuthorizerFailureException");
}

#[tokio::test]
async fn a_refused_response_carries_its_sigv4_error_in_the_extensions() {
    async fn refusal(layer: SigV4Layer, request: Request<Full<Bytes>>) -> Option<SigV4Error> {
        let service = ServiceBuilder::new().layer(layer).service_fn(
            |_: Request<SigV4Body<Full<Bytes>>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            },
        );
        let response = service.oneshot(request).await.expect("infallible");
        assert!(!response.status().is_success());
        response.extensions().get::<SigV4Error>().cloned()
    }
    // Refused at once: no signature.
    let unsigned = Request::get("https://example.com/pets")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(
        refusal(layer(), unsigned).await,
        Some(SigV4Error::MissingAuthenticationToken)
    );
    // Refused after awaiting the provider, which failed.
    let failing = SlowProvider {
        inner: provider(),
        calls: Arc::default(),
        fail: true,
    };
    let layer = SigV4Layer::new(api(), failing).clock(Arc::new(ManualClock::at_unix(T0)));
    let request = signed("GET", "https://example.com/pets", b"", &Signing::at(t0()));
    assert_eq!(
        refusal(layer, request).await,
        Some(SigV4Error::CredentialProvider)
    );
}

#[tokio::test]
async fn the_body_is_checked_against_x_amz_content_sha256() {
    let signing = Signing {
        content_sha256_header: true,
        ..Signing::at(t0())
    };
    let mut request = signed("POST", "https://example.com/orders", b"original", &signing);
    *request.body_mut() = Full::new(Bytes::from_static(b"tampered"));
    let (status, error_type, _, seen) = call(layer(), request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "InvalidSignatureException");
    assert!(seen.is_none());

    let request = signed("POST", "https://example.com/orders", b"original", &signing);
    let (status, _, _, seen) = call(layer(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen.expect("ran").2.as_ref(), b"original");

    // A claimed hash on an empty body.
    let mut request = signed("POST", "https://example.com/orders", b"original", &signing);
    *request.body_mut() = Full::new(Bytes::new());
    let (status, _, _, _) = call(layer(), request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_clock_skew_is_configurable() {
    let late = Signing::at(t0() - Duration::from_secs(120));
    let (status, _, _, _) = call(
        layer(),
        signed("GET", "https://example.com/pets", b"", &late),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, message, _) = call(
        layer().clock_skew(Duration::from_secs(60)),
        signed("GET", "https://example.com/pets", b"", &late),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        message,
        "Signature expired: 20150830T123400Z is now earlier than 20150830T123500Z (20150830T123600Z - 1 min.)"
    );
}

#[tokio::test]
async fn presigned_urls_expire_and_are_limited_to_seven_days() {
    let presigned = Signing {
        presign: Some(Duration::from_secs(60)),
        ..Signing::at(t0() - Duration::from_secs(90))
    };
    let (status, _, message, _) = call(
        layer(),
        signed("GET", "https://example.com/pets", b"", &presigned),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.starts_with(
            "Signature expired: 20150830T123430Z is now earlier than 20150830T123500Z"
        ),
        "{message}"
    );

    let week = Signing {
        presign: Some(Duration::from_secs(604_801)),
        ..Signing::at(t0())
    };
    let (status, error_type, message, _) = call(
        layer(),
        signed("GET", "https://example.com/pets", b"", &week),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type, "IncompleteSignatureException");
    assert_eq!(
        message,
        "X-Amz-Expires must be less than a week (in seconds) that is 604800"
    );
}

fn with_header(name: &str, value: &[u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("https://example.com/pets")
        .header("x-amz-date", "20150830T123600Z")
        .header(name, HeaderValue::from_bytes(value).expect("header value"))
        .body(Full::new(Bytes::new()))
        .expect("request")
}

#[tokio::test]
async fn malformed_authorization_headers_get_incomplete_signature() {
    let valid = signed("GET", "https://example.com/pets", b"", &Signing::at(t0()));
    let authorization = valid.headers()["authorization"]
        .to_str()
        .expect("ascii")
        .to_owned();

    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Truncated after the credential.
        (authorization.as_bytes()[..60].to_vec(), "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."),
        (b"AWS4-HMAC-SHA256".to_vec(), "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter."),
        (b"Bearer eyJhbGciOi".to_vec(), "Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 and encoded with Base64): '"),
        (format!("{authorization}, Signature=00").into_bytes(), "Authorization header has a duplicate 'Signature' parameter."),
        (b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/execute-api/aws4_request, SignedHeaders=x-amz-date, Signature=00".to_vec(), "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."),
        (b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/execute-api/aws5_request, SignedHeaders=host, Signature=00".to_vec(), "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."),
        (b"AWS4-HMAC-SHA512 Credential=x, SignedHeaders=host, Signature=00".to_vec(), "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'."),
        // Not UTF-8.
        (b"AWS4-HMAC-SHA256 Credential=\xff\xfe, SignedHeaders=host, Signature=00".to_vec(), "Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 and encoded with Base64): '"),
    ];
    for (value, want) in cases {
        let (status, error_type, message, seen) =
            call(layer(), with_header("authorization", &value)).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{}",
            String::from_utf8_lossy(&value)
        );
        assert_eq!(error_type, "IncompleteSignatureException", "{message}");
        assert!(
            message.starts_with(want),
            "{message:?} should start with {want:?}"
        );
        assert!(seen.is_none());
    }

    // A huge SignedHeaders list, under and over the Authorization size limit.
    let many: Vec<String> = (0..100).map(|i| format!("x-h{i}")).collect();
    let value = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/execute-api/aws4_request, SignedHeaders=host;{}, Signature=00",
        many.join(";")
    );
    let (status, error_type, message, _) =
        call(layer(), with_header("authorization", value.as_bytes())).await;
    assert_eq!(
        (status, error_type.as_str()),
        (StatusCode::FORBIDDEN, "IncompleteSignatureException")
    );
    assert_eq!(message, "SignedHeaders names more than 64 headers.");
    let value = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/execute-api/aws4_request, SignedHeaders=host;{}, Signature=00",
        "x".repeat(20_000)
    );
    let (status, _, message, _) =
        call(layer(), with_header("authorization", value.as_bytes())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.starts_with("Authorization header is too long"),
        "{message}"
    );

    // Two Authorization headers.
    let mut request = signed("GET", "https://example.com/pets", b"", &Signing::at(t0()));
    request.headers_mut().append(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"),
    );
    let (_, error_type, message, _) = call(layer(), request).await;
    assert_eq!(error_type, "IncompleteSignatureException");
    assert_eq!(message, "Only one Authorization header is allowed.");

    // A malformed date.
    let mut request = signed("GET", "https://example.com/pets", b"", &Signing::at(t0()));
    request.headers_mut().insert(
        "x-amz-date",
        HeaderValue::from_static("2015-08-30T12:36:00Z"),
    );
    let (_, error_type, message, _) = call(layer(), request).await;
    assert_eq!(error_type, "IncompleteSignatureException");
    assert_eq!(
        message,
        "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'. See http://en.wikipedia.org/wiki/ISO_8601"
    );

    // A signature in the header and in the query.
    let mut request = signed("GET", "https://example.com/pets", b"", &Signing::at(t0()));
    *request.uri_mut() = "https://example.com/pets?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        .parse()
        .expect("uri");
    let (_, error_type, message, _) = call(layer(), request).await;
    assert_eq!(error_type, "IncompleteSignatureException");
    assert!(message.starts_with("Only one auth mechanism allowed"));
}

#[tokio::test]
async fn malformed_presigned_queries_get_incomplete_signature() {
    let presigned = signed(
        "GET",
        "https://example.com/pets",
        b"",
        &Signing {
            presign: Some(Duration::from_secs(60)),
            ..Signing::at(t0())
        },
    );
    let query = presigned.uri().query().expect("query").to_owned();
    let cases = [
        (
            format!("{query}&X-Amz-Signature=00"),
            "AWS query-string parameters must include 'X-Amz-Signature' only once.",
        ),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20150830T123600Z".to_owned(),
            "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include 'X-Amz-Expires'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Signature'. Re-examine the query-string parameters.",
        ),
        (
            query.replace("X-Amz-Expires=60", "X-Amz-Expires=-1"),
            "X-Amz-Expires should be a number",
        ),
        (
            query.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=HMAC"),
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ),
    ];
    for (query, want) in cases {
        let request = Request::builder()
            .uri(format!("https://example.com/pets?{query}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (status, error_type, message, _) = call(layer(), request).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_type, "IncompleteSignatureException", "{message}");
        assert!(
            message.starts_with(want),
            "{message:?} should start with {want:?}"
        );
    }
}

#[tokio::test]
async fn scope_errors_name_the_date_region_and_service() {
    let cases = [
        (
            "AKIDEXAMPLE/20150831/us-east-1/execute-api/aws4_request",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150831' != '20150830', from '20150830T123600Z'.",
        ),
        (
            "AKIDEXAMPLE/20150830/eu-west-1/execute-api/aws4_request",
            "Credential should be scoped to a valid region, not 'eu-west-1'. ",
        ),
        (
            "AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request",
            "Credential should be scoped to correct service: 'execute-api'. ",
        ),
    ];
    for (credential, want) in cases {
        let value = format!(
            "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, Signature=00"
        );
        let (status, error_type, message, _) =
            call(layer(), with_header("authorization", value.as_bytes())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_type, "InvalidSignatureException");
        assert_eq!(message, want);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let body: &'static [u8] = &[b'x'; 2048];
    let request = signed(
        "POST",
        "https://example.com/upload",
        body,
        &Signing::at(t0()),
    );
    let (status, error_type, _, seen) = call(layer().max_body_bytes(1024), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_type, "RequestTooLargeException");
    assert!(seen.is_none());
}

#[tokio::test]
async fn refusals_to_grpc_clients_are_grpc_statuses() {
    let request = Request::builder()
        .uri("https://example.com/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let service = ServiceBuilder::new().layer(layer()).service_fn(
        |_: Request<SigV4Body<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        },
    );
    let response = service.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "7");
}

#[tokio::test]
async fn axum_router_layer_and_route_layer() {
    async fn whoami(request: axum::extract::Request) -> String {
        request
            .caller()
            .map(|c| c.principal().to_owned())
            .unwrap_or_default()
    }
    let routed = Router::new()
        .route("/whoami", get(whoami))
        .route_layer(layer());
    let layered = Router::new().route("/whoami", get(whoami)).layer(layer());
    for app in [routed, layered] {
        let mut request = Request::builder()
            .uri("https://example.com/whoami")
            .body(axum::body::Body::empty())
            .expect("request");
        sign_request(&mut request, b"", &Signing::at(t0()));
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, ALICE);

        let unsigned = Request::builder()
            .uri("https://example.com/whoami")
            .body(axum::body::Body::empty())
            .expect("request");
        let response = app.oneshot(unsigned).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "MissingAuthenticationTokenException"
        );
    }
}

#[test]
fn configuration_loads_and_names_bad_fields() {
    let config: SigV4Config = serde_json::from_str(
        r#"{"api":{"region":"us-east-1","account_id":"123456789012","api_id":"api","stage":"prod"},"max_body_bytes":0}"#,
    )
    .expect("parses");
    let error = SigV4Layer::from_config(config, provider()).expect_err("zero limit");
    assert_eq!(error.path(), "max_body_bytes");

    let error = serde_json::from_str::<SigV4Config>(r#"{"api":{"region":"us-east-1","account_id":"1","api_id":"a","stage":"s"},"clock_skew":5}"#)
        .expect_err("unknown field");
    assert!(error.to_string().contains("clock_skew"), "{error}");

    let error = StaticCredentialProvider::from_json(
        r#"{"credentials":[{"access_key_id":"AKID","secret_access_key":"s","principal_arn":"arn"},{"access_key_id":"AKID","secret_access_key":"t","principal_arn":"arn"}]}"#,
    )
    .expect_err("duplicate");
    assert_eq!(error.path(), "credentials[1].access_key_id", "{error}");
    let error = StaticCredentialProvider::from_json(r#"{"credentials":[{"access_key_id":"AKID","secret_access_key":"s","principal_arn":"arn","policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"execute-api:Invoke","Resource":"*"}]}]}]}"#)
        .expect_err("bad policy");
    assert!(
        error.to_string().contains("credentials[0].policies[0]"),
        "{error}"
    );
}

#[test]
fn secrets_are_redacted() {
    let credential =
        Credential::new(ACCESS_KEY, SECRET, ALICE).with_session_token("session-token-value", None);
    let debug = format!("{credential:?} {:?}", provider());
    assert!(!debug.contains(SECRET));
    assert!(!debug.contains("session-token-value"));
    assert!(debug.contains(ACCESS_KEY));
}

#[tokio::test]
async fn the_service_wraps_and_unwraps_its_inner_service() {
    #[derive(Clone, Debug, PartialEq)]
    struct Inner(u8);
    let mut service = portcullis_sigv4::SigV4::new(Inner(7), &layer());
    assert_eq!(service.get_ref(), &Inner(7));
    service.get_mut().0 = 8;
    assert_eq!(service.into_inner(), Inner(8));
    let from_shortcut = portcullis_sigv4::SigV4::<Inner>::layer(api(), provider());
    let wrapped = tower::Layer::layer(&from_shortcut, Inner(1));
    assert_eq!(wrapped.get_ref(), &Inner(1));
}
