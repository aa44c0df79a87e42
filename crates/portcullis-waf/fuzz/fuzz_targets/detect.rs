//! The SQLi and XSS detectors on arbitrary bytes: libinjection's vendored
//! tokenizer, the exact SQLi prefilter, HIGH's extra pattern, and the second
//! XSS detector's normaliser (character references) and rules. None may
//! panic; the prefilter must never hide a libinjection detection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_waf::detect::{is_sqli, is_xss, libinjection_sqli};

fuzz_target!(|data: &[u8]| {
    let high = is_sqli(data, true);
    let _ = is_sqli(data, false);
    if libinjection_sqli(data).is_some() {
        assert!(high, "HIGH hides a libinjection detection");
    }
    let _ = is_xss(data);
});
