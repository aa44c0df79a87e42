//! SQL injection and cross-site scripting detection.
//!
//! Both use [`libinjectionrs`], a pure-Rust port of libinjection (its SQLi
//! half vendored with a faster keyword lookup, see `src/libinjection/`): the
//! tokenizer-and-fingerprint detector that ModSecurity and the OWASP Core Rule
//! Set use (`@detectSQLi`, `@detectXSS`) and the closest public analogue of
//! what AWS WAF's SQLi and XSS statements do. It was chosen over the
//! `libinjection` crate, which binds the C library and downloads and builds
//! it at build time, and over a home-grown detector, because libinjection's
//! fingerprints carry years of tuning against real attack corpora.
//!
//! - **SQLi HIGH** is libinjection as it is.
//! - **SQLi LOW** (AWS's default) is libinjection minus a few fingerprints that
//!   fire mostly on ordinary text: a quoted word next to a keyword
//!   (`"LIKE" STAMP` is `sos`), `80% ACRYLIC AND 20% WOOL` (`1&1`), a number
//!   followed by a dash comment (`1611-...--`, `1c`). They cost about 1.6% of
//!   libinjection's own SQLi samples and remove every false positive of its
//!   `false_positives.txt` (see the README for the figures).
//! - **XSS** is libinjection's, behind an exact prefilter: its HTML5 tokenizer
//!   can report an attack only on a tag, a comment, a doctype (all need `<`) or
//!   an attribute value (needs `=`), so input with neither byte is skipped.

/// Fingerprints that LOW sensitivity does not report.
const WEAK_SQLI_FINGERPRINTS: [&str; 6] = ["sos", "s&s", "1&1", "1c", "nc", "Enknk"];

/// Whether `input` looks like SQL injection at the given sensitivity.
#[must_use]
pub fn is_sqli(input: &[u8], high: bool) -> bool {
    sqli_one(input, high) || form_values(input).any(|value| sqli_one(value, high))
}

/// The values of `name=value&name=value` input (a form body or a query
/// string inspected whole), which libinjection reads best on their own.
fn form_values(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let looks_like_form = input.iter().position(|&b| b == b'=').is_some_and(|eq| {
        input[..eq]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
    });
    input
        .split(|&b| b == b'&')
        .filter(move |_| looks_like_form)
        .filter_map(|pair| {
            pair.iter()
                .position(|&b| b == b'=')
                .map(|eq| &pair[eq + 1..])
        })
        .filter(|value| !value.is_empty())
}

/// Whether `input` is one word of `[A-Za-z0-9_]`: libinjection reads it as a
/// single token, and no single-token fingerprint is SQL injection (a test
/// checks this on every keyword and on 200,000 random words).
fn single_word(input: &[u8]) -> bool {
    input
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `input` is a decimal number `[0-9]+.[0-9]+` (a JSON price, a
/// version): libinjection reads it as one number token, fingerprint `1`,
/// which is not SQL injection (a test checks 200,000 random ones).
fn decimal(input: &[u8]) -> bool {
    match input.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let (int, frac) = (&input[..dot], &input[dot + 1..]);
            !int.is_empty()
                && !frac.is_empty()
                && int.iter().all(u8::is_ascii_digit)
                && frac.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

fn sqli_one(input: &[u8], high: bool) -> bool {
    if input.is_empty() || single_word(input) || decimal(input) {
        return false;
    }
    let mut state =
        crate::libinjection::SqliState::new(input, crate::libinjection::SqliFlags::FLAG_NONE);
    if !state.detect() {
        return false;
    }
    high || !WEAK_SQLI_FINGERPRINTS.contains(&state.get_fingerprint().as_str())
}

/// libinjection's verdict on `input` alone: the fingerprint when it reports
/// SQL injection. [`is_sqli`] adds sensitivity and form handling on top.
#[must_use]
pub fn libinjection_sqli(input: &[u8]) -> Option<String> {
    let mut state =
        crate::libinjection::SqliState::new(input, crate::libinjection::SqliFlags::FLAG_NONE);
    if state.detect() {
        Some(state.get_fingerprint().as_str().to_owned())
    } else {
        None
    }
}

/// Whether `input` looks like cross-site scripting.
#[must_use]
pub fn is_xss(input: &[u8]) -> bool {
    xss_one(input) || form_values(input).any(xss_one)
}

fn xss_one(input: &[u8]) -> bool {
    if !input.iter().any(|&b| b == b'<' || b == b'=') {
        return false;
    }
    libinjectionrs::detect_xss(input).is_injection()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_words_are_never_sqli_for_libinjection() {
        let raw = |w: &[u8]| {
            let mut state =
                crate::libinjection::SqliState::new(w, crate::libinjection::SqliFlags::FLAG_NONE);
            state.detect()
        };
        for keyword in crate::libinjection::sqli_data::SQL_KEYWORDS {
            let word = keyword.word.as_bytes();
            if single_word(word) {
                assert!(!raw(word), "{}", keyword.word);
                assert!(!raw(&word.to_ascii_lowercase()), "{}", keyword.word);
            }
        }
        let alphabet = b"abcdefxyzABCEFXZ0123456789_";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1 + (state % 12) as usize;
            let word: Vec<u8> = (0..len)
                .map(|i| alphabet[((state >> (i * 5)) % alphabet.len() as u64) as usize])
                .collect();
            assert!(!raw(&word), "{}", String::from_utf8_lossy(&word));
        }
    }

    #[test]
    fn decimals_are_never_sqli_for_libinjection() {
        let raw = |w: &[u8]| {
            let mut state =
                crate::libinjection::SqliState::new(w, crate::libinjection::SqliFlags::FLAG_NONE);
            state.detect()
        };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let int = 1 + (state % 12) as usize;
            let frac = 1 + ((state >> 8) % 12) as usize;
            let mut word: Vec<u8> = (0..int + 1 + frac)
                .map(|i| b'0' + ((state >> ((i * 3) % 60)) % 10) as u8)
                .collect();
            word[int] = b'.';
            assert!(decimal(&word));
            assert!(!raw(&word), "{}", String::from_utf8_lossy(&word));
        }
        for not_decimal in [
            &b"1."[..],
            b".5",
            b"1.2.3",
            b"1e5",
            b"0x1.5",
            b"1.5a",
            b"-1.5",
            b".",
        ] {
            assert!(!decimal(not_decimal), "{not_decimal:?}");
        }
    }

    #[test]
    fn classic_attacks_and_ordinary_text() {
        assert!(is_sqli(b"1' OR '1'='1", false));
        assert!(is_sqli(b"1 UNION SELECT password FROM users--", false));
        assert!(!is_sqli(b"hello world", false));
        assert!(!is_sqli(b"\"LIKE\" STAMP", false));
        assert!(is_sqli(b"\"LIKE\" STAMP", true));
        assert!(is_xss(b"<script>alert(1)</script>"));
        assert!(is_xss(b"\" onmouseover=alert(1) x=\""));
        assert!(!is_xss(b"just a comment, no markup"));
        assert!(!is_xss(b"a = b"));
    }
}
