//! Request paths from an attacker: the canonical path is computed without
//! panicking, holds no ambiguity (no encoded or dot or empty segment), and is
//! a fixed point: a canonical path with no `%` is its own canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::path::CanonicalPath;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What `http::Uri` accepts as a path is what a layer sees.
    let Ok(uri) = http::Uri::try_from(text) else {
        return;
    };
    let Ok(canonical) = CanonicalPath::of_uri(&uri) else {
        return;
    };
    let path = canonical.as_str();
    assert!(path.starts_with('/'));
    assert!(!path.contains("//"));
    assert!(path.split('/').all(|segment| segment != "." && segment != ".."));
    assert!(!path.bytes().any(|b| b < 0x20 || b == 0x7f));
    if !path.contains('%') {
        let again = CanonicalPath::parse(path).expect("a canonical path is canonical");
        assert_eq!(again.as_str(), path);
        assert!(again.is_as_sent());
    }
});
