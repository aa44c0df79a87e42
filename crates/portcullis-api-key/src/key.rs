//! Key values, their SHA-256 digests, and the records the store keeps.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use portcullis_core::plan::UsagePlan;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

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

/// The SHA-256 digest of a key value: what the store holds and looks keys up
/// by, in place of the value.
///
/// `Debug` does not show it (a digest is not the key, but there is no reason to
/// print it either); [`to_hex`](Self::to_hex) does. Equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of `value`.
    #[must_use]
    pub fn of(value: &[u8]) -> Self {
        if value.len() <= ONE_BLOCK_MAX {
            Self(sha256_one_block(value))
        } else {
            Self(Sha256::digest(value).into())
        }
    }

    /// A digest given as 64 hex digits (as `sha256sum` prints it).
    ///
    /// # Errors
    ///
    /// When `hex` is not 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, InvalidDigest> {
        let mut bytes = [0_u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| InvalidDigest)?;
        Ok(Self(bytes))
    }

    /// A digest from its 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest as 64 lower-case hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The digest's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl ConstantTimeEq for KeyDigest {
    /// Compares the digests as four 64-bit words with `subtle`: constant-time,
    /// and cheaper than `subtle`'s byte-by-byte slice comparison.
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        let word = |d: &[u8; 32], i: usize| {
            let mut w = [0_u8; 8];
            w.copy_from_slice(&d[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        (0..4).fold(subtle::Choice::from(1), |acc, i| {
            acc & word(&self.0, i).ct_eq(&word(&other.0, i))
        })
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}

impl Serialize for KeyDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        KeyDigest::from_hex(&hex).map_err(serde::de::Error::custom)
    }
}

/// The key of the digest-keyed map: the digest's bytes with plain equality.
///
/// Comparing map keys with `==` compares digests (hashes of secrets), never
/// the secrets: learning how many leading bytes of a digest matched tells a
/// caller nothing about a key without a SHA-256 preimage. The layer then
/// compares the found record's digest in constant time all the same.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct DigestKey(pub(crate) [u8; 32]);

impl From<&KeyDigest> for DigestKey {
    fn from(digest: &KeyDigest) -> Self {
        Self(digest.0)
    }
}

impl Hash for DigestKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A SHA-256 digest is already uniform: its first eight bytes are as
        // good a hash as any, and the map's `BuildPrehashed` passes them straight
        // through. An unkeyed hash is safe here because only the operator's keys
        // are inserted (their digests are uniform and unknown to a caller); a
        // caller's digest only probes, and a probe costs at most the longest run
        // the operator's keys make.
        let mut first = [0_u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// The longest message SHA-256 pads into a single 64-byte block.
const ONE_BLOCK_MAX: usize = 55;

/// SHA-256 of a message of at most 55 bytes, padded by hand into one block
/// and run through `sha2`'s compression function (SHA-NI where the CPU has
/// it). The hot path's keys are 40 bytes: this skips the streaming API's
/// buffer handling, about a quarter of the hash's cost. The tests check it
/// against `Sha256::digest` for every length.
fn sha256_one_block(message: &[u8]) -> [u8; 32] {
    const IV: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let len = message.len().min(ONE_BLOCK_MAX);
    let mut block = [0_u8; 64];
    block[..len].copy_from_slice(&message[..len]);
    block[len] = 0x80;
    // `len` is at most 55, so the bit length fits any integer type.
    let bits = (len as u64) * 8;
    block[56..].copy_from_slice(&bits.to_be_bytes());
    let mut state = IV;
    sha2::compress256(&mut state, &[block.into()]);
    let mut out = [0_u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// A digest that is not 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 digest is 64 hex digits")]
pub struct InvalidDigest;

/// One API key as the store keeps it: API Gateway's `ApiKey` less its value,
/// plus the usage plans it belongs to.
///
/// The record holds the value's SHA-256 [`KeyDigest`], never the value.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    pub(crate) id: Arc<str>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) customer_id: Option<Arc<str>>,
    pub(crate) description: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) created_date: OffsetDateTime,
    pub(crate) last_updated_date: OffsetDateTime,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) usage_plans: Vec<Arc<UsagePlan>>,
    pub(crate) digest: KeyDigest,
}

impl ApiKeyRecord {
    /// A record for the key with this id and digest: enabled, no plans, both
    /// dates `now`.
    pub fn new(id: impl Into<Arc<str>>, digest: KeyDigest, now: OffsetDateTime) -> Self {
        Self {
            id: id.into(),
            name: None,
            customer_id: None,
            description: None,
            enabled: true,
            created_date: now,
            last_updated_date: now,
            tags: BTreeMap::new(),
            usage_plans: Vec::new(),
            digest,
        }
    }

    /// The key's id (not secret: it appears in logs and in `ApiKeyContext`).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The key's customer id (API Gateway's `customerId`).
    #[must_use]
    pub fn customer_id(&self) -> Option<&str> {
        self.customer_id.as_deref()
    }

    /// The key's description.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether the key is accepted. A disabled key is refused.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// When the key was created.
    #[must_use]
    pub fn created_date(&self) -> OffsetDateTime {
        self.created_date
    }

    /// When the key was last changed.
    #[must_use]
    pub fn last_updated_date(&self) -> OffsetDateTime {
        self.last_updated_date
    }

    /// The key's tags.
    #[must_use]
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// The usage plans the key belongs to (at most one per stage).
    #[must_use]
    pub fn usage_plans(&self) -> &[Arc<UsagePlan>] {
        &self.usage_plans
    }

    /// The usage plan that applies to the key on this stage, if any.
    #[must_use]
    pub fn usage_plan_for(&self, api_id: &str, stage: &str) -> Option<&Arc<UsagePlan>> {
        self.usage_plans
            .iter()
            .find(|plan| plan.applies_to(api_id, stage))
    }

    /// The SHA-256 digest of the key's value.
    #[must_use]
    pub fn digest(&self) -> &KeyDigest {
        &self.digest
    }

    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the customer id.
    #[must_use]
    pub fn with_customer_id(mut self, customer_id: impl Into<Arc<str>>) -> Self {
        self.customer_id = Some(customer_id.into());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Enables or disables the key.
    #[must_use]
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the tags.
    #[must_use]
    pub fn with_tags(mut self, tags: BTreeMap<String, String>) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the creation and last-update dates.
    #[must_use]
    pub fn with_dates(mut self, created: OffsetDateTime, last_updated: OffsetDateTime) -> Self {
        self.created_date = created;
        self.last_updated_date = last_updated;
        self
    }

    /// Sets the usage plans.
    ///
    /// # Errors
    ///
    /// [`PlanConflict`] when two plans apply to one stage (API Gateway allows a
    /// key one plan per stage), or a plan is listed twice.
    pub fn with_usage_plans(
        mut self,
        plans: impl IntoIterator<Item = Arc<UsagePlan>>,
    ) -> Result<Self, PlanConflict> {
        let plans: Vec<_> = plans.into_iter().collect();
        check_one_plan_per_stage(&plans)?;
        self.usage_plans = plans;
        Ok(self)
    }
}

/// Two of a key's usage plans apply to the same stage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "usage plans `{first}` and `{second}` both apply to {stage}; a key may be in one plan per stage"
)]
#[non_exhaustive]
pub struct PlanConflict {
    /// One plan's id.
    pub first: String,
    /// The other plan's id.
    pub second: String,
    /// The stage they share, as `api_id/stage`, or `every stage`.
    pub stage: String,
}

/// Checks that no two plans apply to one stage. A plan with no stages applies
/// to every stage, so it conflicts with any other plan.
pub(crate) fn check_one_plan_per_stage(plans: &[Arc<UsagePlan>]) -> Result<(), PlanConflict> {
    for (i, a) in plans.iter().enumerate() {
        for b in &plans[i + 1..] {
            let conflict = |stage: String| PlanConflict {
                first: a.id().to_owned(),
                second: b.id().to_owned(),
                stage,
            };
            if a.id() == b.id() {
                return Err(conflict(
                    "the same stages (the plan is listed twice)".into(),
                ));
            }
            if a.api_stages().is_empty() || b.api_stages().is_empty() {
                return Err(conflict("every stage".into()));
            }
            if let Some(s) = a
                .api_stages()
                .iter()
                .find(|s| b.applies_to(&s.api_id, &s.stage))
            {
                return Err(conflict(format!("{}/{}", s.api_id, s.stage)));
            }
        }
    }
    Ok(())
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
    fn digests_round_trip_through_hex() {
        let d = KeyDigest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(KeyDigest::from_hex(&d.to_hex()).unwrap(), d);
        assert_eq!(KeyDigest::from_hex("abc"), Err(InvalidDigest));
        assert_eq!(format!("{d:?}"), "KeyDigest(<redacted>)");
    }

    #[test]
    fn the_one_block_hash_is_sha256_for_every_length() {
        let message: Vec<u8> = (0..=128_u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..=128 {
            let expected: [u8; 32] = Sha256::digest(&message[..len]).into();
            assert_eq!(KeyDigest::of(&message[..len]).0, expected, "length {len}");
        }
    }

    #[test]
    fn digests_differing_in_any_byte_are_unequal() {
        let base = KeyDigest::of(b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(base, KeyDigest::from_bytes(*base.as_bytes()));
        for i in 0..32 {
            let mut bytes = *base.as_bytes();
            bytes[i] ^= 0x80;
            assert_ne!(base, KeyDigest::from_bytes(bytes), "byte {i}");
        }
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

    #[test]
    fn plans_must_not_share_a_stage() {
        use portcullis_core::plan::ApiStage;
        let stage = |api: &str, stage: &str| ApiStage {
            api_id: api.into(),
            stage: stage.into(),
            throttle: BTreeMap::new(),
        };
        let prod = Arc::new(
            UsagePlan::new("prod")
                .unwrap()
                .with_api_stage(stage("a", "prod")),
        );
        let dev = Arc::new(
            UsagePlan::new("dev")
                .unwrap()
                .with_api_stage(stage("a", "dev")),
        );
        let prod2 = Arc::new(
            UsagePlan::new("prod2")
                .unwrap()
                .with_api_stage(stage("a", "prod")),
        );
        let all = Arc::new(UsagePlan::new("all").unwrap());
        assert!(check_one_plan_per_stage(&[prod.clone(), dev.clone()]).is_ok());
        let err = check_one_plan_per_stage(&[prod.clone(), prod2]).unwrap_err();
        assert_eq!(err.stage, "a/prod");
        assert!(check_one_plan_per_stage(&[dev.clone(), all]).is_err());
        assert!(check_one_plan_per_stage(&[dev.clone(), dev]).is_err());
    }
}
