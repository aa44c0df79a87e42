//! Key values: their rules, generation, and the secret type that holds one.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

use super::digest::KeyDigest;

/// The shortest key value API Gateway accepts.
pub const MIN_KEY_LEN: usize = 20;
/// The longest key value API Gateway accepts.
pub const MAX_KEY_LEN: usize = 128;
/// The length of a generated key value.
pub const DEFAULT_KEY_LEN: usize = 40;

/// Why a key value was refused. The message gives the rule and the length,
/// never the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKeyValue {
    /// Shorter than 20 or longer than 128 characters.
    #[error("an API key value has 20 to 128 characters, this one has {0}")]
    Length(usize),
    /// A character other than `A-Z`, `a-z` or `0-9`.
    #[error("an API key value has only alphanumeric characters (A-Z, a-z, 0-9)")]
    NotAlphanumeric,
}

/// Checks that `bytes` is a valid key value: 20 to 128 ASCII alphanumeric
/// characters. The length is checked first, so an oversized input costs
/// nothing more.
///
/// # Errors
///
/// [`InvalidKeyValue`] names the rule broken.
pub fn validate_key_value(bytes: &[u8]) -> Result<(), InvalidKeyValue> {
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
        return Err(InvalidKeyValue::Length(bytes.len()));
    }
    // Branch-free over the bytes, so the compiler can vectorise it: this
    // runs on every request.
    let all_alphanumeric = bytes.iter().fold(true, |ok, &b| {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        ok & (letter | digit)
    });
    if !all_alphanumeric {
        return Err(InvalidKeyValue::NotAlphanumeric);
    }
    Ok(())
}

/// The OS random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct GenerateError(String);

/// An API key's value: a secret.
///
/// `Debug` redacts it, there is no `Display`, equality is constant-time, and
/// [`expose`](Self::expose) is the one way to read it (to hand it to the
/// customer once, when the key is created or rotated).
///
/// ```
/// use portcullis_api_key::ApiKeyValue;
///
/// let value = ApiKeyValue::generate().unwrap();
/// assert_eq!(value.expose().len(), 40);
/// assert!(value.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
/// assert_eq!(format!("{value:?}"), "ApiKeyValue(<redacted>)");
/// assert!(ApiKeyValue::new("too-short").is_err());
/// ```
#[derive(Clone)]
pub struct ApiKeyValue(Box<str>);

impl ApiKeyValue {
    /// Wraps a value, after checking it is 20 to 128 alphanumeric characters.
    ///
    /// # Errors
    ///
    /// [`InvalidKeyValue`] when it is not.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidKeyValue> {
        let value = value.into();
        validate_key_value(value.as_bytes())?;
        Ok(Self(value.into_boxed_str()))
    }

    /// Draws a new 40-character value from the operating system's CSPRNG.
    ///
    /// # Errors
    ///
    /// [`GenerateError`] when the operating system cannot supply randomness.
    pub fn generate() -> Result<Self, GenerateError> {
        Self::generate_with_len(DEFAULT_KEY_LEN)
    }

    /// Draws a new value of `len` characters (clamped to 20..=128) from the
    /// operating system's CSPRNG. Each character is uniform over the 62
    /// alphanumerics (rejection sampling, so there is no modulo bias): 40
    /// characters carry about 238 bits.
    ///
    /// # Errors
    ///
    /// [`GenerateError`] when the operating system cannot supply randomness.
    pub fn generate_with_len(len: usize) -> Result<Self, GenerateError> {
        let len = len.clamp(MIN_KEY_LEN, MAX_KEY_LEN);
        Ok(Self(random_alphanumeric(len)?.into_boxed_str()))
    }

    /// The value. Handle it as a secret.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value's SHA-256 digest, which is what the store keeps.
    #[must_use]
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(self.0.as_bytes())
    }
}

impl PartialEq for ApiKeyValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for ApiKeyValue {}

impl fmt::Debug for ApiKeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyValue(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for ApiKeyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        // The error gives the rule and the length, never the value.
        ApiKeyValue::new(value).map_err(serde::de::Error::custom)
    }
}

/// `len` characters, each uniform over `A-Za-z0-9`, from the OS CSPRNG.
pub(crate) fn random_alphanumeric(len: usize) -> Result<String, GenerateError> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 248 = 4 * 62: bytes at or above it are drawn again, so `b % 62` is uniform.
    const LIMIT: u8 = 248;
    let mut out = String::with_capacity(len);
    let mut buf = [0_u8; 64];
    while out.len() < len {
        OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| GenerateError(e.to_string()))?;
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if b < LIMIT {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_validated() {
        assert!(ApiKeyValue::new("a".repeat(20)).is_ok());
        assert!(ApiKeyValue::new("a".repeat(128)).is_ok());
        assert_eq!(
            ApiKeyValue::new("a".repeat(19)).unwrap_err(),
            InvalidKeyValue::Length(19)
        );
        assert_eq!(
            ApiKeyValue::new("a".repeat(129)).unwrap_err(),
            InvalidKeyValue::Length(129)
        );
        assert_eq!(
            ApiKeyValue::new(format!("{}-", "a".repeat(20))).unwrap_err(),
            InvalidKeyValue::NotAlphanumeric
        );
        assert_eq!(
            ApiKeyValue::new("é".repeat(12)).unwrap_err(),
            InvalidKeyValue::NotAlphanumeric
        );
    }

    #[test]
    fn generated_values_are_alphanumeric_distinct_and_spread() {
        let a = ApiKeyValue::generate().unwrap();
        let b = ApiKeyValue::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(
            ApiKeyValue::generate_with_len(5).unwrap().expose().len(),
            20
        );
        assert_eq!(
            ApiKeyValue::generate_with_len(500).unwrap().expose().len(),
            128
        );
        // 62 symbols over 100 * 128 draws: every symbol shows up.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let v = ApiKeyValue::generate_with_len(128).unwrap();
            validate_key_value(v.expose().as_bytes()).unwrap();
            seen.extend(v.expose().bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn validation_accepts_exactly_the_alphanumerics() {
        for b in 0..=255_u8 {
            let mut value = [b'a'; 20];
            value[7] = b;
            assert_eq!(
                validate_key_value(&value).is_ok(),
                b.is_ascii_alphanumeric(),
                "byte {b}"
            );
        }
    }
}
