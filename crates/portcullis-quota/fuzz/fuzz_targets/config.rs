//! Arbitrary JSON as the quota layer's configuration: refused with an error
//! or loaded, never a panic; what loads builds a layer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_quota::{QuotaConfig, QuotaLayer};

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = serde_json::from_slice::<QuotaConfig>(data) {
        let layer = QuotaLayer::from_config(&config);
        assert_eq!(layer.store().retention_days(), config.retention_days);
    }
});
