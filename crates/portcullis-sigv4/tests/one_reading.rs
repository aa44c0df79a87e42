//! Header-first checks (nothing of the body is read before everything the
//! headers allow is checked), the body-buffer budget at the public surface,
//! and "one reading of the request": fields the signature check could read
//! one way and the service another.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use portcullis_core::clock::ManualClock;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
use portcullis_test_support::sigv4::{ACCESS_KEY, SECRET, Signing, sign_request};
use tower::{ServiceBuilder, ServiceExt};

/// 2015-08-30T12:36:00Z.
const T0: u64 = 1_440_938_160;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0)
}

fn layer() -> SigV4Layer {
    let provider = StaticCredentialProvider::new()
        .with(Credential::new(
            ACCESS_KEY,
            SECRET,
            "arn:aws:iam::123456789012:user/alice",
        ))
        .with(
            Credential::new("ASIATEMP", "temp-secret", "arn:aws:sts::123456789012:x")
                .with_session_token("the-token", None),
        );
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "api", "prod").expect("arn");
    SigV4Layer::new(api, provider)
        .authentication_only()
        .clock(Arc::new(ManualClock::at_unix(T0)))
}

/// A body of `chunks` that counts how often it is polled, announcing its
/// size or not, and that can stall (stay pending) after its chunks.
#[derive(Clone)]
struct Watched {
    chunks: Vec<Bytes>,
    sized: bool,
    stall: bool,
    polls: Arc<AtomicUsize>,
}

impl Watched {
    fn new(chunks: &[&'static [u8]], sized: bool) -> Self {
        Self {
            chunks: chunks.iter().map(|c| Bytes::from_static(c)).collect(),
            sized,
            stall: false,
            polls: Arc::default(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.chunks.is_empty() {
            return if self.stall {
                Poll::Pending
            } else {
                Poll::Ready(None)
            };
        }
        let chunk = self.chunks.remove(0);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && !self.stall
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

/// A request signed by `aws-sigv4` at T0 for `uri`, whose body is `body`.
fn signed(method: &str, uri: &str, body: Watched, signing: &Signing) -> Request<Watched> {
    let bytes = body.bytes();
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(body)
        .expect("request");
    sign_request(&mut request, &bytes, signing);
    request
}

/// What the inner service saw: the query and its bodies, if it ran.
type Stash = Arc<Mutex<Vec<SigV4Body<Watched>>>>;

struct Outcome {
    status: StatusCode,
    error_type: String,
    message: String,
    query: Option<String>,
}

/// Sends `request` through `layer`; the inner service keeps the body it gets
/// in `stash` (unread) when `stash` is given, else reads it.
async fn call(layer: SigV4Layer, request: Request<Watched>, stash: Option<Stash>) -> Outcome {
    let query = Arc::new(Mutex::new(None));
    let seen = query.clone();
    let service = ServiceBuilder::new().layer(layer).service_fn(
        move |request: Request<SigV4Body<Watched>>| {
            let seen = seen.clone();
            let stash = stash.clone();
            async move {
                *seen.lock().expect("lock") = Some(request.uri().query().unwrap_or("").to_owned());
                match stash {
                    Some(stash) => stash.lock().expect("lock").push(request.into_body()),
                    None => {
                        request.into_body().collect().await.expect("body");
                    }
                }
                Ok::<_, Infallible>(Response::new(String::from("ok")))
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
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let query = query.lock().expect("lock").take();
    Outcome {
        status,
        error_type,
        message,
        query,
    }
}

fn authorization(request: &Request<Watched>) -> String {
    request.headers()["authorization"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

fn set_authorization(request: &mut Request<Watched>, value: &str) {
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(value).expect("header value"),
    );
}

#[tokio::test]
async fn everything_the_headers_allow_is_checked_before_a_body_byte_is_read() {
    let body = || Watched::new(&[b"first chunk ", b"second chunk"], false);
    let uri = "https://example.amazonaws.com/upload";
    let at = Signing::at(t0());

    // The control: a good signature reads (and hashes) the body.
    let good = signed("POST", uri, body(), &at);
    let polls = good.body().polls.clone();
    let outcome = call(layer(), good, None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);
    assert!(polls.load(Ordering::SeqCst) > 0);

    let mut cases: Vec<(&str, Request<Watched>, &str, &str)> = Vec::new();
    // An access key id no provider knows.
    let unknown = Signing {
        access_key: "AKIDUNKNOWN".into(),
        ..at.clone()
    };
    cases.push((
        "unknown key",
        signed("POST", uri, body(), &unknown),
        "UnrecognizedClientException",
        "security token included in the request is invalid",
    ));
    // Signed ten minutes ago: outside the skew.
    let old = Signing::at(t0() - Duration::from_secs(600));
    cases.push((
        "clock skew",
        signed("POST", uri, body(), &old),
        "InvalidSignatureException",
        "Signature expired",
    ));
    // Another region in the scope.
    let mut region = signed("POST", uri, body(), &at);
    let text = authorization(&region).replace("/us-east-1/", "/eu-west-1/");
    set_authorization(&mut region, &text);
    cases.push((
        "region",
        region,
        "InvalidSignatureException",
        "scoped to a valid region",
    ));
    // Signatures that could never match: upper-case hex, too short, not hex.
    for (name, bad) in [
        ("upper-case signature", None),
        ("short signature", Some("abc123")),
        ("non-hex signature", Some(&*"z".repeat(64))),
    ] {
        let mut request = signed("POST", uri, body(), &at);
        let text = authorization(&request);
        let (head, signature) = text.split_once("Signature=").expect("signature");
        let bad = bad.map_or_else(|| signature.to_ascii_uppercase(), str::to_owned);
        set_authorization(&mut request, &format!("{head}Signature={bad}"));
        cases.push((
            name,
            request,
            "InvalidSignatureException",
            "signature we calculated does not match",
        ));
    }
    // `X-Amz-Date` present but not signed.
    let mut unsigned_date = signed("POST", uri, body(), &at);
    let text = authorization(&unsigned_date)
        .replace("SignedHeaders=host;x-amz-date", "SignedHeaders=host");
    set_authorization(&mut unsigned_date, &text);
    cases.push((
        "x-amz-date not signed",
        unsigned_date,
        "IncompleteSignatureException",
        "'X-Amz-Date' must be a 'SignedHeader'",
    ));
    // `host` not signed.
    let mut unsigned_host = signed("POST", uri, body(), &at);
    let text = authorization(&unsigned_host)
        .replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
    set_authorization(&mut unsigned_host, &text);
    cases.push((
        "host not signed",
        unsigned_host,
        "IncompleteSignatureException",
        "'Host' or ':authority' must be a 'SignedHeader'",
    ));
    // A malformed `x-amz-content-sha256`.
    let mut bad_hash = signed("POST", uri, body(), &at);
    bad_hash.headers_mut().insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("not-a-hash"),
    );
    cases.push((
        "x-amz-content-sha256",
        bad_hash,
        "IncompleteSignatureException",
        "x-amz-content-sha256 must be",
    ));
    // `UNSIGNED-PAYLOAD`, refused by default.
    let unsigned = Signing {
        unsigned_payload: true,
        ..at.clone()
    };
    cases.push((
        "UNSIGNED-PAYLOAD",
        signed("POST", uri, body(), &unsigned),
        "IncompleteSignatureException",
        "UNSIGNED-PAYLOAD is not accepted",
    ));

    for (name, request, error_type, message) in cases {
        let polls = request.body().polls.clone();
        let outcome = call(layer(), request, None).await;
        assert_eq!(outcome.status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(
            outcome.error_type, error_type,
            "{name}: {}",
            outcome.message
        );
        assert!(
            outcome.message.contains(message),
            "{name}: {}",
            outcome.message
        );
        assert_eq!(polls.load(Ordering::SeqCst), 0, "{name}: the body was read");
    }
}

#[tokio::test]
async fn unsigned_payload_is_accepted_only_when_asked_for() {
    let unsigned = Signing {
        unsigned_payload: true,
        ..Signing::at(t0())
    };
    let request = signed(
        "POST",
        "https://example.amazonaws.com/stream",
        Watched::new(&[b"streamed, not hashed"], false),
        &unsigned,
    );
    let polls = request.body().polls.clone();
    let outcome = call(layer().allow_unsigned_payload(true), request, None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);
    // Passed through: only the inner service read it (two polls: the chunk,
    // then the end).
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_past_the_budget_is_throttled_and_the_budget_comes_back() {
    let layer = layer().max_buffered_body_bytes(100);
    let uri = "https://example.amazonaws.com/upload";
    let at = Signing::at(t0());
    let throttled = |outcome: &Outcome| {
        outcome.status == StatusCode::TOO_MANY_REQUESTS
            && outcome.error_type == "TooManyRequestsException"
            && outcome.message == "Too Many Requests"
    };

    // A sized body over the budget: refused before a byte is read, even
    // though its signature is good.
    let request = signed("POST", uri, Watched::new(&[&[b'a'; 101]], true), &at);
    let polls = request.body().polls.clone();
    let outcome = call(layer.clone(), request, None).await;
    assert!(throttled(&outcome), "{}", outcome.message);
    assert_eq!(polls.load(Ordering::SeqCst), 0);

    // A chunked body is reserved as it comes: 60 bytes fit, 120 do not.
    let request = signed(
        "POST",
        uri,
        Watched::new(&[&[b'b'; 60], &[b'c'; 60]], false),
        &at,
    );
    let polls = request.body().polls.clone();
    let outcome = call(layer.clone(), request, None).await;
    assert!(throttled(&outcome), "{}", outcome.message);
    assert_eq!(
        polls.load(Ordering::SeqCst),
        2,
        "refused at the second chunk"
    );

    // A body the inner service holds unread keeps its bytes reserved, for
    // every clone of the layer; they come back when it is dropped.
    let stash: Stash = Arc::default();
    let held = signed("POST", uri, Watched::new(&[&[b'd'; 70]], true), &at);
    let outcome = call(layer.clone(), held, Some(stash.clone())).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);
    let next = || signed("POST", uri, Watched::new(&[&[b'e'; 40]], true), &at);
    let outcome = call(layer.clone(), next(), None).await;
    assert!(throttled(&outcome), "70 + 40 > 100: {}", outcome.message);
    stash.lock().expect("lock").clear();
    let outcome = call(layer.clone(), next(), None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);

    // A body the inner service reads to its end gives its bytes back too.
    let stash: Stash = Arc::default();
    let outcome = call(layer.clone(), next(), Some(stash.clone())).await;
    assert_eq!(outcome.status, StatusCode::OK);
    let body = stash.lock().expect("lock").pop().expect("stashed");
    assert_eq!(body.collect().await.expect("body").to_bytes().len(), 40);
    let full = signed("POST", uri, Watched::new(&[&[b'f'; 100]], true), &at);
    let outcome = call(layer.clone(), full, None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);

    // A request dropped while its body is read gives its bytes back.
    let mut stalled = Watched::new(&[&[b'g'; 90]], false);
    stalled.stall = true;
    let request = signed("POST", uri, stalled, &at);
    let call_stalled = call(layer.clone(), request, None);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), call_stalled)
            .await
            .is_err(),
        "the stalled body keeps the request waiting"
    );
    let full = signed("POST", uri, Watched::new(&[&[b'h'; 100]], true), &at);
    let outcome = call(layer, full, None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);
}

#[tokio::test]
async fn the_host_header_and_the_uri_authority_must_agree() {
    let at = Signing::at(t0());
    let empty = || Watched::new(&[], true);
    // aws-sigv4 signs the URI's authority as `host`; the request carries
    // no Host header, so the layer signs the authority too.
    let request = signed("GET", "https://example.amazonaws.com/pets", empty(), &at);
    assert_eq!(call(layer(), request, None).await.status, StatusCode::OK);

    // The same host in the header: one host.
    let mut request = signed("GET", "https://example.amazonaws.com/pets", empty(), &at);
    request
        .headers_mut()
        .insert("host", HeaderValue::from_static("example.amazonaws.com"));
    assert_eq!(call(layer(), request, None).await.status, StatusCode::OK);

    // A Host the signature covers (the header is what is signed) but the
    // absolute-form target names another: RFC 9112 has the server take the
    // target's, so the service would see a host no one signed.
    let mut request = signed("GET", "https://example.amazonaws.com/pets", empty(), &at);
    let signed_for = "example.amazonaws.com";
    *request.uri_mut() = "https://evil.example/pets".parse().expect("uri");
    request
        .headers_mut()
        .insert("host", HeaderValue::from_static(signed_for));
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert_eq!(outcome.error_type, "IncompleteSignatureException");
    assert!(
        outcome.message.contains("Host header and the authority"),
        "{}",
        outcome.message
    );

    // Two Host headers.
    let mut request = signed("GET", "https://a.example/pets", empty(), &at);
    *request.uri_mut() = "/pets".parse().expect("uri");
    request
        .headers_mut()
        .append("host", HeaderValue::from_static("a.example"));
    request
        .headers_mut()
        .append("host", HeaderValue::from_static("b.example"));
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert!(
        outcome.message.contains("Only one Host header"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn the_skew_window_is_the_signing_dates_when_date_and_x_amz_date_disagree() {
    let at = Signing::at(t0());
    let uri = "https://example.amazonaws.com/pets";
    // X-Amz-Date (signed, now) wins over a Date header from 2011.
    let mut request = signed("GET", uri, Watched::new(&[], true), &at);
    request.headers_mut().insert(
        "date",
        HeaderValue::from_static("Fri, 09 Sep 2011 23:36:00 GMT"),
    );
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);

    // X-Amz-Date ten minutes old, with a current Date header: expired, and
    // the message names the X-Amz-Date the signature used.
    let old = Signing::at(t0() - Duration::from_secs(600));
    let mut request = signed("GET", uri, Watched::new(&[], true), &old);
    request.headers_mut().insert(
        "date",
        HeaderValue::from_static("Sun, 30 Aug 2015 12:36:00 GMT"),
    );
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert!(
        outcome
            .message
            .starts_with("Signature expired: 20150830T122600Z is now earlier than"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn a_security_token_is_read_from_one_place_only() {
    let temporary = Signing {
        access_key: "ASIATEMP".into(),
        secret: "temp-secret".into(),
        token: Some("the-token".into()),
        ..Signing::at(t0())
    };
    let uri = "https://example.amazonaws.com/pets";
    let request = signed("GET", uri, Watched::new(&[], true), &temporary);
    assert_eq!(call(layer(), request, None).await.status, StatusCode::OK);

    // Header form with a token in the query too (signed as a plain query
    // parameter): refused.
    let request = signed(
        "GET",
        "https://example.amazonaws.com/pets?X-Amz-Security-Token=other",
        Watched::new(&[], true),
        &temporary,
    );
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert!(
        outcome
            .message
            .contains("belongs in the header with an Authorization header"),
        "{}",
        outcome.message
    );

    // A presigned URL with a token header too: refused.
    let presigned = Signing {
        presign: Some(Duration::from_secs(60)),
        ..temporary.clone()
    };
    let request = signed("GET", uri, Watched::new(&[], true), &presigned);
    assert_eq!(call(layer(), request, None).await.status, StatusCode::OK);
    let mut request = signed("GET", uri, Watched::new(&[], true), &presigned);
    request.headers_mut().insert(
        "x-amz-security-token",
        HeaderValue::from_static("the-token"),
    );
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert!(
        outcome.message.contains("belongs in the query string"),
        "{}",
        outcome.message
    );

    // A presigned URL with an Authorization header: refused.
    let mut request = signed("GET", uri, Watched::new(&[], true), &presigned);
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer x"));
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::FORBIDDEN);
    assert!(
        outcome
            .message
            .starts_with("Only one auth mechanism allowed"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn the_order_of_repeated_query_keys_and_header_values_is_not_signed() {
    // SigV4 sorts the canonical query by key, then value: `a=1&a=2` and
    // `a=2&a=1` have one canonical form, so one signature covers both. The
    // service sees the query as sent; a reader that keeps the first or last
    // of a repeated key (axum's `Query<HashMap<..>>` keeps the last) reads a
    // value the signer did not put last. Documented in the crate docs.
    let at = Signing::at(t0());
    let mut request = signed(
        "GET",
        "https://example.amazonaws.com/pets?a=1&a=2",
        Watched::new(&[], true),
        &at,
    );
    *request.uri_mut() = "https://example.amazonaws.com/pets?a=2&a=1"
        .parse()
        .expect("uri");
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);
    assert_eq!(outcome.query.as_deref(), Some("a=2&a=1"));

    // A changed value is still refused: every value is signed.
    let mut request = signed(
        "GET",
        "https://example.amazonaws.com/pets?a=1&a=2",
        Watched::new(&[], true),
        &at,
    );
    *request.uri_mut() = "https://example.amazonaws.com/pets?a=1&a=3"
        .parse()
        .expect("uri");
    assert_eq!(
        call(layer(), request, None).await.status,
        StatusCode::FORBIDDEN
    );

    // Repeated headers are signed joined by `,` in order: `x-v: a, b` in one
    // header and `x-v: a` + `x-v: b` have one canonical form, so
    // `HeaderMap::get` (the first value only) can be made to read `a` where
    // the signer sent `a, b`. Read signed headers with `get_all`.
    let mut request = Request::builder()
        .method("GET")
        .uri("https://example.amazonaws.com/pets")
        .header("x-v", "a,b")
        .body(Watched::new(&[], true))
        .expect("request");
    sign_request(&mut request, b"", &at);
    assert!(authorization(&request).contains("x-v"), "x-v is signed");
    request.headers_mut().remove("x-v");
    request
        .headers_mut()
        .append("x-v", HeaderValue::from_static("a"));
    request
        .headers_mut()
        .append("x-v", HeaderValue::from_static("b"));
    let outcome = call(layer(), request, None).await;
    assert_eq!(outcome.status, StatusCode::OK, "{}", outcome.message);
}
