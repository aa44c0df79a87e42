//! Property tests: requests with random paths, queries and headers, signed by
//! the `aws-sigv4` crate, verify through the layer; and the canonical query
//! agrees with a small reference model built on `percent-encoding`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use portcullis_core::clock::ManualClock;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::canonical::canonical_query;
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
use portcullis_test_support::sigv4::{ACCESS_KEY, SECRET, Signing, sign_request};
use proptest::prelude::*;
use tower::{Service, ServiceBuilder};

const T0: u64 = 1_440_938_160;

/// A path or query piece: plain characters, reserved ones, and `%XX` escapes
/// of printable ASCII.
fn piece(reserved: &'static str) -> impl Strategy<Value = String> {
    let plain = proptest::sample::select(
        "abcXYZ019-._~"
            .chars()
            .chain(reserved.chars())
            .collect::<Vec<_>>(),
    )
    .prop_map(|c| c.to_string());
    let escape = (0x20u8..0x7f).prop_map(|b| format!("%{b:02X}"));
    proptest::collection::vec(prop_oneof![4 => plain, 1 => escape], 0..8).prop_map(|v| v.concat())
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![6 => piece("!$&'()*+,;=:@"), 1 => Just(".".to_owned()), 1 => Just("..".to_owned())],
        0..5,
    )
    .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn query() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        proptest::collection::vec((piece("!$'()*,;:@/?"), piece("!$'()*,;:@/?=")), 1..5).prop_map(
            |pairs| {
                pairs
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            },
        ),
    )
}

fn header_value() -> impl Strategy<Value = String> {
    "[ a-zA-Z0-9,;=/]{0,12}".prop_map(|s| format!("v{s}"))
}

fn service() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<portcullis_core::ResponseBody<Full<Bytes>>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    let provider = StaticCredentialProvider::new().with(Credential::new(
        ACCESS_KEY,
        SECRET,
        "arn:aws:iam::123456789012:user/alice",
    ));
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "api", "prod").expect("arn");
    let layer = SigV4Layer::new(api, provider)
        .authentication_only()
        .debug_signatures(true)
        .clock(Arc::new(ManualClock::at_unix(T0)));
    ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<SigV4Body<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn aws_sigv4_signatures_verify(
        path in path(),
        query in query(),
        headers in proptest::collection::vec(("x-h[a-c]", header_value()), 0..4),
        presign in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let uri = match &query {
            Some(query) => format!("https://example.com{path}?{query}"),
            None => format!("https://example.com{path}"),
        };
        let mut builder = Request::builder().method("POST").uri(uri.as_str());
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut request = builder.body(Full::new(Bytes::from(body.clone()))).expect("request");
        let signing = Signing {
            presign: presign.then_some(Duration::from_secs(60)),
            ..Signing::at(SystemTime::UNIX_EPOCH + Duration::from_secs(T0))
        };
        sign_request(&mut request, &body, &signing);
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let response = runtime.block_on(tower::ServiceExt::oneshot(service(), request)).expect("infallible");
        let status = response.status();
        let detail = runtime.block_on(http_body_util::BodyExt::collect(response.into_body())).expect("body").to_bytes();
        prop_assert_eq!(status, StatusCode::OK, "{} {}", uri, String::from_utf8_lossy(&detail));
    }

    #[test]
    fn canonical_query_matches_a_reference_model(query in "[a-zA-Z0-9%+=&~._ሴ!*'()/-]{0,40}") {
        let mut ours = Vec::new();
        canonical_query(&query, &[], &mut ours);
        prop_assert_eq!(String::from_utf8(ours).expect("ascii"), reference_query(&query));
    }
}

const SIGV4_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The canonical query as the SigV4 documentation describes it.
fn reference_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode =
                |s: &str| -> Vec<u8> { percent_decode(s.replace('+', " ").as_bytes()).collect() };
            let encode = |b: Vec<u8>| -> String { percent_encode(&b, SIGV4_SET).to_string() };
            (encode(decode(k)), encode(decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}
