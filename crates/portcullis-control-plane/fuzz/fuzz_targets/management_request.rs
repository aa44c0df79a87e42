//! Arbitrary requests to the management API: its route, query-string,
//! JSON-body, patch-operation and CSV parsers see untrusted bytes (behind
//! authentication, but a caller allowed one operation may send anything).
//! Every answer must be below 500 and JSON, and a refused request must
//! leave the store as it was: "bad input never changes stored data".
#![no_main]

mod common;

use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the method; then the path and query up to a newline; the
    // rest: the body.
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (uri, body) = rest.split_at(split);
    let Ok(uri) = std::str::from_utf8(uri) else {
        return;
    };
    common::check(
        method_of(method),
        &format!("/{uri}"),
        body.get(1..).unwrap_or_default(),
    );
});

/// The method a byte picks.
fn method_of(byte: u8) -> Method {
    match byte % 5 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PATCH,
        3 => Method::DELETE,
        _ => Method::PUT,
    }
}
