//! The raw HTTP/1.1 request parser of `portcullis sigv4 verify` and
//! `portcullis waf eval --request`: any bytes, never a panic; a parsed request
//! either converts to an `http::Request` or is refused with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_cli::raw::RawRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = RawRequest::parse(data) {
        assert!(!raw.method.is_empty());
        if let Ok(request) = raw.to_http() {
            assert_eq!(request.body().len(), raw.body.len());
        }
    }
});
