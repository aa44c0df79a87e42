//! The verified-token cache: SHA-256 digest of the token → what verification
//! found, valid until the earlier of `exp` and the cache TTL.
//!
//! It is sharded (`RwLock<HashMap>` per shard, the digest's own bytes as the
//! hash) and bounded in entries: a full shard first drops its expired entries,
//! then an arbitrary one. The token itself is never stored.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// A SHA-256 digest used as its own hash.
#[derive(Clone, Copy, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // The key is a uniformly distributed digest: its first bytes are a
        // good hash. `[u8; 32]` hashes as a length prefix then the bytes.
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

#[derive(Clone, Copy, Default)]
struct BuildDigestHasher;

impl BuildHasher for BuildDigestHasher {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

struct Entry {
    valid_until: u64,
    value: Arc<Verified>,
}

type Shard = RwLock<HashMap<[u8; 32], Entry, BuildDigestHasher>>;

pub(crate) struct TokenCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    ttl_nanos: u64,
}

pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &[u8]) -> TokenDigest {
    Sha256::digest(token).into()
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
        })
    }

    fn shard(&self, key: &TokenDigest) -> &Shard {
        &self.shards[usize::from(key[31]) % SHARDS]
    }

    /// The cached verification of the token, if still valid at `now_nanos`.
    pub(crate) fn get(&self, key: &TokenDigest, now_nanos: u64) -> Option<Arc<Verified>> {
        let shard = self.shard(key).read().unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(key)?;
        (now_nanos < entry.valid_until).then(|| Arc::clone(&entry.value))
    }

    /// Caches a verification until the earlier of `exp` and now + TTL.
    pub(crate) fn insert(&self, key: TokenDigest, value: Arc<Verified>, now_nanos: u64) {
        let exp_nanos = value.exp.saturating_mul(1_000_000_000);
        let valid_until = exp_nanos.min(now_nanos.saturating_add(self.ttl_nanos));
        if valid_until <= now_nanos {
            return;
        }
        let mut shard = self.shard(&key).write().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.valid_until > now_nanos);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key, Entry { valid_until, value });
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
