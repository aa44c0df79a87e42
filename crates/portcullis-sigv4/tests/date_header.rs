//! The `Date` header as the signing date when `X-Amz-Date` is absent.
//!
//! The vectors are the original AWS SigV4 test suite's (2011, `aws4_testsuite`:
//! `get-vanilla`, `get-relative`, `post-vanilla`), which signed with the `Date`
//! header: AKIDEXAMPLE, region us-east-1, service `host`, at
//! `Mon, 09 Sep 2011 23:36:00 GMT`. The `aws-sigv4` crate's current suite has
//! no `Date` case.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::clock::ManualClock;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::{
    Credential, SigV4Body, SigV4Layer, StaticCredentialProvider, VerifiedSignature,
};
use sha2::Sha256;
use time::macros::datetime;
use tower::{ServiceBuilder, ServiceExt};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DATE: &str = "Mon, 09 Sep 2011 23:36:00 GMT";
const GET_VANILLA: &str = "b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470";
const POST_VANILLA: &str = "22902d79e148b64e7571c3565769328423fe276eae4b26f83afceda9e767f726";

fn layer_at(time: time::OffsetDateTime) -> SigV4Layer {
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "suite", "test").expect("arn");
    let provider = StaticCredentialProvider::new().with(Credential::new(
        "AKIDEXAMPLE",
        SECRET,
        "arn:aws:iam::123456789012:user/suite",
    ));
    SigV4Layer::new(api, provider)
        .service("host")
        .authentication_only()
        .clock(Arc::new(ManualClock::at(time)))
}

fn layer() -> SigV4Layer {
    layer_at(datetime!(2011-09-09 23:36:00 UTC))
}

fn request(method: &str, path: &str, date: &str, signature: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "host.foo.com")
        .header("date", date)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, \
                 SignedHeaders=date;host, Signature={signature}"
            ),
        )
        .body(Full::new(Bytes::new()))
        .expect("request")
}

async fn send(
    layer: SigV4Layer,
    request: Request<Full<Bytes>>,
) -> (StatusCode, String, Option<VerifiedSignature>) {
    let service = ServiceBuilder::new().layer(layer).service_fn(
        |request: Request<SigV4Body<Full<Bytes>>>| async move {
            let verified = request.extensions().get::<VerifiedSignature>().cloned();
            let mut response = Response::new(Full::new(Bytes::new()));
            response.extensions_mut().insert(verified);
            Ok::<_, Infallible>(response)
        },
    );
    let response = service.oneshot(request).await.expect("infallible");
    let status = response.status();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let verified = response
        .extensions()
        .get::<Option<VerifiedSignature>>()
        .cloned()
        .flatten();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let message = if status.is_success() {
        error_type
    } else {
        format!("{error_type}: {}", String::from_utf8_lossy(&body))
    };
    (status, message, verified)
}

#[tokio::test]
async fn the_2011_suite_cases_signed_with_the_date_header_verify() {
    for (method, path, signature) in [
        ("GET", "/", GET_VANILLA),
        ("GET", "/foo/..", GET_VANILLA),
        ("POST", "/", POST_VANILLA),
    ] {
        let (status, message, verified) =
            send(layer(), request(method, path, DATE, signature)).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {message}");
        let verified = verified.expect("verified signature");
        assert_eq!(
            verified.signed_at,
            datetime!(2011-09-09 23:36:00 UTC).unix_timestamp()
        );
        assert_eq!(
            verified.scope.to_string(),
            "20110909/us-east-1/host/aws4_request"
        );
        assert_eq!(
            verified.signed_header_names().collect::<Vec<_>>(),
            ["date", "host"]
        );
    }
}

#[tokio::test]
async fn a_changed_date_or_method_is_refused() {
    let (status, message, _) = send(
        layer(),
        request("GET", "/", "Mon, 09 Sep 2011 23:36:01 GMT", GET_VANILLA),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.starts_with("InvalidSignatureException"),
        "{message}"
    );
    let (status, _, _) = send(layer(), request("POST", "/", DATE, GET_VANILLA)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_x_amz_date_the_signature_does_not_cover_is_refused() {
    // X-Amz-Date wins over Date as the signing date, so it must be signed:
    // an X-Amz-Date added to a request signed with `Date` (here the same
    // instant, which would leave the string to sign unchanged) is refused,
    // so that no service reads a date no signature covers.
    for amz_date in ["20110909T233600Z", "20110909T233601Z"] {
        let mut request = request("GET", "/", DATE, GET_VANILLA);
        request
            .headers_mut()
            .insert("x-amz-date", amz_date.parse().expect("value"));
        let (status, message, _) = send(layer(), request).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            message.starts_with("IncompleteSignatureException")
                && message.contains("'X-Amz-Date' must be a 'SignedHeader'"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn the_date_header_is_checked_for_skew_and_form() {
    let (status, message, _) = send(
        layer_at(datetime!(2011-09-09 23:46:00 UTC)),
        request("GET", "/", DATE, GET_VANILLA),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.contains(
            "Signature expired: 20110909T233600Z is now earlier than 20110909T234100Z (20110909T234600Z - 5 min.)"
        ),
        "{message}"
    );
    let (status, message, _) = send(layer(), request("GET", "/", "yesterday", GET_VANILLA)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.starts_with("IncompleteSignatureException") && message.contains("Got 'yesterday'"),
        "{message}"
    );
    // Neither header: AWS's message names both.
    let mut none = request("GET", "/", DATE, GET_VANILLA);
    none.headers_mut().remove("date");
    let (status, message, _) = send(layer(), none).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.contains("either a 'X-Amz-Date' or a 'Date' header"),
        "{message}"
    );
}

/// The `Date` header in SigV4's ISO 8601 basic format is accepted too. The
/// signature is computed here from the layer's string to sign with the
/// documented key derivation.
#[tokio::test]
async fn an_iso_8601_date_header_is_accepted() {
    let layer = layer();
    let unsigned = request("GET", "/", "20110909T233600Z", &"0".repeat(64));
    let texts = layer
        .signing_texts(&unsigned, portcullis_sigv4::EMPTY_SHA256)
        .expect("texts");
    assert!(
        texts.string_to_sign.starts_with(
            "AWS4-HMAC-SHA256\n20110909T233600Z\n20110909/us-east-1/host/aws4_request\n"
        )
    );
    assert!(
        texts
            .canonical_request
            .contains("date:20110909T233600Z\nhost:host.foo.com\n")
    );
    let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let mut key = hmac(format!("AWS4{SECRET}").as_bytes(), b"20110909");
    for part in ["us-east-1", "host", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, texts.string_to_sign.as_bytes()));
    let (status, message, _) =
        send(layer, request("GET", "/", "20110909T233600Z", &signature)).await;
    assert_eq!(status, StatusCode::OK, "{message}");
}
