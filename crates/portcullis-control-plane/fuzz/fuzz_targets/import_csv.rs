//! ImportApiKeys' CSV file (API Gateway's format: a header row naming the
//! columns, then a key a row), the whole input as the body of
//! `POST /apikeys?mode=import&format=csv`: answered below 500 with JSON, and
//! a refused file imports nothing (all or none).
#![no_main]

mod common;

use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::check(Method::POST, "/apikeys?mode=import&format=csv", data);
});
