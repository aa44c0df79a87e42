//! Verification keys: a JWKS parsed once into `jsonwebtoken` decoding keys,
//! each with the algorithms its key type allows.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// A set of algorithms, as a bit mask.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AlgSet(u16);

pub(crate) const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

const fn bit(alg: Algorithm) -> u16 {
    1 << match alg {
        Algorithm::HS256 => 0,
        Algorithm::HS384 => 1,
        Algorithm::HS512 => 2,
        Algorithm::ES256 => 3,
        Algorithm::ES384 => 4,
        Algorithm::RS256 => 5,
        Algorithm::RS384 => 6,
        Algorithm::RS512 => 7,
        Algorithm::PS256 => 8,
        Algorithm::PS384 => 9,
        Algorithm::PS512 => 10,
        Algorithm::EdDSA => 11,
    }
}

impl AlgSet {
    pub(crate) const RSA: AlgSet = AlgSet(
        bit(Algorithm::RS256)
            | bit(Algorithm::RS384)
            | bit(Algorithm::RS512)
            | bit(Algorithm::PS256)
            | bit(Algorithm::PS384)
            | bit(Algorithm::PS512),
    );
    pub(crate) const HMAC: AlgSet =
        AlgSet(bit(Algorithm::HS256) | bit(Algorithm::HS384) | bit(Algorithm::HS512));

    pub(crate) fn of(algs: &[Algorithm]) -> Self {
        AlgSet(algs.iter().fold(0, |acc, a| acc | bit(*a)))
    }

    pub(crate) const fn one(alg: Algorithm) -> Self {
        AlgSet(bit(alg))
    }

    pub(crate) const fn contains(self, alg: Algorithm) -> bool {
        self.0 & bit(alg) != 0
    }

    pub(crate) const fn intersect(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 & other.0)
    }

    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for AlgSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(ALL_ALGORITHMS.iter().filter(|a| self.contains(**a)))
            .finish()
    }
}

/// One verification key.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) key: DecodingKey,
    pub(crate) algs: AlgSet,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

/// The keys of one issuer.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyKey>,
}

/// The result of looking a key up.
pub(crate) enum Lookup<'a> {
    Found(&'a VerifyKey),
    /// A key has the `kid`, but its type cannot verify the `alg`.
    Mismatch,
    /// No key has the `kid` (or, with no `kid`, no single key fits).
    Unknown,
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("the JWKS is not JSON of the form {{\"keys\": [...]}}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the JWKS holds no key usable for signature verification")]
    NoUsableKey,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<VerifyKey>) -> Self {
        Self { keys }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }

    /// Parses a JWKS (`{"keys": [...]}`). Keys that cannot verify signatures
    /// (encryption keys, unknown types or curves, symmetric keys) are skipped;
    /// a set with no usable key is refused.
    pub(crate) fn from_jwks(bytes: &[u8]) -> Result<Self, JwksError> {
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<Value>,
        }
        let jwks: Jwks = serde_json::from_slice(bytes)?;
        let keys: Vec<VerifyKey> = jwks.keys.iter().filter_map(jwk_to_key).collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Self { keys })
    }

    /// Adds keys (explicit HMAC secrets) to the set.
    pub(crate) fn with_extra(mut self, extra: &[VerifyKey]) -> Self {
        self.keys.extend(extra.iter().cloned());
        self
    }

    /// The key for a token's `kid` and `alg`.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        match kid {
            Some(kid) => {
                let mut seen = false;
                for key in &self.keys {
                    if key.kid.as_deref() == Some(kid) {
                        if key.algs.contains(alg) {
                            return Lookup::Found(key);
                        }
                        seen = true;
                    }
                }
                if seen {
                    Lookup::Mismatch
                } else {
                    Lookup::Unknown
                }
            }
            None => {
                // Without a `kid`, accept only when exactly one key fits the
                // algorithm: never try several keys in turn.
                let mut fitting = self.keys.iter().filter(|k| k.algs.contains(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Found(key),
                    (None, _) if !self.keys.is_empty() => Lookup::Mismatch,
                    _ => Lookup::Unknown,
                }
            }
        }
    }
}

fn str_field<'a>(jwk: &'a Value, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

/// One JWK to a verification key, or `None` when it cannot verify signatures.
pub(crate) fn jwk_to_key(jwk: &Value) -> Option<VerifyKey> {
    if let Some(use_) = jwk.get("use")
        && use_.as_str() != Some("sig")
    {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return None;
        }
    }
    let (key, type_algs) = match str_field(jwk, "kty")? {
        "RSA" => (
            DecodingKey::from_rsa_components(str_field(jwk, "n")?, str_field(jwk, "e")?).ok()?,
            AlgSet::RSA,
        ),
        "EC" => {
            let alg = match str_field(jwk, "crv")? {
                "P-256" => Algorithm::ES256,
                "P-384" => Algorithm::ES384,
                _ => return None,
            };
            (
                DecodingKey::from_ec_components(str_field(jwk, "x")?, str_field(jwk, "y")?).ok()?,
                AlgSet::one(alg),
            )
        }
        "OKP" => {
            if str_field(jwk, "crv")? != "Ed25519" {
                return None;
            }
            (
                DecodingKey::from_ed_components(str_field(jwk, "x")?).ok()?,
                AlgSet::one(Algorithm::EdDSA),
            )
        }
        // Symmetric keys are never taken from a key set: HMAC needs an
        // explicitly configured secret.
        _ => return None,
    };
    let algs = match jwk.get("alg") {
        None => type_algs,
        Some(alg) => {
            let alg: Algorithm = alg.as_str()?.parse().ok()?;
            type_algs.intersect(AlgSet::one(alg))
        }
    };
    if algs.is_empty() {
        return None;
    }
    Some(VerifyKey {
        kid: str_field(jwk, "kid").map(Arc::from),
        key,
        algs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_unusable_keys_and_honours_alg() {
        let jwks = br#"{"keys":[
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
            {"kty":"EC","kid":"p521","crv":"P-521","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"rs","alg":"RS256","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"wrong","alg":"ES256","n":"AQAB","e":"AQAB"}
        ]}"#;
        let set = KeySet::from_jwks(jwks).expect("one usable key");
        assert_eq!(set.len(), 1);
        assert!(matches!(
            set.find(Some("rs"), Algorithm::RS256),
            Lookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("rs"), Algorithm::PS256),
            Lookup::Mismatch
        ));
        assert!(matches!(
            set.find(Some("rs"), Algorithm::HS256),
            Lookup::Mismatch
        ));
        assert!(matches!(
            set.find(Some("sym"), Algorithm::HS256),
            Lookup::Unknown
        ));
        assert!(matches!(set.find(None, Algorithm::RS256), Lookup::Found(_)));
        assert!(matches!(set.find(None, Algorithm::ES256), Lookup::Mismatch));
    }

    #[test]
    fn refuses_empty_or_malformed_sets() {
        assert!(matches!(
            KeySet::from_jwks(br#"{"keys":[]}"#),
            Err(JwksError::NoUsableKey)
        ));
        assert!(matches!(KeySet::from_jwks(b"[]"), Err(JwksError::Json(_))));
    }
}
