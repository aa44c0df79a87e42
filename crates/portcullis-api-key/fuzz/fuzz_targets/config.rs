//! Key configuration parsing and validation: arbitrary JSON never panics,
//! and an error never quotes a would-be key value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_api_key::{ApiKeys, ApiKeysConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ApiKeysConfig::from_json(text) {
        Ok(config) => {
            // A validated config always loads.
            ApiKeys::from_config(config).expect("a validated config loads");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
