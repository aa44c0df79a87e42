//! Tests of both detectors: the prefilters on the shared corpora, and
//! classic attacks against ordinary text.

use super::sqli::{libinjection_sqli, sqli_impossible};
use super::xss::xss_possible;
use super::*;

/// Every line of the shared corpora (libinjection's samples and the CRS
/// regression tests), raw and percent-decoded, whole and split at `&`,
/// `=` and `"`: the XSS and SQLi prefilters skip only what libinjection
/// calls safe.
#[test]
fn xss_prefilter_skips_only_safe_corpus_input() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    let mut files = Vec::new();
    for sub in [
        "libinjection",
        "crs-regression/REQUEST-941-APPLICATION-ATTACK-XSS",
        "crs-regression/REQUEST-942-APPLICATION-ATTACK-SQLI",
    ] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            files.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    if files.is_empty() {
        println!("corpus check skipped: no corpora in {}", dir.display());
        return;
    }
    let decode = |line: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(line.len());
        let mut i = 0;
        while i < line.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                line[i],
                line.get(i + 1).copied().and_then(hex),
                line.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b'+', _, _) => {
                    out.push(b' ');
                    i += 1;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    };
    let (mut checked, mut skipped, mut sqli_skipped) = (0usize, 0usize, 0usize);
    for file in files {
        let text = std::fs::read(&file).unwrap();
        for line in text.split(|&b| b == b'\n') {
            for whole in [line.to_vec(), decode(line)] {
                let parts = whole
                    .split(|&b| b == b'&' || b == b'=' || b == b'"')
                    .map(<[u8]>::to_vec);
                for input in std::iter::once(whole.clone()).chain(parts) {
                    checked += 1;
                    if sqli_impossible(&input) {
                        sqli_skipped += 1;
                        assert!(
                            libinjection_sqli(&input).is_none(),
                            "{}: {}",
                            file.display(),
                            String::from_utf8_lossy(&input)
                        );
                    }
                    if !xss_possible(&input) {
                        skipped += 1;
                        assert!(
                            !libinjectionrs::detect_xss(&input).is_injection(),
                            "{}: {}",
                            file.display(),
                            String::from_utf8_lossy(&input)
                        );
                    }
                }
            }
        }
    }
    println!(
        "xss prefilter: {checked} corpus inputs, {skipped} skipped; sqli prefilter: {sqli_skipped} skipped"
    );
    assert!(
        sqli_skipped > 10_000,
        "{sqli_skipped} skipped by the SQLi prefilter"
    );
    assert!(
        checked > 100_000 && skipped > 10_000,
        "{checked} checked, {skipped} skipped"
    );
}

#[test]
fn classic_attacks_and_ordinary_text() {
    assert!(is_sqli(b"1' OR '1'='1", false));
    assert!(is_sqli(b"1 UNION SELECT password FROM users--", false));
    assert!(!is_sqli(b"hello world", false));
    assert!(!is_sqli(b"\"LIKE\" STAMP", false));
    assert!(is_sqli(b"\"LIKE\" STAMP", true));
    // C libinjection flags these; LOW keeps them (they compare, or have
    // a number alone before the comment).
    for attack in [
        &b"-9087 or 3038=3038"[..],
        b"1 AND 1 SOUNDS LIKE 1",
        b"417652--",
        b"1 * 1 --",
        b"X' = 'X",
        b"A' OR 'B",
        b"1\"OR!\"a",
    ] {
        assert!(
            is_sqli(attack, false),
            "{}",
            String::from_utf8_lossy(attack)
        );
    }
    // HIGH's addition: a closed quote, then a `#` comment.
    for attack in [
        &b"admin' #"[..],
        b"admin'#",
        b"admin\" #",
        b"jane@example.com'\t# rest",
    ] {
        assert!(
            libinjection_sqli(attack).is_none(),
            "{}",
            String::from_utf8_lossy(attack)
        );
        assert!(is_sqli(attack, true), "{}", String::from_utf8_lossy(attack));
        assert!(
            !is_sqli(attack, false),
            "{}",
            String::from_utf8_lossy(attack)
        );
    }
    for text in [
        &b"O'Neil #1 fan"[..],
        b"rock 'n' roll #1",
        b"'# quoted",
        b"5' x #2",
        b"7\" #2 CIRCULAR NEEDLE",
        b"BAMBOO CHARCOAL SOAP 1 '#",
        b"FOO BAR'# BLAH",
    ] {
        assert!(!is_sqli(text, true), "{}", String::from_utf8_lossy(text));
    }
    // ... and these, which LOW reads as prose.
    for prose in [
        &b"80% ACRYLIC AND 20% WOOL"[..],
        b"1611-IioXXIG1ti8rspL2vbXFy--",
        b"1,1--",
        b"'countdown calendar\" and \"disney:",
        b"x/*",
        // libinjection's `false_positives.txt`: 33 quotes after the `*`.
        &[&b"MISTERGLAS.DK'*"[..], &[b'\''; 33]].concat(),
    ] {
        assert!(
            libinjection_sqli(prose).is_some(),
            "{}",
            String::from_utf8_lossy(prose)
        );
        assert!(!is_sqli(prose, false), "{}", String::from_utf8_lossy(prose));
    }
    assert!(is_xss(b"<script>alert(1)</script>"));
    assert!(is_xss(b"\" onmouseover=alert(1) x=\""));
    assert!(!is_xss(b"just a comment, no markup"));
    assert!(!is_xss(b"a = b"));
}
