//! The verified-token cache: a keyed 64-bit hash of the token (foldhash,
//! with a random key per cache) → the token and what verification found,
//! valid until the earlier of `exp` and the cache TTL.
//!
//! A hit compares the whole stored token with the request's in constant time
//! (for the token's length), so a token that merely shares the hash is never
//! taken for a verified one; it costs a keyed hash and a compare instead of a
//! SHA-256 of the token. Only verified tokens are stored.
//!
//! It is sharded (`RwLock<HashMap>` per shard, the keyed hash as the map's
//! hash) and bounded in entries: a full shard first drops its expired entries,
//! then an arbitrary one. Memory is bounded by `max_entries` × (the token's
//! length + about 80 bytes); tokens are at most `max_token_bytes` long.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_core::hash::BuildPrehashed;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::Verified;

const SHARDS: usize = 16;

/// The verified-token cache settings.
///
/// ```
/// use portcullis_jwt::TokenCacheConfig;
/// use std::time::Duration;
///
/// let cache = TokenCacheConfig::default().max_entries(50_000).ttl(Duration::from_secs(60));
/// assert_eq!(cache.max_entries_value(), 50_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct TokenCacheConfig {
    /// Whether verified tokens are cached at all (default true).
    #[serde(default = "default_enabled")]
    pub(crate) enabled: bool,
    /// The most tokens kept (default 10,000).
    #[serde(default = "default_max_entries")]
    pub(crate) max_entries: usize,
    /// The longest a token stays cached, whatever its `exp` (default 300 s).
    #[serde(default = "default_ttl")]
    pub(crate) ttl_seconds: u64,
}

const fn default_enabled() -> bool {
    true
}

const fn default_max_entries() -> usize {
    10_000
}

const fn default_ttl() -> u64 {
    300
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: default_max_entries(),
            ttl_seconds: default_ttl(),
        }
    }
}

impl TokenCacheConfig {
    /// No cache: every request verifies its token.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The most tokens kept.
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// The longest a token stays cached.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl_seconds = ttl.as_secs();
        self
    }

    /// The configured bound.
    #[must_use]
    pub fn max_entries_value(&self) -> usize {
        self.max_entries
    }
}

struct Entry {
    /// The verified token itself: a hit compares it in full, so a token
    /// whose keyed hash collides with a cached one is never taken for it.
    token: Box<[u8]>,
    valid_until: u64,
    value: Arc<Verified>,
}

/// The cache key is already a keyed hash: the map uses it as it is.
type Shard = RwLock<HashMap<u64, Entry, BuildPrehashed>>;

pub(crate) struct TokenCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    ttl_nanos: u64,
    /// foldhash (its `quality` variant) with a random seed drawn when the
    /// cache is built: an attacker cannot aim tokens at one bucket without
    /// knowing it. It hashes a token of a kilobyte in about a sixth of
    /// SipHash-1-3's instructions, and it needs no more: the map holds only
    /// tokens that verified (an attacker cannot fill it with tokens of their
    /// choosing), and a key that collides only misses (the token itself is
    /// compared before an entry is used).
    hasher: foldhash::quality::RandomState,
}

/// Whether `stored` and `given` are the same bytes, in time that depends on
/// their length only (not on where they first differ). The length is not
/// secret: both are tokens of the same keyed hash, and the stored one was
/// sent by a client that held it.
fn same_token(stored: &[u8], given: &[u8]) -> bool {
    if stored.len() != given.len() {
        return false;
    }
    let (stored_words, stored_rest) = stored.as_chunks::<8>();
    let (given_words, given_rest) = given.as_chunks::<8>();
    let mut diff = 0u64;
    for (a, b) in stored_words.iter().zip(given_words) {
        diff |= u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b);
    }
    for (a, b) in stored_rest.iter().zip(given_rest) {
        diff |= u64::from(a ^ b);
    }
    // Keeps the compiler from turning the fold into an early exit.
    bool::from(std::hint::black_box(diff).ct_eq(&0))
}

impl TokenCache {
    pub(crate) fn new(config: &TokenCacheConfig) -> Option<Self> {
        if !config.enabled || config.max_entries == 0 || config.ttl_seconds == 0 {
            return None;
        }
        let per_shard = config.max_entries.div_ceil(SHARDS).max(1);
        Some(Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            per_shard,
            ttl_nanos: config.ttl_seconds.saturating_mul(1_000_000_000),
            hasher: foldhash::quality::RandomState::default(),
        })
    }

    /// The cache key of a token: its keyed hash.
    pub(crate) fn key(&self, token: &[u8]) -> u64 {
        self.hasher.hash_one(token)
    }

    fn shard(&self, key: u64) -> &Shard {
        // Bits the map itself does not use (it takes the low bits for the
        // bucket and the top seven for its tags).
        &self.shards[(key >> 32) as usize % SHARDS]
    }

    /// The cached verification of `token` (whose key is `key`), if still
    /// valid at `now_nanos`.
    pub(crate) fn get(&self, key: u64, token: &[u8], now_nanos: u64) -> Option<Arc<Verified>> {
        let shard = self.shard(key).read().unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(&key)?;
        (now_nanos < entry.valid_until && same_token(&entry.token, token))
            .then(|| Arc::clone(&entry.value))
    }

    /// Caches the verification of `token` until the earlier of `exp` and
    /// now + TTL. A cached token with the same key (a 64-bit collision) is
    /// replaced.
    pub(crate) fn insert(&self, key: u64, token: &[u8], value: Arc<Verified>, now_nanos: u64) {
        let exp_nanos = value.exp.saturating_mul(1_000_000_000);
        let valid_until = exp_nanos.min(now_nanos.saturating_add(self.ttl_nanos));
        if valid_until <= now_nanos {
            return;
        }
        let mut shard = self.shard(key).write().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.valid_until > now_nanos);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(
            key,
            Entry {
                token: token.into(),
                valid_until,
                value,
            },
        );
    }

    /// How many tokens are cached.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .field("ttl_nanos", &self.ttl_nanos)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::context::{AuthMethod, Caller};

    fn verified(exp: u64) -> Arc<Verified> {
        let caller = Caller::new("alice", AuthMethod::Jwt);
        Arc::new(Verified {
            claims: crate::claims::JwtClaims::new(caller.clone()),
            caller,
            exp,
        })
    }

    #[test]
    fn same_token_is_byte_equality() {
        let token: Vec<u8> = (0..=255u8).cycle().take(931).collect();
        assert!(same_token(&token, &token.clone()));
        for len in [0, 1, 7, 8, 9, 64, 930] {
            assert!(same_token(&token[..len], &token[..len]), "{len}");
            assert!(!same_token(&token[..len], &token[..len + 1]), "{len}");
        }
        // A difference at any position, in the words or the tail, is seen.
        for position in 0..token.len() {
            for bit in [0x01, 0x80] {
                let mut other = token.clone();
                other[position] ^= bit;
                assert!(!same_token(&token, &other), "{position} {bit}");
            }
        }
    }

    #[test]
    fn a_hit_needs_the_same_token_not_just_the_same_key() {
        let cache = TokenCache::new(&TokenCacheConfig::default()).expect("enabled");
        let token = b"header.payload.signature".as_slice();
        let key = cache.key(token);
        cache.insert(key, token, verified(u64::MAX / 2_000_000_000), 0);
        assert!(cache.get(key, token, 1).is_some());
        // As if another token had the same keyed hash.
        for other in [
            b"header.payload.signaturf".as_slice(),
            b"header.payload.signatur",
            b"header.payload.signature.",
            b"",
        ] {
            assert!(cache.get(key, other, 1).is_none());
        }
        assert_ne!(cache.key(b"header.payload.signaturf"), key);
    }

    #[test]
    fn keys_differ_between_caches() {
        let a = TokenCache::new(&TokenCacheConfig::default()).expect("enabled");
        let b = TokenCache::new(&TokenCacheConfig::default()).expect("enabled");
        assert_ne!(a.key(b"token"), b.key(b"token"), "a random key per cache");
    }

    #[test]
    fn entries_stay_bounded_and_expire() {
        let cache = TokenCache::new(&TokenCacheConfig::default().max_entries(32)).expect("on");
        for i in 0..1_000u32 {
            let token = format!("token-{i}");
            let key = cache.key(token.as_bytes());
            cache.insert(key, token.as_bytes(), verified(10), 0);
        }
        assert!(cache.len() <= 32);
        let key = cache.key(b"token-999");
        assert!(cache.get(key, b"token-999", 9_999_999_999).is_some());
        assert!(
            cache.get(key, b"token-999", 10_000_000_000).is_none(),
            "expired at exp"
        );
    }
}
