//! Tests of the XSS prefilter against libinjection.

use proptest::prelude::*;

use super::*;

/// libinjection's blacklisted attribute names (`BLACK_ATTRS` of
/// `libinjectionrs` 0.1.1, `src/xss/blacklists.rs`), compared without case.
const BLACK_ATTRS: [&[u8]; 20] = [
    b"ACTION",
    b"ATTRIBUTENAME",
    b"BY",
    b"BACKGROUND",
    b"DATAFORMATAS",
    b"DATASRC",
    b"DYNSRC",
    b"FILTER",
    b"FORMACTION",
    b"FOLDER",
    b"FROM",
    b"HANDLER",
    b"HREF",
    b"LOWSRC",
    b"POSTER",
    b"SRC",
    b"STYLE",
    b"TO",
    b"VALUES",
    b"XLINK:HREF",
];

/// Inputs built from the pieces the XSS prefilter reasons about: the
/// tokenizer's delimiters, quotes, `<`, NUL, 0xFF, blacklisted attribute
/// names and event handlers, URL schemes, and filler.
fn xss_fragments() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"=",
        b" ",
        b"\t",
        b"\n",
        b"\x0b",
        b"\x0c",
        b"\r",
        b"/",
        b">",
        b"<",
        b"'",
        b"\"",
        b"`",
        b"\0",
        b"\xff",
        b"&",
        b"?",
        b"!",
        b"-",
        b":",
        b"a",
        b"x",
        b"C-1001",
        b"on",
        b"ON",
        b"oN",
        b"onclick",
        b"onerror",
        b"onload",
        b"onmouseover",
        b"ONFOCUS",
        b"xmlns",
        b"XLINK",
        b"xlink:href",
        b"href",
        b"HREF",
        b"src",
        b"style",
        b"to",
        b"by",
        b"from",
        b"values",
        b"action",
        b"formaction",
        b"attributename",
        b"background",
        b"dataformatas",
        b"datasrc",
        b"dynsrc",
        b"filter",
        b"folder",
        b"handler",
        b"lowsrc",
        b"poster",
        b"javascript:",
        b"vbscript:",
        b"data:",
        b"alert(1)",
        b"customer",
        b"fields",
        b"points",
        b"&#x6a;",
        b"script",
        b"svg",
        b"!--",
        b"?",
    ];
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(PIECES).prop_map(<[u8]>::to_vec),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ],
        0..16,
    )
    .prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// The XSS prefilter skips only what libinjection calls safe.
    #[test]
    fn xss_prefilter_skips_only_safe_input(input in xss_fragments()) {
        if !xss_possible(&input) {
            prop_assert!(!libinjectionrs::detect_xss(&input).is_injection());
        }
    }

    /// The same on arbitrary bytes.
    #[test]
    fn xss_prefilter_skips_only_safe_bytes(input in prop::collection::vec(any::<u8>(), 0..64)) {
        if !xss_possible(&input) {
            prop_assert!(!libinjectionrs::detect_xss(&input).is_injection());
        }
    }
}

#[test]
fn xss_prefilter_keeps_every_blacklisted_attribute() {
    for name in BLACK_ATTRS {
        let lower = name.to_ascii_lowercase();
        for input in [
            [name, &b"=javascript:alert(1)"[..]].concat(),
            [&b"x '"[..], &lower, b" = 'javascript:alert(1)'"].concat(),
        ] {
            assert!(xss_possible(&input), "{}", String::from_utf8_lossy(&input));
        }
    }
    for flagged in [
        &b"\" onmouseover=alert(1) x=\""[..],
        b"x'onclick=alert(1)",
        b"a=b onerror =alert(1)",
        b"xmlns:x=y",
        b"style=x",
        b"href\t=javascript:alert(1)",
    ] {
        assert!(
            xss_possible(flagged),
            "{}",
            String::from_utf8_lossy(flagged)
        );
        assert!(
            libinjectionrs::detect_xss(flagged).is_injection(),
            "{}",
            String::from_utf8_lossy(flagged)
        );
    }
    // The load test's query: no `<` and no blacklisted name before an `=`.
    assert!(!xss_possible(b"customer=C-1001&fields=points"));
    assert!(!xss_possible(b"a = b"));
}
