//! SigV4 canonicalisation: the canonical URI, query string and headers, built
//! exactly as AWS's signers build them.
//!
//! These functions are pure and allocation-light; the layer calls them on every
//! signed request and the fuzz targets call them on arbitrary bytes.
//!
//! - **URI path.** With normalisation on (every AWS service but S3, and API
//!   Gateway's execute-api), the path is normalised as RFC 3986 §5.2.4 says:
//!   `.` and `..` segments are removed and empty segments (`//`) collapse,
//!   keeping a trailing slash. With [`UriEncoding::Double`] (execute-api), the
//!   path as it came on the wire, already percent-encoded, is encoded again:
//!   every byte but the unreserved characters and `/` becomes `%XX`, so `%3D`
//!   becomes `%253D`. This is what the `aws-sigv4` crate and botocore do.
//! - **Query string.** Every `key=value` pair is percent-decoded (`+` is a
//!   space) and encoded again with only the unreserved characters left as they
//!   are; pairs are sorted by encoded key, then encoded value. A key without
//!   `=` has an empty value. Decoding works on bytes: a query that is not UTF-8
//!   is signed byte for byte (the `aws-sigv4` crate would replace such bytes
//!   with U+FFFD; no real client sends them).
//! - **Headers.** Each value has its leading and trailing spaces removed and
//!   runs of spaces collapsed to one; the values of a repeated header are joined
//!   by `,` in the order they came.

use std::fmt::Write as _;

/// How the canonical URI encodes the path.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum UriEncoding {
    /// The wire path is percent-encoded once more (every AWS service but S3,
    /// including API Gateway's execute-api). The default.
    #[default]
    Double,
    /// The wire path is used as it came (S3's rule).
    Single,
}

/// Whether `byte` is an RFC 3986 unreserved character, which SigV4 never
/// encodes.
#[inline]
#[must_use]
pub fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encodes `bytes` into `out` as SigV4 does: unreserved characters
/// stay, everything else (and `/` unless `keep_slash`) becomes `%XX` with
/// upper-case hex digits.
pub fn encode_into(out: &mut Vec<u8>, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 0xf)],
            ]);
        }
    }
}

/// Appends the canonical URI of `path` (the path as it came on the wire) to
/// `out`.
///
/// ```
/// use portcullis_sigv4::canonical::{canonical_uri, UriEncoding};
///
/// let mut out = Vec::new();
/// canonical_uri("/test/@connections/JBDvjfGEIAMCERw%3D", true, UriEncoding::Double, &mut out);
/// assert_eq!(out, b"/test/%40connections/JBDvjfGEIAMCERw%253D");
///
/// out.clear();
/// canonical_uri("/example1/example2/../..", true, UriEncoding::Double, &mut out);
/// assert_eq!(out, b"/");
/// ```
pub fn canonical_uri(path: &str, normalize: bool, encoding: UriEncoding, out: &mut Vec<u8>) {
    if path.is_empty() {
        out.push(b'/');
        return;
    }
    let normalized;
    let path = if normalize && (path.contains('.') || path.contains("//") || !path.starts_with('/'))
    {
        normalized = normalize_path(path);
        normalized.as_str()
    } else {
        path
    };
    match encoding {
        UriEncoding::Double => encode_into(out, path.as_bytes(), true),
        UriEncoding::Single => out.extend_from_slice(path.as_bytes()),
    }
}

/// RFC 3986 §5.2.4 dot-segment removal, plus collapsing of empty segments, as
/// the `aws-sigv4` crate normalises paths.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut result = String::with_capacity(path.len() + 1);
    for segment in &segments {
        result.push('/');
        result.push_str(segment);
    }
    if result.is_empty() {
        result.push('/');
    }
    let ends_with_slash = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if ends_with_slash && !result.ends_with('/') {
        result.push('/');
    }
    result
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a query component into bytes, `+` being a space, as
/// `application/x-www-form-urlencoded` says. A `%` not followed by two hex
/// digits stays a literal `%`.
#[must_use]
pub fn decode_query_component(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    decode_into(input, &mut out);
    out
}

fn decode_into(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let high = input.get(i + 1).copied().and_then(hex_value);
                let low = input.get(i + 2).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
}

/// Splits a raw query string into its raw `(key, value)` pairs, skipping empty
/// pieces (`a=1&&b=2`), as `application/x-www-form-urlencoded` parsing does.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// Appends the canonical query string of `query` to `out`, leaving out every
/// parameter whose decoded key is in `exclude` (the presigned form leaves out
/// `X-Amz-Signature`).
///
/// ```
/// use portcullis_sigv4::canonical::canonical_query;
///
/// let mut out = Vec::new();
/// canonical_query("Param2=value2&Param1=value+1&Param1=a", &[], &mut out);
/// assert_eq!(out, b"Param1=a&Param1=value%201&Param2=value2");
/// ```
pub fn canonical_query(query: &str, exclude: &[&str], out: &mut Vec<u8>) {
    if query.is_empty() {
        return;
    }
    if !canonical_query_plain(query, exclude, out) {
        canonical_query_general(query, exclude, out);
    }
}

/// The most pairs the allocation-free path sorts on the stack.
const PLAIN_PAIRS: usize = 16;

/// The canonical query of a query whose keys and values are all unreserved
/// characters (the usual `limit=10&sort=asc`): decoding and encoding again
/// leave each of them as it is, so the pairs are sorted as they came, on the
/// stack. Returns false, having written nothing, for any other query.
fn canonical_query_plain(query: &str, exclude: &[&str], out: &mut Vec<u8>) -> bool {
    let mut pairs: [(&[u8], &[u8]); PLAIN_PAIRS] = [(&[], &[]); PLAIN_PAIRS];
    let mut count = 0;
    for (key, value) in query_pairs(query) {
        let (key, value) = (key.as_bytes(), value.as_bytes());
        if !key.iter().chain(value).all(|&b| is_unreserved(b)) {
            return false;
        }
        if exclude.iter().any(|exclude| key == exclude.as_bytes()) {
            continue;
        }
        let Some(slot) = pairs.get_mut(count) else {
            return false;
        };
        *slot = (key, value);
        count += 1;
    }
    let pairs = &mut pairs[..count];
    pairs.sort_unstable();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
    }
    true
}

/// The canonical query of any query: every key and value decoded and
/// encoded again into one buffer, the pairs sorted as ranges of it.
fn canonical_query_general(query: &str, exclude: &[&str], out: &mut Vec<u8>) {
    // Every encoded key and value goes into one buffer; pairs are ranges of it.
    let mut encoded: Vec<u8> = Vec::with_capacity(query.len() + query.len() / 2);
    let mut pairs: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> = Vec::new();
    let mut scratch = Vec::new();
    for (key, value) in query_pairs(query) {
        scratch.clear();
        decode_into(key.as_bytes(), &mut scratch);
        if exclude.iter().any(|exclude| scratch == exclude.as_bytes()) {
            continue;
        }
        let key_start = encoded.len();
        encode_into(&mut encoded, &scratch, false);
        let key_range = key_start..encoded.len();
        scratch.clear();
        decode_into(value.as_bytes(), &mut scratch);
        let value_start = encoded.len();
        encode_into(&mut encoded, &scratch, false);
        pairs.push((key_range, value_start..encoded.len()));
    }
    pairs.sort_unstable_by(|(ka, va), (kb, vb)| {
        encoded[ka.clone()]
            .cmp(&encoded[kb.clone()])
            .then_with(|| encoded[va.clone()].cmp(&encoded[vb.clone()]))
    });
    for (i, (key, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(&encoded[key]);
        out.push(b'=');
        out.extend_from_slice(&encoded[value]);
    }
}

/// Appends one header value to `out`, trimmed of leading and trailing spaces
/// with each run of spaces collapsed to one.
pub fn push_trimmed_value(value: &[u8], out: &mut Vec<u8>) {
    let start = value.iter().position(|&b| b != b' ');
    let Some(start) = start else { return };
    let end = value
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |e| e + 1);
    let mut previous_space = false;
    for &b in &value[start..end] {
        if b == b' ' {
            if !previous_space {
                out.push(b' ');
            }
            previous_space = true;
        } else {
            out.push(b);
            previous_space = false;
        }
    }
}

/// Lower-case hex of a 32-byte digest.
#[must_use]
pub fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX_LOWER[usize::from(b >> 4)];
        out[2 * i + 1] = HEX_LOWER[usize::from(b & 0xf)];
    }
    out
}

/// Formats a Unix timestamp as SigV4's `YYYYMMDD'T'HHMMSS'Z'`.
#[must_use]
pub fn format_amz_date(unix_seconds: i64) -> String {
    let datetime = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut out = String::with_capacity(16);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        datetime.year(),
        u8::from(datetime.month()),
        datetime.day(),
        datetime.hour(),
        datetime.minute(),
        datetime.second()
    );
    out
}

/// Parses SigV4's `YYYYMMDD'T'HHMMSS'Z'` into a Unix timestamp.
#[must_use]
pub fn parse_amz_date(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let day = u8::try_from(digits(6..8)?).ok()?;
    let hour = u8::try_from(digits(9..11)?).ok()?;
    let minute = u8::try_from(digits(11..13)?).ok()?;
    let second = u8::try_from(digits(13..15)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let time = time::Time::from_hms(hour, minute, second).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(path: &str, normalize: bool, encoding: UriEncoding) -> String {
        let mut out = Vec::new();
        canonical_uri(path, normalize, encoding, &mut out);
        String::from_utf8(out).expect("canonical URIs are ASCII")
    }

    #[test]
    fn paths_normalise_like_aws_sigv4() {
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./", "/"),
            ("/./example", "/example"),
            ("//", "/"),
            ("//example//", "/example/"),
            ("/foo/bar/.", "/foo/bar/"),
            ("/../foo", "/foo"),
            ("/a/b/../c/./d", "/a/c/d"),
            ("/a.b/c", "/a.b/c"),
        ];
        for (input, expected) in cases {
            assert_eq!(uri(input, true, UriEncoding::Single), expected, "{input}");
        }
        assert_eq!(
            uri("//example//", false, UriEncoding::Single),
            "//example//"
        );
    }

    #[test]
    fn double_encoding_encodes_the_wire_path_again() {
        assert_eq!(
            uri(
                "/2015-03-31/functions/arn%3Aaws%3Alambda/invocations",
                true,
                UriEncoding::Double
            ),
            "/2015-03-31/functions/arn%253Aaws%253Alambda/invocations"
        );
        assert_eq!(uri("/a b/~x*", true, UriEncoding::Double), "/a%20b/~x%2A");
        assert_eq!(uri("/a%20b", true, UriEncoding::Single), "/a%20b");
    }

    #[test]
    fn queries_sort_by_encoded_key_then_value() {
        let mut out = Vec::new();
        canonical_query("b=2&a=2&a=1&c&=x&%41=y", &[], &mut out);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "=x&A=y&a=1&a=2&b=2&c="
        );
        let mut out = Vec::new();
        canonical_query(
            "X-Amz-Signature=abc&k=%E1%88%B4&t=%7e",
            &["X-Amz-Signature"],
            &mut out,
        );
        assert_eq!(String::from_utf8(out).expect("ascii"), "k=%E1%88%B4&t=~");
        let mut out = Vec::new();
        canonical_query("bad=%zz&pct=%", &[], &mut out);
        assert_eq!(String::from_utf8(out).expect("ascii"), "bad=%25zz&pct=%25");
    }

    proptest::proptest! {
        /// The stack path gives exactly what decoding and encoding every
        /// pair gives, on queries built from the characters that matter.
        #[test]
        fn the_plain_query_path_matches_the_general_one(
            query in "[a-cA-C0-9._~=&%+ /-]{0,40}",
            exclude in proptest::sample::select(vec!["", "a", "X-Amz-Signature", "b.c"]),
        ) {
            let exclude: &[&str] = if exclude.is_empty() { &[] } else { &[exclude] };
            let mut general = Vec::new();
            canonical_query_general(&query, exclude, &mut general);
            let mut out = Vec::new();
            canonical_query(&query, exclude, &mut out);
            proptest::prop_assert_eq!(&out, &general);
            let mut plain = Vec::new();
            if canonical_query_plain(&query, exclude, &mut plain) {
                proptest::prop_assert_eq!(&plain, &general);
            } else {
                proptest::prop_assert!(plain.is_empty());
            }
        }
    }

    #[test]
    fn many_plain_pairs_take_the_general_path() {
        let query: Vec<String> = (0..40).rev().map(|i| format!("k{i:02}=v")).collect();
        let query = query.join("&");
        let mut out = Vec::new();
        canonical_query(&query, &[], &mut out);
        let mut general = Vec::new();
        canonical_query_general(&query, &[], &mut general);
        assert_eq!(out, general);
        assert!(out.starts_with(b"k00=v&k01=v&"));
    }

    #[test]
    fn header_values_are_trimmed() {
        let mut out = Vec::new();
        push_trimmed_value(b"  value1   value2  ", &mut out);
        assert_eq!(out, b"value1 value2");
        out.clear();
        push_trimmed_value(b"   ", &mut out);
        assert!(out.is_empty());
        out.clear();
        push_trimmed_value(b"\tx\t", &mut out);
        assert_eq!(out, b"\tx\t");
    }

    #[test]
    fn amz_dates_round_trip() {
        let t = parse_amz_date("20150830T123600Z").expect("valid date");
        assert_eq!(t, 1_440_938_160);
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        for bad in [
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20151330T123600Z",
            "2015083OT123600Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
