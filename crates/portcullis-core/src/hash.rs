//! A hasher for maps whose keys are already hashes.
//!
//! The stores key their maps by a digest or a keyed hash: an API key's
//! SHA-256, a JWT's keyed SipHash, a throttle bucket's SipHash. Hashing such a
//! key again only costs time, so these maps pass the key's 64 bits through.
//!
//! `nohash-hasher` does the same, but panics when a key writes bytes instead
//! of one integer; [`PrehashedHasher`] folds them instead, so no key type can
//! make it panic.

use std::hash::{BuildHasherDefault, Hasher};

/// A [`Hasher`] that passes a key's one `u64` through as the hash.
///
/// Only for keys that are already uniformly distributed and not chosen by a
/// caller (a digest, or a hash keyed with a secret): the map then spreads
/// them as well as any hash would.
///
/// ```
/// use std::collections::HashMap;
/// use portcullis_core::hash::BuildPrehashed;
///
/// let mut buckets: HashMap<u64, &str, BuildPrehashed> = HashMap::default();
/// buckets.insert(0x9e37_79b9_7f4a_7c15, "a key's keyed hash");
/// assert_eq!(buckets.get(&0x9e37_79b9_7f4a_7c15), Some(&"a key's keyed hash"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    /// Not reached by a `u64` key, which writes one `u64`; anything else is
    /// folded in, a correct if weak hash.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`PrehashedHasher`]s: the map's `S` parameter.
pub type BuildPrehashed = BuildHasherDefault<PrehashedHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn a_u64_key_is_its_own_hash_and_bytes_still_hash() {
        let build = BuildPrehashed::default();
        assert_eq!(build.hash_one(0xdead_beef_u64), 0xdead_beef);

        assert_ne!(build.hash_one(b"abc"), build.hash_one(b"abd"));
    }
}
