//! RFC 7520 ("Examples of Protecting Content Using JOSE") JWS vectors, read
//! from the shared corpus: `../shared/corpora/jose-cookbook` beside the
//! project root.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::keys::{AlgSet, VerifyKey, jwk_to_key};
use crate::reject::JwtRefusal;
use crate::verify::{check_signature, split};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/jose-cookbook/jws")
}

fn vector(name: &str) -> Value {
    let path = corpus().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the RFC 7520 corpus is missing at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vector is JSON")
}

/// The vector's key: an asymmetric JWK as a key set would give it, or an
/// `oct` JWK as an explicitly configured HMAC secret.
fn key_of(jwk: &Value) -> Option<VerifyKey> {
    if jwk["kty"] == "oct" {
        let k = jwk["k"].as_str()?;
        let secret =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, k).ok()?;
        return Some(VerifyKey {
            kid: jwk["kid"].as_str().map(Arc::from),
            key: jsonwebtoken::DecodingKey::from_secret(&secret),
            algs: AlgSet::HMAC,
        });
    }
    jwk_to_key(jwk)
}

fn tamper(token: &str) -> String {
    // Flip one character of the payload.
    let (head, rest) = token.split_once('.').expect("compact");
    let mut payload: Vec<u8> = rest.as_bytes().to_vec();
    payload[3] = if payload[3] == b'A' { b'B' } else { b'A' };
    format!("{head}.{}", String::from_utf8(payload).expect("ascii"))
}

#[test]
fn compact_vectors_verify_and_tampering_is_caught() {
    for name in [
        "4_1.rsa_v15_signature.json",
        "4_2.rsa-pss_signature.json",
        "4_4.hmac-sha2_integrity_protection.json",
    ] {
        let v = vector(name);
        let compact = v["output"]["compact"].as_str().expect("compact form");
        let key = key_of(&v["input"]["key"]).expect("usable key");
        let jws = split(compact).expect("splits");
        assert_eq!(
            format!("{:?}", jws.alg).as_str(),
            v["input"]["alg"],
            "{name}"
        );
        assert_eq!(check_signature(&jws, &key), Ok(()), "{name}");

        let tampered = tamper(compact);
        let jws = split(&tampered).expect("still splits");
        assert_eq!(
            check_signature(&jws, &key),
            Err(JwtRefusal::BadSignature),
            "{name}"
        );

        let truncated = &compact[..compact.len() - 4];
        let jws = split(truncated).expect("still splits");
        assert_eq!(
            check_signature(&jws, &key),
            Err(JwtRefusal::BadSignature),
            "{name}"
        );
    }
}

#[test]
fn es512_is_refused_cleanly() {
    // jsonwebtoken implements no ES512, and P-521 keys are skipped.
    let v = vector("4_3.ecdsa_signature.json");
    let compact = v["output"]["compact"].as_str().expect("compact form");
    assert_eq!(
        split(compact).unwrap_err(),
        JwtRefusal::UnsupportedAlgorithm
    );
    assert!(jwk_to_key(&v["input"]["key"]).is_none());
}

#[test]
fn detached_content_is_malformed_as_a_jwt() {
    let v = vector("4_5.signature_with_detached_content.json");
    let compact = v["output"]["compact"].as_str().expect("compact form");
    assert!(compact.contains(".."), "detached payload");
    assert_eq!(split(compact).unwrap_err(), JwtRefusal::Malformed);
}

#[test]
fn json_serialized_signatures_verify_in_compact_form() {
    // 4.6 (some header fields unprotected) and 4.8 (multiple signatures) come
    // in the JSON serialization only; each signature with a protected header
    // is a compact JWS once joined. 4.7 has no protected header at all, so it
    // has no compact form.
    let mut checked = 0;
    for name in [
        "4_6.protecting_specific_header_fields.json",
        "4_8.multiple_signatures.json",
    ] {
        let v = vector(name);
        let payload = v["output"]["json"]["payload"].as_str().expect("payload");
        let keys: Vec<Value> = match &v["input"]["key"] {
            Value::Array(keys) => keys.clone(),
            key => vec![key.clone()],
        };
        for (i, sig) in v["output"]["json"]["signatures"]
            .as_array()
            .expect("signatures")
            .iter()
            .enumerate()
        {
            let Some(protected) = sig["protected"].as_str() else {
                continue;
            };
            let compact = format!(
                "{protected}.{payload}.{}",
                sig["signature"].as_str().expect("sig")
            );
            match split(&compact) {
                Ok(jws) => {
                    let key = key_of(&keys[i]).expect("usable key");
                    assert_eq!(check_signature(&jws, &key), Ok(()), "{name} #{i}");
                    checked += 1;
                }
                Err(reason) => {
                    assert_eq!(reason, JwtRefusal::UnsupportedAlgorithm, "{name} #{i}")
                }
            }
        }
    }
    assert!(checked >= 2, "{checked}");
}
