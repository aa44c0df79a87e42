//! The `Authorization` header as SigV4 signers write it, read in one pass.
//!
//! `AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request,
//! SignedHeaders=host;x-amz-date, Signature=…`: [`read`] walks those bytes
//! once, and on the way splits the credential, checks the signed header
//! names and finds `host` and `x-amz-date` among them. The general reader in
//! `parse.rs` splits, trims and searches the same text several times.
//!
//! [`read`] answers only for a header it reads exactly as the general path
//! would, and only when the general path would find nothing wrong with the
//! parts it covers: anything else (spaces around `=`, an unknown or repeated
//! parameter, a byte outside visible ASCII, a malformed credential, an
//! invalid signed header name) gives `None`, and the general path then
//! accepts the header or refuses it with its own message. So the fast path
//! changes no verdict and no error; a property test below checks that its
//! answers equal the general path's.

use super::ScopeSplit;
use super::SignedHeadersChecked;

/// What [`read`] found: the parameters, the credential split, and the
/// signed header names checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Authorization<'a> {
    /// The whole `Credential` value.
    pub(super) credential: &'a str,
    /// The access key id: the credential up to its first `/`.
    pub(super) access_key_id: &'a str,
    /// The scope: the credential after its first `/`.
    pub(super) scope: &'a str,
    /// Where the scope's date, region and service end.
    pub(super) scope_split: ScopeSplit,
    /// The `SignedHeaders` value.
    pub(super) signed_headers: &'a str,
    /// The outcome of checking the signed header names.
    pub(super) signed_headers_checked: SignedHeadersChecked,
    /// The `Signature` value.
    pub(super) signature: &'a str,
}

/// Which parameter a value belongs to.
#[derive(Clone, Copy)]
enum Parameter {
    Credential,
    SignedHeaders,
    Signature,
}

/// Reads a well-formed `Authorization` header in one pass; `None` when the
/// general path must read it (see the module docs).
pub(super) fn read(header: &[u8], max_signed_headers: usize) -> Option<Authorization<'_>> {
    let text = std::str::from_utf8(header).ok()?;
    let rest = text.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let bytes = rest.as_bytes();
    let mut credential: Option<(usize, usize, [usize; 4])> = None;
    let mut signed_headers: Option<(usize, usize, SignedHeadersChecked)> = None;
    let mut signature: Option<(usize, usize)> = None;
    let mut at = 0;
    loop {
        while bytes.get(at) == Some(&b' ') {
            at += 1;
        }
        if at == bytes.len() {
            break;
        }
        let tail = &bytes[at..];
        let (parameter, name_len) = if tail.starts_with(b"Credential=") {
            (Parameter::Credential, 11)
        } else if tail.starts_with(b"SignedHeaders=") {
            (Parameter::SignedHeaders, 14)
        } else if tail.starts_with(b"Signature=") {
            (Parameter::Signature, 10)
        } else {
            return None;
        };
        let start = at + name_len;
        at = start;
        match parameter {
            Parameter::Credential => {
                // The positions of the four `/`: after the key id, the date,
                // the region and the service.
                let mut slashes = [0usize; 4];
                let mut found = 0;
                while let Some(&byte) = bytes.get(at) {
                    match byte {
                        b',' => break,
                        b'/' => {
                            *slashes.get_mut(found)? = at;
                            found += 1;
                        }
                        0x21..=0x7e => {}
                        _ => return None,
                    }
                    at += 1;
                }
                if found != 4 || credential.is_some() {
                    return None;
                }
                credential = Some((start, at, slashes));
            }
            Parameter::SignedHeaders => {
                let mut checked = SignedHeadersChecked::default();
                let mut count = 0usize;
                let mut has_host = false;
                let mut name_start = at;
                loop {
                    let byte = bytes.get(at).copied();
                    if matches!(byte, None | Some(b',' | b';')) {
                        let name = &bytes[name_start..at];
                        count += 1;
                        if name.is_empty() || count > max_signed_headers {
                            return None;
                        }
                        has_host |= name == b"host";
                        checked.includes_x_amz_date |= name == b"x-amz-date";
                        if byte != Some(b';') {
                            break;
                        }
                        name_start = at + 1;
                    } else if !matches!(byte, Some(0x21..=0x7e))
                        || byte.is_some_and(|b| b.is_ascii_uppercase())
                    {
                        return None;
                    }
                    at += 1;
                }
                if !has_host || signed_headers.is_some() {
                    return None;
                }
                signed_headers = Some((start, at, checked));
            }
            Parameter::Signature => {
                while let Some(&byte) = bytes.get(at) {
                    match byte {
                        b',' => break,
                        0x21..=0x7e => {}
                        _ => return None,
                    }
                    at += 1;
                }
                if signature.is_some() {
                    return None;
                }
                signature = Some((start, at));
            }
        }
        // `at` is at a `,` or at the end.
        if at < bytes.len() {
            at += 1;
        }
    }
    let (credential_start, credential_end, slashes) = credential?;
    let (signed_start, signed_end, signed_headers_checked) = signed_headers?;
    let (signature_start, signature_end) = signature?;
    let [key_end, date_end, region_end, service_end] = slashes;
    let scope_start = key_end + 1;
    if rest.get(service_end + 1..credential_end)? != "aws4_request" {
        return None;
    }
    Some(Authorization {
        credential: rest.get(credential_start..credential_end)?,
        access_key_id: rest.get(credential_start..key_end)?,
        scope: rest.get(scope_start..credential_end)?,
        scope_split: ScopeSplit {
            date_end: date_end - scope_start,
            region_end: region_end - scope_start,
            service_end: service_end - scope_start,
        },
        signed_headers: rest.get(signed_start..signed_end)?,
        signed_headers_checked,
        signature: rest.get(signature_start..signature_end)?,
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    use super::read;
    use crate::verify::Settings;
    use crate::verify::check::check_signed_headers;
    use crate::verify::parse::{parse_credential, read_parameters};

    const BOTOCORE: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    /// The fast path's answer, when it gives one, is the general path's.
    fn agrees_with_the_general_path(header: &[u8], max_signed_headers: usize) -> bool {
        let Some(fast) = read(header, max_signed_headers) else {
            return false;
        };
        let value = HeaderValue::from_bytes(header).expect("read accepts only visible ASCII");
        let parameters = read_parameters(&value).expect("the general path reads it too");
        assert_eq!(
            parameters,
            (
                Some(fast.credential),
                Some(fast.signed_headers),
                Some(fast.signature)
            )
        );
        let credential = parse_credential(fast.credential, "Authorization header")
            .expect("the general path accepts the credential");
        assert_eq!(
            credential,
            (fast.access_key_id, fast.scope, fast.scope_split)
        );
        let settings = Settings {
            max_signed_headers,
            ..Settings::default()
        };
        let checked = check_signed_headers(fast.signed_headers, &settings)
            .expect("the general path accepts the signed headers");
        assert_eq!(checked, fast.signed_headers_checked);
        true
    }

    #[test]
    fn signers_headers_take_the_fast_path() {
        assert!(agrees_with_the_general_path(BOTOCORE.as_bytes(), 64));
        let fast = read(BOTOCORE.as_bytes(), 64).expect("botocore's form");
        assert_eq!(fast.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            fast.scope_split.parts(fast.scope),
            ("20150830", "us-east-1", "service")
        );
        assert!(fast.signed_headers_checked.includes_x_amz_date);
        // Without spaces after the commas, as some SDKs write it, and in
        // another order.
        let packed = "AWS4-HMAC-SHA256 Signature=abc,Credential=K/20150830/r/s/aws4_request,SignedHeaders=host";
        assert!(agrees_with_the_general_path(packed.as_bytes(), 64));
    }

    #[test]
    fn anything_unusual_goes_to_the_general_path() {
        for header in [
            // Spaces around `=`, an unknown or repeated parameter.
            "AWS4-HMAC-SHA256 Credential = K/20150830/r/s/aws4_request, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request, SignedHeaders=host, Signature=a, Extra=1",
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request, Credential=K/20150830/r/s/aws4_request, SignedHeaders=host, Signature=a",
            // A credential with too few or too many parts, or another
            // terminator.
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/aws4_request, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/x/aws4_request, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws5_request, SignedHeaders=host, Signature=a",
            // Signed headers that are not lower case, empty, or lack host.
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request, SignedHeaders=Host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request, SignedHeaders=host;;x, Signature=a",
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=a",
            // A missing parameter, another algorithm, a tab, a byte past
            // ASCII.
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA512 Credential=K/20150830/r/s/aws4_request, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request,\tSignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=K\u{e9}/20150830/r/s/aws4_request, SignedHeaders=host, Signature=a",
        ] {
            assert_eq!(read(header.as_bytes(), 64), None, "{header}");
        }
        let three = "AWS4-HMAC-SHA256 Credential=K/20150830/r/s/aws4_request, SignedHeaders=a;b;host, Signature=a";
        assert!(read(three.as_bytes(), 3).is_some());
        assert_eq!(read(three.as_bytes(), 2), None, "more names than allowed");
    }

    /// Headers near the signers' form: the three parameters in any order,
    /// with pieces that may break each rule the fast path checks.
    fn near_signer_header() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just("K".to_owned()),
            Just(String::new()),
            Just("20150830".to_owned()),
            Just("us-east-1".to_owned()),
            Just("aws4_request".to_owned()),
            Just("host".to_owned()),
            Just("x-amz-date".to_owned()),
            "[a-zA-Z0-9/;=,. \t-]{0,6}",
        ];
        // Mostly the five parts of a credential, sometimes four or six, each
        // usually well formed; mostly `host` among the signed headers.
        let part = |good: &'static str| prop_oneof![4 => Just(good.to_owned()), 1 => piece.clone()];
        let credential = (
            part("K"),
            part("20150830"),
            part("us-east-1"),
            part("service"),
            part("aws4_request"),
            prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
            piece.clone(),
        )
            .prop_map(|(key, date, region, service, terminator, shape, extra)| {
                let mut parts = vec![key, date, region, service, terminator];
                match shape {
                    0 => {}
                    1 => {
                        parts.pop();
                    }
                    _ => parts.push(extra),
                }
                parts.join("/")
            });
        let signed = prop::collection::vec(
            prop_oneof![3 => Just("host".to_owned()), 1 => part("x-amz-date")],
            1..5,
        )
        .prop_map(|names| names.join(";"));
        let signature = "[0-9a-f=, ]{0,8}";
        let separator = prop_oneof![
            4 => Just(", "),
            2 => Just(","),
            1 => Just(" , "),
            1 => Just(",, "),
            1 => Just("  "),
        ];
        (
            credential,
            signed,
            signature,
            separator.clone(),
            separator,
            prop::sample::select(vec![0usize, 1, 2, 3, 4, 5]),
            prop_oneof![4 => Just(None), 1 => piece.prop_map(Some)],
        )
            .prop_map(
                |(credential, signed, signature, first, second, order, extra)| {
                    let mut parameters = [
                        format!("Credential={credential}"),
                        format!("SignedHeaders={signed}"),
                        format!("Signature={signature}"),
                    ];
                    parameters.rotate_left(order % 3);
                    if order >= 3 {
                        parameters.swap(0, 1);
                    }
                    let mut header = format!(
                        "AWS4-HMAC-SHA256 {}{first}{}{second}{}",
                        parameters[0], parameters[1], parameters[2]
                    );
                    if let Some(extra) = extra {
                        header.push_str(&extra);
                    }
                    header.into_bytes()
                },
            )
    }

    /// Generated near-signer headers: where the fast path answers, it agrees
    /// with the general path, and it does answer for a good share of them
    /// (so the comparison is not vacuous) while refusing others.
    #[test]
    fn the_fast_path_agrees_with_the_general_path() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = (near_signer_header(), 1usize..6);
        let (mut fast, mut general) = (0u32, 0u32);
        for _ in 0..4_000 {
            let (header, max) = strategy
                .new_tree(&mut runner)
                .expect("the strategy generates")
                .current();
            if agrees_with_the_general_path(&header, max) {
                fast += 1;
            } else {
                general += 1;
            }
        }
        assert!(fast >= 100, "only {fast} of 4000 took the fast path");
        assert!(
            general >= 100,
            "only {general} of 4000 took the general path"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_mislead_the_fast_path(
            tail in prop::collection::vec(any::<u8>(), 0..96),
        ) {
            let mut header = b"AWS4-HMAC-SHA256 ".to_vec();
            header.extend_from_slice(&tail);
            agrees_with_the_general_path(&header, 64);
        }
    }
}
