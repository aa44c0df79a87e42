//! Parses arbitrary bytes as a credentials-service request body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_identity_pool::CredentialsRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = CredentialsRequest::parse(data, 16 * 1024) {
        assert!(request.logins.len() <= 1);
    }
});
