//! An arbitrary query string on a presigned-looking request: parsing and
//! canonicalisation never panic, and a refusal is always a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    thread_local! { static LAYER: portcullis_sigv4::SigV4Layer = common::layer(); }
    let Ok(query) = std::str::from_utf8(data) else { return };
    let Ok(uri) = format!("https://example.com/p?X-Amz-Algorithm=AWS4-HMAC-SHA256&{query}").parse::<http::Uri>() else {
        return;
    };
    let request = http::Request::builder().uri(uri).header("host", "example.com").body(()).expect("valid request");
    LAYER.with(|layer| {
        if let Err(error) = layer.signing_texts(&request, portcullis_sigv4::UNSIGNED_PAYLOAD) {
            let status = error.gateway_response().render(&request).status();
            assert!(status.is_client_error(), "{status} for {error}");
        }
    });
});
