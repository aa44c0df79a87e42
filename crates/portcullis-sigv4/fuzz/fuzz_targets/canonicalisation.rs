//! Canonical URI and query of arbitrary strings: never panic, always ASCII,
//! idempotent where AWS's rules make them so.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_sigv4::canonical::{UriEncoding, canonical_query, canonical_uri};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, query) = text.split_once('?').unwrap_or((text, ""));

    for normalize in [true, false] {
        for encoding in [UriEncoding::Double, UriEncoding::Single] {
            let mut out = Vec::new();
            canonical_uri(path, normalize, encoding, &mut out);
            assert!(!out.is_empty());
            if encoding == UriEncoding::Double {
                assert!(out.is_ascii());
            }
            if normalize && encoding == UriEncoding::Single {
                // Normalising a normalised path changes nothing.
                let once = String::from_utf8(out.clone()).expect("from a str");
                let mut twice = Vec::new();
                canonical_uri(&once, true, UriEncoding::Single, &mut twice);
                assert_eq!(out, twice);
                assert!(once.starts_with('/'));
                assert!(!once.contains("//"));
            }
        }
    }

    let mut out = Vec::new();
    canonical_query(query, &[], &mut out);
    assert!(out.is_ascii());
    // The canonical query is its own canonical form.
    let once = String::from_utf8(out.clone()).expect("ascii");
    let mut twice = Vec::new();
    canonical_query(&once, &[], &mut twice);
    assert_eq!(out, twice, "{query:?}");
});
