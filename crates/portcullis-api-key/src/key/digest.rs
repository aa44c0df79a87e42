//! SHA-256 digests of key values: what the store keeps and looks keys up by.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
