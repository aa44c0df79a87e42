//! Arbitrary bytes as the `Authorization` header (and `X-Amz-Date`) of a
//! request: parsing, scope checks and canonicalisation must never panic, and a
//! refusal is always a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    thread_local! { static LAYER: portcullis_sigv4::SigV4Layer = common::layer(); }
    // The first line is the date, the rest the Authorization value.
    let (date, authorization) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"20150830T123600Z"[..], data),
    };
    let Ok(authorization) = http::HeaderValue::from_bytes(authorization) else { return };
    let Ok(date) = http::HeaderValue::from_bytes(date) else { return };
    let request = http::Request::builder()
        .uri("https://example.com/pets?b=2&a=1")
        .header("host", "example.com")
        .header("x-amz-date", date)
        .header("authorization", authorization)
        .body(())
        .expect("valid request");
    LAYER.with(|layer| {
        match layer.signing_texts(&request, portcullis_sigv4::EMPTY_SHA256) {
            Ok(texts) => assert!(texts.string_to_sign.starts_with("AWS4-HMAC-SHA256\n")),
            Err(error) => {
                let status = error.gateway_response().render(&request).status();
                assert!(status.is_client_error(), "{status} for {error}");
            }
        }
    });
});
