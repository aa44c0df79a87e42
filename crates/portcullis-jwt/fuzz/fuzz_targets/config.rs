//! Arbitrary JSON as the layer's configuration: an error naming a field, or a
//! layer; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_jwt::{JwtConfig, JwtLayer, JwksSource};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match JwtConfig::from_json(text) {
        Ok(config) => {
            // A configured file path is trusted input; do not read /dev/zero.
            if config
                .issuers
                .iter()
                .any(|i| matches!(i.key_source(), JwksSource::JwksFile(_)))
            {
                return;
            }
            if let Err(error) = JwtLayer::from_config(config) {
                assert!(!error.path().is_empty());
            }
        }
        Err(error) => {
            let _ = error.path();
        }
    }
});
