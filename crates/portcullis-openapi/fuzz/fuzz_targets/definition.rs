//! The definition loader (JSON and YAML) and the router never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(definition) = portcullis_openapi::ApiDefinition::from_slice(data) {
        for path in ["/", "/a", "/a/b/c", "/pets/1"] {
            let _ = definition.route(&http::Method::GET, path);
        }
        for method in definition.methods() {
            let _ = method.selector();
        }
    }
});
