//! The authorizer-result cache: keyed by a SHA-256 digest of the identity
//! sources, bounded in entries, with a TTL, and single-flight on misses.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use http::Method;
use portcullis_core::context::{Caller, UsageIdentifierKey};
use portcullis_iam::{Decision, PolicyDocument};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::AuthorizerError;

/// The digest of a request's identity-source values. Tokens are secrets, so
/// the cache never holds them, only their digests.
pub(crate) type Key = [u8; 32];

/// An answer, checked and made ready for reuse.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) principal_id: Arc<str>,
    pub(crate) policy: PolicyDocument,
    pub(crate) caller: Caller,
    pub(crate) usage_key: Option<UsageIdentifierKey>,
    /// Decisions already reached for this answer's policy, when the policy
    /// has no `Condition` (its decision then depends on the method ARN
    /// alone); `None` otherwise.
    pub(crate) memo: Option<DecisionMemo>,
}

/// The most (method, path) decisions remembered per cached answer.
const MEMO_ENTRIES: usize = 8;
/// Longer paths are evaluated every time rather than remembered.
const MEMO_MAX_PATH: usize = 256;

#[derive(Debug)]
struct MemoEntry {
    /// Which layer configuration (and so which method-ARN prefix) reached
    /// the decision: the cache may be shared by clones configured apart.
    config: u64,
    method: Method,
    path: Box<str>,
    decision: Decision,
}

/// A small memo of policy decisions, keyed by the layer configuration, the
/// request method and the path: for a policy without conditions these
/// determine the method ARN, and so the decision. It spares a cache hit the
/// method ARN's allocation and the policy's pattern matching.
#[derive(Debug, Default)]
pub(crate) struct DecisionMemo {
    entries: RwLock<(usize, Vec<MemoEntry>)>,
}

impl DecisionMemo {
    /// A memo for `policy`, or `None` when a statement has a `Condition`
    /// (which may read the source IP, the time or the user agent).
    pub(crate) fn for_policy(policy: &PolicyDocument) -> Option<Self> {
        let statements = match policy.as_json().get("Statement") {
            Some(serde_json::Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(one) => vec![one],
            None => return None,
        };
        let conditional = statements.iter().any(|statement| {
            statement.as_object().is_none_or(|object| {
                object
                    .keys()
                    .any(|key| key.eq_ignore_ascii_case("Condition"))
            })
        });
        (!conditional).then(Self::default)
    }

    pub(crate) fn get(&self, config: u64, method: &Method, path: &str) -> Option<Decision> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .1
            .iter()
            .find(|e| e.config == config && e.method == method && &*e.path == path)
            .map(|e| e.decision)
    }

    pub(crate) fn put(&self, config: u64, method: &Method, path: &str, decision: Decision) {
        if path.len() > MEMO_MAX_PATH {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let (next, list) = &mut *entries;
        if list
            .iter()
            .any(|e| e.config == config && e.method == method && &*e.path == path)
        {
            return;
        }
        let entry = MemoEntry {
            config,
            method: method.clone(),
            path: path.into(),
            decision,
        };
        if list.len() < MEMO_ENTRIES {
            list.push(entry);
        } else {
            // Replace round-robin.
            list[*next % MEMO_ENTRIES] = entry;
            *next = next.wrapping_add(1);
        }
    }
}

/// What one call of the authorizer gave.
pub(crate) type Outcome = Result<Arc<Prepared>, AuthorizerError>;

/// One cache slot. Its cell is filled once, by the first request that
/// missed; requests that miss while it is being filled wait on it.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    cell: OnceCell<Outcome>,
    expires_at: AtomicU64,
}

impl Slot {
    /// The outcome, calling `init` if no one has yet. Only a successful
    /// outcome gets an expiry: errors are not cached.
    pub(crate) async fn get_or_init<F>(&self, expires_at: impl FnOnce() -> u64, init: F) -> Outcome
    where
        F: Future<Output = Outcome>,
    {
        self.cell
            .get_or_init(|| async {
                let outcome = init.await;
                if outcome.is_ok() {
                    self.expires_at.store(expires_at(), Ordering::Release);
                }
                outcome
            })
            .await
            .clone()
    }
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// A live, successful answer.
    Hit(Arc<Prepared>),
    /// Nothing live: fill (or wait on) this slot.
    Miss(Arc<Slot>),
}

/// Keys are SHA-256 digests, already uniformly spread: their first eight
/// bytes are the hash, with no second hashing pass.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length (a `usize`) and then its bytes;
        // keep the first eight bytes of the digest.
        if bytes.len() >= 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[..8]);
            self.0 = u64::from_ne_bytes(word);
        }
    }
}

type Map = HashMap<Key, Arc<Slot>, BuildHasherDefault<DigestHasher>>;

#[derive(Debug)]
pub(crate) struct Cache {
    /// A random salt hashed before the identity values, so no one outside
    /// can predict a key's digest, or grind identities whose digests share
    /// the map's bucket bits.
    salt: [u8; 16],
    ttl_nanos: u64,
    max_entries: usize,
    map: Mutex<Map>,
}

impl Cache {
    pub(crate) fn new(ttl_seconds: u32, max_entries: usize) -> Self {
        use std::hash::{BuildHasher, RandomState};
        // `RandomState` is seeded from the operating system's randomness.
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(&RandomState::new().hash_one(0u8).to_ne_bytes());
        salt[8..].copy_from_slice(&RandomState::new().hash_one(1u8).to_ne_bytes());
        Self {
            salt,
            ttl_nanos: u64::from(ttl_seconds) * 1_000_000_000,
            max_entries: max_entries.max(1),
            map: Mutex::new(Map::default()),
        }
    }

    pub(crate) fn ttl_nanos(&self) -> u64 {
        self.ttl_nanos
    }

    pub(crate) fn key<'v>(&self, values: impl IntoIterator<Item = &'v str>) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        for value in values {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(value.as_bytes());
        }
        hasher.finalize().into()
    }

    pub(crate) fn lookup(&self, key: &Key, now: u64) -> Lookup {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(key) {
            match slot.cell.get() {
                Some(Ok(prepared)) if now < slot.expires_at.load(Ordering::Acquire) => {
                    return Lookup::Hit(prepared.clone());
                }
                // Being filled: join the call in flight.
                None => return Lookup::Miss(slot.clone()),
                // Expired, or an error not yet forgotten: start afresh.
                Some(_) => {}
            }
        }
        if map.len() >= self.max_entries && !map.contains_key(key) {
            Self::evict(&mut map, now, self.max_entries);
        }
        let slot = Arc::new(Slot::default());
        map.insert(*key, slot.clone());
        Lookup::Miss(slot)
    }

    /// Drops the slot after an error, unless it was replaced meanwhile.
    pub(crate) fn forget(&self, key: &Key, slot: &Arc<Slot>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(key);
        }
    }

    /// Makes room: drops expired and failed entries, then, if the cache is
    /// still full, filled entries in the map's (random) order. Slots being
    /// filled are kept, so single-flight holds.
    fn evict(map: &mut Map, now: u64, max_entries: usize) {
        map.retain(|_, slot| match slot.cell.get() {
            None => true,
            Some(Ok(_)) => now < slot.expires_at.load(Ordering::Acquire),
            Some(Err(_)) => false,
        });
        if map.len() >= max_entries {
            let excess = map.len() + 1 - max_entries;
            let victims: Vec<Key> = map
                .iter()
                .filter(|(_, slot)| slot.cell.initialized())
                .map(|(key, _)| *key)
                .take(excess)
                .collect();
            for key in victims {
                map.remove(&key);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::context::AuthMethod;

    fn prepared(principal: &str) -> Outcome {
        let policy = PolicyDocument::from_json(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        )
        .expect("valid policy");
        Ok(Arc::new(Prepared {
            principal_id: principal.into(),
            policy,
            caller: Caller::new(principal, AuthMethod::CustomAuthorizer),
            usage_key: None,
            memo: None,
        }))
    }

    async fn fill(cache: &Cache, key: &Key, now: u64, principal: &str) {
        match cache.lookup(key, now) {
            Lookup::Miss(slot) => {
                let ttl = cache.ttl_nanos();
                let outcome = slot
                    .get_or_init(|| now + ttl, async { prepared(principal) })
                    .await;
                assert!(outcome.is_ok());
            }
            Lookup::Hit(_) => panic!("expected a miss for {principal}"),
        }
    }

    #[tokio::test]
    async fn hits_expire_and_the_cache_stays_bounded() {
        let cache = Cache::new(300, 2);
        let a = cache.key(["a"]);
        fill(&cache, &a, 0, "a").await;
        assert!(
            matches!(cache.lookup(&a, 299_999_999_999), Lookup::Hit(p) if &*p.principal_id == "a")
        );
        assert!(matches!(cache.lookup(&a, 300_000_000_000), Lookup::Miss(_)));

        let cache = Cache::new(300, 2);
        for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            fill(&cache, &cache.key([name]), i as u64, name).await;
            assert!(cache.len() <= 2, "{} entries", cache.len());
        }
        assert!(matches!(
            cache.lookup(&cache.key(["d"]), 10),
            Lookup::Hit(_)
        ));
    }

    #[test]
    fn keys_are_length_prefixed() {
        let cache = Cache::new(1, 1);
        assert_ne!(cache.key(["ab", "c"]), cache.key(["a", "bc"]));
        assert_eq!(cache.key(["ab", "c"]), cache.key(["ab", "c"]));
        // Salted: another cache gives another digest.
        assert_ne!(Cache::new(1, 1).key(["ab"]), cache.key(["ab"]));
    }
}
