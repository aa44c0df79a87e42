//! One reading of the request path: every decision that names a resource
//! makes the same decision on any spelling of a path as on its canonical
//! form (`portcullis_core::path`).
//!
//! The decisions: IAM on the SigV4 layer's execute-api ARN, a custom
//! authorizer's policy on its `methodArn` (and the `methodArn` it is sent),
//! a stage's per-method throttle, and the usage admin service's routes. The
//! paths are random, and each character is randomly left as it is or
//! percent-encoded with upper- or lower-case hex, as a client may send it
//! and sign it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use portcullis_authorizer::{AuthorizerEvent, AuthorizerLayer, AuthorizerResponse};
use portcullis_core::clock::ManualClock;
use portcullis_core::path::CanonicalPath;
use portcullis_core::plan::{MethodSelector, ThrottleSettings, UsagePlan};
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_quota::QuotaLayer;
use portcullis_quota::admin::{StaticKeys, UsageAdmin};
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
use portcullis_test_support::sigv4::{Signing, sign_request};
use portcullis_throttle::ThrottleLayer;
use proptest::prelude::*;
use tower::{Service, ServiceBuilder, ServiceExt};

const ACCESS_KEY: &str = "AKIDCANONICALPATH001";
const SECRET: &str = "canonical/path/secret/key/for/tests/0001";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const API_ID: &str = "api";
const STAGE: &str = "prod";
/// 2026-12-01T00:00:00Z.
const T0: u64 = 1_796_083_200;
/// Every resource of the stage is allowed but one customer's.
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/*"},
    {"Effect":"Deny","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/loyalty/C-1004/*"}]}"#;

fn arns() -> ExecuteApiArn {
    ExecuteApiArn::new("us-east-1", "123456789012", API_ID, STAGE).expect("valid ARN parts")
}

type Ok200 = Response<Empty<bytes::Bytes>>;

/// The service behind the layers: it answers 200.
async fn ok<B>(_: Request<B>) -> Result<Ok200, std::convert::Infallible> {
    Ok(Response::new(Empty::new()))
}

/// Signs `request` as an AWS SDK does for execute-api.
fn signed(path: &str) -> Request<Empty<bytes::Bytes>> {
    let mut request = Request::get(format!("https://example.com{path}"))
        .header("host", "example.com")
        .body(Empty::new())
        .expect("a valid request");
    let signing = Signing::at(SystemTime::UNIX_EPOCH + Duration::from_secs(T0))
        .credentials(ACCESS_KEY, SECRET, None);
    sign_request(&mut request, b"", &signing);
    request
}

/// The SigV4 layer's decision: its status and message.
async fn sigv4_decision(path: &str) -> (StatusCode, String) {
    let policy = PolicyDocument::from_json(POLICY).expect("a valid policy");
    let provider = StaticCredentialProvider::new()
        .with(Credential::new(ACCESS_KEY, SECRET, ALICE).with_policy(policy));
    let service = ServiceBuilder::new()
        .layer(SigV4Layer::new(arns(), provider).clock(Arc::new(ManualClock::at_unix(T0))))
        .service_fn(ok::<SigV4Body<Empty<bytes::Bytes>>>);
    let response = service.oneshot(signed(path)).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The custom authorizer's decision, and the `methodArn` it was sent.
async fn authorizer_decision(path: &str) -> (StatusCode, Option<String>) {
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let authorize = move |event: AuthorizerEvent| {
        let method_arn = match &event {
            AuthorizerEvent::Token(token) => token.method_arn.clone(),
            AuthorizerEvent::Request(request) => request.method_arn.clone(),
        };
        *record.lock().expect("not poisoned") = Some(method_arn);
        let policy = PolicyDocument::from_json(POLICY).expect("a valid policy");
        async move { Ok(AuthorizerResponse::new("alice", policy)) }
    };
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(authorize).method_arn(arns()))
        .service_fn(ok::<Empty<bytes::Bytes>>);
    let request = Request::get(path)
        .header("authorization", "allow")
        .body(Empty::new())
        .expect("a valid request");
    let status = service.oneshot(request).await.expect("infallible").status();
    let method_arn = seen.lock().expect("not poisoned").clone();
    (status, method_arn)
}

/// The statuses of two requests through a stage whose per-method limit on
/// `GET /loyalty/C-1004/get` allows one request: the canonical path, then
/// `path`. The second is refused exactly when both take the same bucket.
async fn throttle_decision(path: &str) -> (StatusCode, StatusCode) {
    let clock = Arc::new(ManualClock::at_unix(T0));
    let selector: MethodSelector = "/loyalty/C-1004/get/GET".parse().expect("a valid selector");
    let layer = ThrottleLayer::new(API_ID, STAGE)
        .clock(clock)
        .stage_limit(selector, ThrottleSettings::new(0.001, 1).expect("valid"));
    let mut service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(ok::<Empty<bytes::Bytes>>);
    let mut statuses = [StatusCode::OK; 2];
    for (status, path) in statuses.iter_mut().zip(["/loyalty/C-1004/get", path]) {
        let request = Request::get(path)
            .body(Empty::new())
            .expect("a valid request");
        let ready = service.ready().await.expect("infallible");
        *status = ready.call(request).await.expect("infallible").status();
    }
    (statuses[0], statuses[1])
}

/// The usage admin service's answer to `GET path`.
async fn admin_decision(path: &str) -> (StatusCode, String) {
    let plan = Arc::new(UsagePlan::new("C-1004").expect("a valid plan id"));
    let quota = QuotaLayer::new();
    let admin = UsageAdmin::new(quota.usage_api(), [plan], StaticKeys::new());
    let request = Request::get(path)
        .body(Empty::<bytes::Bytes>::new())
        .expect("a valid request");
    let response = admin.oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `path` with each character (but `/`) left as it is, or percent-encoded
/// in upper- or lower-case hex, as `choices` say.
fn spell(path: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    for (i, ch) in path.chars().enumerate() {
        match choices.get(i).copied().unwrap_or(0) % 3 {
            _ if ch == '/' => out.push(ch),
            0 => out.push(ch),
            1 => out.push_str(&format!("%{:02X}", ch as u32)),
            _ => out.push_str(&format!("%{:02x}", ch as u32)),
        }
    }
    out
}

/// Canonical paths: the denied customer's, its neighbours', and random ones
/// made of characters a path may carry unencoded.
fn canonical_paths() -> impl Strategy<Value = String> {
    let customer = prop_oneof![
        Just("C-1004".to_owned()),
        Just("C-1005".to_owned()),
        "[A-Za-z0-9._~!$&'()*+,;=:@-]{1,10}",
    ];
    let tail = prop_oneof![Just("get".to_owned()), "[a-z0-9_-]{1,6}"];
    (customer, tail)
        .prop_filter("no dot segment", |(c, t)| {
            c != "." && c != ".." && t != "." && t != ".."
        })
        .prop_map(|(customer, tail)| format!("/loyalty/{customer}/{tail}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_spelling_gets_the_canonical_paths_decisions(
        path in canonical_paths(),
        choices in prop::collection::vec(any::<u8>(), 24),
    ) {
        let spelled = spell(&path, &choices);
        prop_assert_eq!(CanonicalPath::parse(&spelled).map(CanonicalPath::into_owned), Ok(path.clone()));
        let rt = runtime();
        rt.block_on(async {
            prop_assert_eq!(sigv4_decision(&spelled).await, sigv4_decision(&path).await, "SigV4 + IAM on {}", spelled);
            prop_assert_eq!(authorizer_decision(&spelled).await, authorizer_decision(&path).await, "authorizer on {}", spelled);
            prop_assert_eq!(throttle_decision(&spelled).await, throttle_decision(&path).await, "per-method throttle on {}", spelled);
            let plan = &path["/loyalty/".len()..path.rfind('/').unwrap_or(path.len())];
            let admin_path = format!("/usageplans/{plan}");
            let admin_spelled = format!("/usageplans/{}", spell(plan, &choices));
            prop_assert_eq!(admin_decision(&admin_spelled).await, admin_decision(&admin_path).await, "admin route {}", admin_spelled);
            Ok(())
        })?;
    }
}

/// The issue's own spellings of the denied customer, each refused as the
/// canonical path is.
#[tokio::test]
async fn the_denied_customer_is_denied_in_every_spelling() {
    let (status, message) = sigv4_decision("/loyalty/C-1004/get").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(message.contains("with an explicit deny"), "{message}");
    for spelling in [
        "/loyalty/C%2D1004/get",
        "/loyalty/%43-1004/get",
        "/loyalty/C-100%34/get",
        "/loyalty/c%2d1004/get",
    ] {
        let expected = if spelling.starts_with("/loyalty/c%2d") {
            // A lower-case customer id is another customer.
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(sigv4_decision(spelling).await.0, expected, "{spelling}");
        assert_eq!(
            authorizer_decision(spelling).await.0,
            expected,
            "{spelling}"
        );
    }
}

/// What cannot be made unambiguous is refused before any policy is read.
#[tokio::test]
async fn ambiguous_paths_are_refused_by_every_decision() {
    let (status, message) = sigv4_decision("/loyalty/C-1004%2Fget").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.contains("Missing Authentication Token"),
        "{message}"
    );
    for path in [
        "/loyalty/C-1004%2Fget",
        "/loyalty/x/../C-1004/get",
        "/loyalty/%2e%2E/C-1004/get",
        "//loyalty/C-1004/get",
    ] {
        // A client's signer may normalise dot segments and `//` before it
        // signs, so the signature check may refuse first: refused either way.
        assert_eq!(
            sigv4_decision(path).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        let (status, method_arn) = authorizer_decision(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(method_arn, None, "{path}: the authorizer is never called");
        assert_eq!(
            throttle_decision(path).await.1,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            admin_decision(&format!("/usageplans{path}")).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let (status, _) = sigv4_decision("/loyalty/C%FF/get").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
