//! The canonical request, the string to sign, the derived signing keys and
//! the comparison of signatures.

use std::collections::HashMap;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    ALGORITHM, CHUNK_ALGORITHM, EMPTY_SHA256, ParsedSignature, RequestView, STREAMING_PAYLOAD,
    Settings, SignatureForm, UNSIGNED_PAYLOAD, incomplete,
};
use crate::canonical;
use crate::credentials::Credential;
use crate::error::SigV4Error;

/// HMAC-SHA256, the MAC of every SigV4 step.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Where the payload hash of the canonical request comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payload<'a> {
    /// A hash known before reading the body: `UNSIGNED-PAYLOAD`, the empty
    /// hash of a body known to be empty, or a signed `x-amz-content-sha256`
    /// that a body known to be empty must match.
    Known(&'a str),
    /// The signed `x-amz-content-sha256` that the body must hash to: verify
    /// the signature now, then read and hash the body.
    Claimed(&'a str),
    /// No `x-amz-content-sha256`: the body must be read and hashed before the
    /// signature can be verified.
    Compute,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the signature covers that text;
    /// each chunk of the `aws-chunked` body is verified as it streams.
    Streaming {
        /// `x-amz-decoded-content-length`.
        decoded_length: u64,
    },
}

/// Decides where the payload hash comes from.
pub(crate) fn payload<'a>(
    parsed: &ParsedSignature<'a>,
    body_is_empty: bool,
    settings: &Settings,
) -> Result<Payload<'a>, SigV4Error> {
    match parsed.content_sha256 {
        Some(UNSIGNED_PAYLOAD) if settings.allow_unsigned_payload => {
            Ok(Payload::Known(UNSIGNED_PAYLOAD))
        }
        Some(UNSIGNED_PAYLOAD) => Err(incomplete(
            "UNSIGNED-PAYLOAD is not accepted: sign the body's SHA-256.",
        )),
        Some(STREAMING_PAYLOAD) => {
            if parsed.form == SignatureForm::Query {
                return Err(incomplete(
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs the Authorization header, not a presigned URL.",
                ));
            }
            if body_is_empty {
                return Err(incomplete(
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs an aws-chunked body; the body is empty.",
                ));
            }
            let decoded_length = parsed
                .decoded_length
                .ok_or_else(|| {
                    incomplete(
                        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs a numeric x-amz-decoded-content-length header.",
                    )
                })?;
            Ok(Payload::Streaming { decoded_length })
        }
        Some(claimed) if body_is_empty => {
            if claimed.eq_ignore_ascii_case(EMPTY_SHA256) {
                Ok(Payload::Known(claimed))
            } else {
                // Verify the signature over the claimed hash first, so that a
                // wrong signature is reported as such; then the payload fails.
                Ok(Payload::Claimed(claimed))
            }
        }
        Some(claimed) => Ok(Payload::Claimed(claimed)),
        None if body_is_empty => Ok(Payload::Known(EMPTY_SHA256)),
        None => Ok(Payload::Compute),
    }
}

/// The canonical request and string to sign of a verified (or refused)
/// request, as text: what AWS's debugging message shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningTexts {
    /// The canonical request.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
}

/// Builds the canonical request.
pub(crate) fn canonical_request(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    payload_hash: &str,
    settings: &Settings,
    unsigned_token: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical_request(
        view,
        parsed,
        payload_hash,
        settings,
        unsigned_token,
        &mut out,
    );
    out
}

/// Appends the canonical request to `out`.
fn write_canonical_request(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    payload_hash: &str,
    settings: &Settings,
    unsigned_token: bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(view.method.as_str().as_bytes());
    out.push(b'\n');
    canonical::canonical_uri(
        view.uri.path(),
        settings.normalize_path,
        settings.uri_encoding,
        out,
    );
    out.push(b'\n');
    if let Some(query) = view.uri.query() {
        let exclude: &[&str] = match (parsed.form, unsigned_token) {
            (SignatureForm::Header, _) => &[],
            (SignatureForm::Query, false) => &["X-Amz-Signature"],
            (SignatureForm::Query, true) => &["X-Amz-Signature", "X-Amz-Security-Token"],
        };
        canonical::canonical_query(query, exclude, out);
    }
    out.push(b'\n');
    for name in parsed.signed_headers.split(';') {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = view.headers.get_all(name).iter().peekable();
        if values.peek().is_none()
            && name == "host"
            && let Some(authority) = view.uri.authority()
        {
            out.extend_from_slice(authority.as_str().as_bytes());
        }
        let mut first = true;
        for value in values {
            if !first {
                out.push(b',');
            }
            first = false;
            canonical::push_trimmed_value(value.as_bytes(), out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(parsed.signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
}

/// The string to sign's lines after the algorithm: the date, the scope and
/// the hex SHA-256 of the canonical request, each fed to `sink` in order.
fn string_to_sign_parts(
    parsed: &ParsedSignature<'_>,
    canonical_request: &[u8],
    mut sink: impl FnMut(&[u8]),
) {
    let digest: [u8; 32] = Sha256::digest(canonical_request).into();
    sink(ALGORITHM.as_bytes());
    sink(b"\n");
    sink(parsed.amz_date.as_bytes());
    sink(b"\n");
    sink(parsed.scope_date.as_bytes());
    sink(b"\n");
    sink(&canonical::hex32(&digest));
}

fn string_to_sign(parsed: &ParsedSignature<'_>, canonical_request: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    string_to_sign_parts(parsed, canonical_request, |part| {
        out.extend_from_slice(part);
    });
    out
}

thread_local! {
    /// The canonical request of the last request verified on this thread:
    /// its allocation is reused, so verifying allocates nothing for it.
    static CANONICAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer grown past this is not kept for the next request.
const KEPT_BUFFER_BYTES: usize = 16 * 1024;

/// Runs `f` with an empty buffer: the thread's reused one, or a fresh one
/// if that is in use.
fn with_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    CANONICAL.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let result = f(&mut buffer);
            if buffer.capacity() > KEPT_BUFFER_BYTES {
                *buffer = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Verifies the signature of `view` with `credential`; returns it (the seed
/// of a streaming body's chunk signatures).
pub(crate) fn verify_signature(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    credential: &Credential,
    payload_hash: &str,
    settings: &Settings,
    keys: &SigningKeys,
) -> Result<[u8; 32], SigV4Error> {
    let mut given = [0u8; 32];
    let well_formed = parsed.signature.len() == 64
        && hex::decode_to_slice(parsed.signature.as_bytes(), &mut given).is_ok();
    let day = parsed.scope_date.get(..8).unwrap_or("");
    let key = keys.key(credential, day, &settings.region, &settings.service);
    // The string to sign goes straight into the HMAC, never into a buffer.
    let matches = |canonical: &[u8]| -> bool {
        let mut mac = key.clone();
        string_to_sign_parts(parsed, canonical, |part| mac.update(part));
        let computed: [u8; 32] = mac.finalize().into_bytes().into();
        well_formed && bool::from(computed.ct_eq(&given))
    };
    let ok = with_buffer(|buffer| {
        write_canonical_request(view, parsed, payload_hash, settings, false, buffer);
        if matches(buffer) {
            return true;
        }
        // Some signers add the session token of a presigned URL after
        // signing (`aws-sigv4`'s `SessionTokenMode::Exclude`, for services
        // such as IoT). The token is still checked against the credential's.
        if parsed.form == SignatureForm::Query && parsed.security_token.is_some() {
            buffer.clear();
            write_canonical_request(view, parsed, payload_hash, settings, true, buffer);
            return matches(buffer);
        }
        false
    });
    if ok {
        return Ok(given);
    }
    let debug = settings.debug.then(|| {
        let canonical = canonical_request(view, parsed, payload_hash, settings, false);
        let sts = string_to_sign(parsed, &canonical);
        format!(
            "The Canonical String for this request should have been\n'{}'\n\nThe String-to-Sign should have been\n'{}'\n",
            String::from_utf8_lossy(&canonical),
            String::from_utf8_lossy(&sts)
        )
    });
    Err(SigV4Error::SignatureDoesNotMatch { debug })
}

/// The signing key and string-to-sign prefix of a streaming body's chunk
/// signatures (`AWS4-HMAC-SHA256-PAYLOAD`, the date and the scope).
pub(crate) fn chunk_signing(
    parsed: &ParsedSignature<'_>,
    credential: &Credential,
    settings: &Settings,
    keys: &SigningKeys,
) -> (HmacSha256, Vec<u8>) {
    let day = parsed.scope_date.get(..8).unwrap_or("");
    let key = keys.key(credential, day, &settings.region, &settings.service);
    let mut prefix = Vec::with_capacity(96);
    prefix.extend_from_slice(CHUNK_ALGORITHM.as_bytes());
    prefix.push(b'\n');
    prefix.extend_from_slice(parsed.amz_date.as_bytes());
    prefix.push(b'\n');
    prefix.extend_from_slice(parsed.scope_date.as_bytes());
    prefix.push(b'\n');
    (key, prefix)
}

/// The canonical request and string to sign for `view`, for tools and tests.
pub(crate) fn texts(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    payload_hash: &str,
    settings: &Settings,
) -> SigningTexts {
    let canonical = canonical_request(view, parsed, payload_hash, settings, false);
    let sts = string_to_sign(parsed, &canonical);
    SigningTexts {
        canonical_request: String::from_utf8_lossy(&canonical).into_owned(),
        string_to_sign: String::from_utf8_lossy(&sts).into_owned(),
    }
}

/// SHA-256 of the secret, and the day of the scope.
type KeyId = ([u8; 32], [u8; 8]);

/// The hash of a [`KeyId`]: the secret's SHA-256 is uniformly distributed
/// and not chosen by the client, so its first bytes, mixed with the day's,
/// are a good hash without a SipHash pass over 40 bytes per request.
#[derive(Clone, Copy, Debug, Default)]
struct KeyIdHasher(u64);

impl std::hash::Hasher for KeyIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = (self.0 ^ u64::from_le_bytes(word))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    fn write_usize(&mut self, _: usize) {}
}

type BuildKeyIdHasher = std::hash::BuildHasherDefault<KeyIdHasher>;

/// Derived signing keys, cached per (secret, day): region and service are the
/// layer's own. Bounded: when full, the cache starts afresh.
#[derive(Debug)]
pub(crate) struct SigningKeys {
    keys: RwLock<HashMap<KeyId, HmacSha256, BuildKeyIdHasher>>,
    capacity: usize,
}

impl SigningKeys {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            keys: RwLock::new(HashMap::default()),
            capacity,
        }
    }

    /// A keyed HMAC ready for the string to sign.
    pub(crate) fn key(
        &self,
        credential: &Credential,
        day: &str,
        region: &str,
        service: &str,
    ) -> HmacSha256 {
        let mut day_bytes = [0u8; 8];
        if day.len() == 8 {
            day_bytes.copy_from_slice(day.as_bytes());
        }
        let id = (*credential.secret_digest(), day_bytes);
        if let Ok(keys) = self.keys.read()
            && let Some(mac) = keys.get(&id)
        {
            return mac.clone();
        }
        let mac = derive(
            credential.secret_access_key().expose(),
            day,
            region,
            service,
        );
        if self.capacity > 0
            && let Ok(mut keys) = self.keys.write()
        {
            if keys.len() >= self.capacity {
                keys.clear();
            }
            keys.insert(id, mac.clone());
        }
        mac
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.read().map(|k| k.len()).unwrap_or(0)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SigV4's key derivation: `kSigning`, as a keyed HMAC.
fn derive(secret: &str, day: &str, region: &str, service: &str) -> HmacSha256 {
    let mut first = Vec::with_capacity(4 + secret.len());
    first.extend_from_slice(b"AWS4");
    first.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&first, day.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    HmacSha256::new_from_slice(&k_signing).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_are_cached_and_bounded() {
        let keys = SigningKeys::new(2);
        let a = Credential::new("A", "secret-a", "arn:a");
        let b = Credential::new("B", "secret-b", "arn:b");
        let first = keys.key(&a, "20150830", "us-east-1", "service");
        assert_eq!(keys.len(), 1);
        let again = keys.key(&a, "20150830", "us-east-1", "service");
        assert_eq!(first.finalize().into_bytes(), again.finalize().into_bytes());
        keys.key(&b, "20150830", "us-east-1", "service");
        assert_eq!(keys.len(), 2);
        keys.key(&a, "20150831", "us-east-1", "service");
        assert_eq!(keys.len(), 1, "a full cache starts afresh");
    }

    #[test]
    fn derivation_matches_the_aws_documentation_example() {
        // From the AWS General Reference's "Examples of how to derive a
        // signing key for Signature Version 4".
        let mut mac = derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        mac.update(b"");
        let expected_key =
            hex::decode("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
                .expect("hex");
        let mut reference = HmacSha256::new_from_slice(&expected_key).expect("any key length");
        reference.update(b"");
        assert_eq!(
            mac.finalize().into_bytes(),
            reference.finalize().into_bytes()
        );
    }
}
