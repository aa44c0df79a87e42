//! The in-memory store: one `AtomicU64` per bucket, updated by
//! compare-and-swap, in a sharded hash map shared by every clone.
//!
//! # Layout and memory
//!
//! A bucket is known by a 64-bit SipHash-1-3 digest of its [`BucketKey`],
//! under a random key chosen when the store is created, so an attacker who
//! picks header values or key ids cannot aim two keys at one bucket. (Two
//! keys share a bucket only on a random 64-bit collision: about one chance in
//! 36 million with a million keys tracked.) An entry is the digest and the
//! bucket's TAT, 16 bytes, plus one control byte of the hash table: with the
//! table's load factor of 7/8 and power-of-two growth, a tracked key costs
//! between 19 and 39 bytes. `benches/memory.rs` measures it at a million keys.
//!
//! # Forgetting
//!
//! - A full bucket (TAT at or before now) carries no information. Every time a
//!   shard has doubled since its last sweep, the insert that finds it so
//!   drops its full buckets (amortised O(1) per new key). A periodic task may
//!   also call [`InMemoryThrottleStore::sweep`].
//! - The store holds at most [`max_keys`](InMemoryThrottleStore::with_max_keys)
//!   buckets (4,194,304 by default; each shard holds its share). When a shard
//!   is at its share after a sweep, it forgets the eighth of its buckets that
//!   are closest to full. A forgotten bucket is full when next seen, so a
//!   flood of distinct keys can give the buckets it pushes out at most their
//!   burst back, and never grows memory past the cap.
//!
//! # Concurrency
//!
//! A bucket's decision is a compare-and-swap loop on its `AtomicU64`, under
//! the shard's read lock (held only to find the entry). Only a new bucket
//! takes the shard's write lock. A request that touches several buckets takes
//! a token from each in order and gives the ones it took back when a later
//! one refuses ([`Gcra::refund`] restores exactly the bucket that would have
//! been). Between the two, a concurrent request may find that bucket one token
//! emptier than it ends up: the hold lasts nanoseconds, and it can only make
//! such a request wait, never let one through that the buckets would refuse.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use portcullis_core::hash::BuildPrehashed;

use crate::gcra::{Gcra, GcraDecision};
use crate::store::{Answer, BucketCheck, BucketKey, Outcome, ThrottleStore, ThrottleStoreError};

/// The most buckets one request may touch in this store.
pub const MAX_CHECKS: usize = 8;

const DEFAULT_MAX_KEYS: usize = 1 << 22;
const SHARDS: usize = 64;
const MIN_SWEEP: usize = 64;

/// The in-memory store (the default). Cheap to clone; clones share the
/// buckets.
#[derive(Clone)]
pub struct InMemoryThrottleStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    digest: RandomState,
    max_per_shard: usize,
}

/// One shard, on its own cache line.
#[repr(align(64))]
struct Shard {
    lock: RwLock<Table>,
}

struct Table {
    /// Keyed by the bucket's SipHash: hashing it again would only cost time.
    map: HashMap<u64, AtomicU64, BuildPrehashed>,
    sweep_at: usize,
}

impl std::fmt::Debug for InMemoryThrottleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryThrottleStore")
            .field("shards", &self.inner.shards.len())
            .field("max_keys", &self.max_keys())
            .finish_non_exhaustive()
    }
}

impl Default for InMemoryThrottleStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryThrottleStore {
    /// An empty store holding at most 4,194,304 buckets.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// An empty store holding at most about `max_keys` buckets (rounded up to
    /// a multiple of the shard count, 64; at least 64 per shard).
    #[must_use]
    pub fn with_max_keys(max_keys: usize) -> Self {
        let max_per_shard = max_keys.div_ceil(SHARDS).max(MIN_SWEEP);
        let shards = (0..SHARDS)
            .map(|_| Shard {
                lock: RwLock::new(Table {
                    map: HashMap::default(),
                    sweep_at: MIN_SWEEP.min(max_per_shard),
                }),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                digest: RandomState::new(),
                max_per_shard,
            }),
        }
    }

    /// The most buckets the store holds.
    #[must_use]
    pub fn max_keys(&self) -> usize {
        self.inner.max_per_shard * self.inner.shards.len()
    }

    /// How many buckets the store holds now (full ones not yet swept
    /// included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| read(&s.lock).map.len())
            .sum()
    }

    /// Whether the store holds no bucket.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap bytes the hash tables hold: for each shard, its capacity in
    /// slots times one entry and one control byte, plus the control group
    /// padding. An estimate of the allocator's view (it does not count the
    /// allocator's own overhead); `benches/memory.rs` compares it with the
    /// process's resident memory.
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        const ENTRY: usize = std::mem::size_of::<(u64, AtomicU64)>();
        self.inner
            .shards
            .iter()
            .map(|s| {
                let cap = read(&s.lock).map.capacity();
                if cap == 0 {
                    0
                } else {
                    // hashbrown keeps buckets = next_power_of_two(cap * 8 / 7).
                    let buckets = (cap * 8 / 7).next_power_of_two();
                    buckets * (ENTRY + 1) + 16
                }
            })
            .sum()
    }

    /// Drops every full bucket (TAT at or before `now_unix_nanos`) and gives
    /// memory back when a shard has shrunk to a quarter of its capacity.
    /// Returns how many buckets were dropped. The store also does this by
    /// itself as it grows; call it from a periodic task to release memory
    /// after a burst of keys has gone quiet.
    pub fn sweep(&self, now_unix_nanos: u64) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| {
                let mut table = write(&s.lock);
                let before = table.map.len();
                table.sweep(now_unix_nanos, self.inner.max_per_shard);
                before - table.map.len()
            })
            .sum()
    }

    /// The whole tokens left in a bucket now (its burst if the store does not
    /// hold it).
    #[must_use]
    pub fn tokens(&self, key: &BucketKey<'_>, gcra: &Gcra, now_unix_nanos: u64) -> u32 {
        let digest = self.inner.digest.hash_one(key);
        let table = read(&self.shard(digest).lock);
        let tat = table
            .map
            .get(&digest)
            .map_or(0, |cell| cell.load(Ordering::Acquire));
        gcra.tokens_at(tat, now_unix_nanos)
    }

    /// The bucket's digest, hashed from a reference (a copy of the key would
    /// be made for nothing).
    #[inline]
    fn digest(&self, key: &BucketKey<'_>) -> u64 {
        self.inner.digest.hash_one(key)
    }

    fn shard(&self, digest: u64) -> &Shard {
        // Bits 40..46 pick the shard: hashbrown indexes with the low bits and
        // tags with the top seven, so these leave both evenly spread. A mask,
        // not `%` by the slice's length: that was a division per bucket.
        const _: () = assert!(SHARDS.is_power_of_two());
        let index = (digest >> 40) as usize & (SHARDS - 1);
        &self.inner.shards[index]
    }

    /// Decides one bucket, inserting it when new.
    #[inline]
    fn take(&self, digest: u64, gcra: &Gcra, now: u64) -> GcraDecision {
        let shard = self.shard(digest);
        {
            let table = read(&shard.lock);
            if let Some(cell) = table.map.get(&digest) {
                return take_from(cell, gcra, now);
            }
        }
        self.insert_and_take(shard, digest, gcra, now)
    }

    /// [`take`](Self::take) for a bucket the shard does not hold yet: out of
    /// line, so that the common path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn insert_and_take(&self, shard: &Shard, digest: u64, gcra: &Gcra, now: u64) -> GcraDecision {
        let mut table = write(&shard.lock);
        if !table.map.contains_key(&digest) && table.map.len() >= table.sweep_at {
            table.sweep(now, self.inner.max_per_shard);
        }
        let cell = table.map.entry(digest).or_insert_with(|| AtomicU64::new(0));
        take_from(cell, gcra, now)
    }

    /// Gives back a token taken by [`take`](Self::take).
    fn give_back(&self, digest: u64, gcra: &Gcra) {
        let table = read(&self.shard(digest).lock);
        // A bucket swept since was full, and a full bucket stays full.
        if let Some(cell) = table.map.get(&digest) {
            let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(gcra.refund(tat))
            });
        }
    }

    /// Decides every bucket of one request (see [`ThrottleStore::acquire`]),
    /// synchronously.
    ///
    /// # Errors
    ///
    /// More than [`MAX_CHECKS`] buckets.
    #[inline]
    pub fn acquire_now(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Result<Outcome, ThrottleStoreError> {
        if let [check] = checks {
            // One bucket: nothing to give back.
            let digest = self.digest(&check.key);
            return Ok(match self.take(digest, &check.gcra, now_unix_nanos) {
                GcraDecision::Admit {
                    remaining,
                    full_after_nanos,
                    ..
                } => Outcome {
                    admitted: true,
                    bucket: 0,
                    remaining,
                    retry_after_nanos: 0,
                    full_after_nanos,
                },
                GcraDecision::Refuse {
                    retry_after_nanos,
                    full_after_nanos,
                } => Outcome {
                    admitted: false,
                    bucket: 0,
                    remaining: 0,
                    retry_after_nanos,
                    full_after_nanos,
                },
            });
        }
        self.acquire_many(checks, now_unix_nanos)
    }

    /// [`acquire_now`](Self::acquire_now) for any number of buckets but one:
    /// out of line, so that the one-bucket path stays small enough to inline.
    #[inline(never)]
    fn acquire_many(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Result<Outcome, ThrottleStoreError> {
        if checks.len() > MAX_CHECKS {
            return Err(ThrottleStoreError::msg(format!(
                "a request may touch at most {MAX_CHECKS} buckets, got {}",
                checks.len()
            )));
        }
        let mut taken = [0u64; MAX_CHECKS];
        let mut best = Outcome::unlimited();
        for (i, check) in checks.iter().enumerate() {
            let digest = self.digest(&check.key);
            match self.take(digest, &check.gcra, now_unix_nanos) {
                GcraDecision::Admit {
                    remaining,
                    full_after_nanos,
                    ..
                } => {
                    taken[i] = digest;
                    if i == 0 || remaining < best.remaining {
                        best = Outcome {
                            admitted: true,
                            bucket: i,
                            remaining,
                            retry_after_nanos: 0,
                            full_after_nanos,
                        };
                    }
                }
                GcraDecision::Refuse {
                    retry_after_nanos,
                    full_after_nanos,
                } => {
                    for (digest, check) in taken.iter().zip(checks).take(i) {
                        self.give_back(*digest, &check.gcra);
                    }
                    return Ok(Outcome {
                        admitted: false,
                        bucket: i,
                        remaining: 0,
                        retry_after_nanos,
                        full_after_nanos,
                    });
                }
            }
        }
        Ok(best)
    }
}

#[inline]
fn take_from(cell: &AtomicU64, gcra: &Gcra, now: u64) -> GcraDecision {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        let decision = gcra.decide(current, now);
        let GcraDecision::Admit { tat, .. } = decision else {
            if let Some(capped) = gcra.normalize(current, now) {
                // The limit shrank: keep the debt capped at the new bucket.
                let _ = cell.compare_exchange(current, capped, Ordering::AcqRel, Ordering::Relaxed);
            }
            return decision;
        };
        match cell.compare_exchange_weak(current, tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return decision,
            Err(seen) => current = seen,
        }
    }
}

impl Table {
    fn sweep(&mut self, now: u64, max: usize) {
        self.map.retain(|_, tat| *tat.get_mut() > now);
        if self.map.len() >= max {
            // Forget the eighth closest to full (the smallest TATs).
            let mut tats: Vec<u64> = self.map.values_mut().map(|t| *t.get_mut()).collect();
            let cut = tats.len() / 8;
            let (_, pivot, _) = tats.select_nth_unstable(cut);
            let pivot = *pivot;
            let mut budget = cut + 1;
            self.map.retain(|_, tat| {
                if budget > 0 && *tat.get_mut() <= pivot {
                    budget -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let len = self.map.len();
        if self.map.capacity() > 4 * len.max(MIN_SWEEP) {
            self.map.shrink_to(2 * len);
        }
        self.sweep_at = (2 * len).clamp(MIN_SWEEP.min(max), max);
    }
}

#[inline]
fn read(lock: &RwLock<Table>) -> RwLockReadGuard<'_, Table> {
    // A panic while holding the lock cannot leave a table half-updated in a
    // way that matters: every entry is a plain atomic. Keep going.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Table>) -> RwLockWriteGuard<'_, Table> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl ThrottleStore for InMemoryThrottleStore {
    type Future = std::future::Ready<Result<Outcome, ThrottleStoreError>>;

    #[inline]
    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future> {
        Answer::Ready(self.acquire_now(checks, now_unix_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CallerKey, CallerKeySource, Level};
    use portcullis_core::plan::ThrottleSettings;

    const S: u64 = 1_000_000_000;

    fn key(value: &[u8]) -> BucketKey<'_> {
        BucketKey {
            level: Level::Key,
            stage: None,
            method: None,
            caller: Some(CallerKey {
                source: CallerKeySource::Custom,
                value,
            }),
        }
    }

    fn gcra(rate: f64, burst: u32) -> Gcra {
        Gcra::new(&ThrottleSettings::new(rate, burst).unwrap())
    }

    #[test]
    fn full_buckets_are_swept_as_the_store_grows() {
        let store = InMemoryThrottleStore::new();
        let g = gcra(1.0, 1);
        for i in 0u32..10_000 {
            let value = i.to_be_bytes();
            let check = BucketCheck {
                key: key(&value),
                gcra: g,
            };
            // Each key is used once, at time i seconds, and is full again one
            // second later.
            let outcome = store.acquire_now(&[check], u64::from(i) * S).unwrap();
            assert!(outcome.admitted);
        }
        // Only buckets that are not full yet, and those not swept since they
        // filled, remain: a shard sweeps whenever it reaches 64 buckets (at
        // most one of which is not full here).
        assert!(store.len() <= SHARDS * MIN_SWEEP, "{}", store.len());
        let before = store.len();
        assert_eq!(store.sweep(10_001 * S), before);
        assert!(store.is_empty());
    }

    #[test]
    fn the_cap_bounds_memory_under_a_flood_of_keys() {
        let store = InMemoryThrottleStore::with_max_keys(64 * 100);
        // A slow bucket: nothing refills during the flood.
        let g = gcra(0.001, 5);
        for i in 0u32..200_000 {
            let value = i.to_be_bytes();
            let check = BucketCheck {
                key: key(&value),
                gcra: g,
            };
            assert!(store.acquire_now(&[check], S).unwrap().admitted);
        }
        assert!(store.len() <= store.max_keys(), "{}", store.len());
        assert!(store.len() >= store.max_keys() / 2, "{}", store.len());
    }

    #[test]
    fn a_refused_request_keeps_no_token() {
        let store = InMemoryThrottleStore::new();
        let wide = gcra(1.0, 10);
        let narrow = gcra(1.0, 1);
        let a = key(b"a");
        let b = key(b"b");
        let checks = [
            BucketCheck { key: a, gcra: wide },
            BucketCheck {
                key: b,
                gcra: narrow,
            },
        ];
        let first = store.acquire_now(&checks, S).unwrap();
        assert!(first.admitted);
        assert_eq!((first.bucket, first.remaining), (1, 0));
        let second = store.acquire_now(&checks, S).unwrap();
        assert!(!second.admitted);
        assert_eq!(second.bucket, 1);
        assert_eq!(second.retry_after_nanos, S);
        assert_eq!(store.tokens(&a, &wide, S), 9);
        assert_eq!(store.tokens(&b, &narrow, S), 0);
    }

    #[test]
    fn too_many_checks_is_an_error() {
        let store = InMemoryThrottleStore::new();
        let g = gcra(1.0, 1);
        let checks = [BucketCheck {
            key: key(b"x"),
            gcra: g,
        }; MAX_CHECKS + 1];
        assert!(store.acquire_now(&checks, S).is_err());
    }
}
