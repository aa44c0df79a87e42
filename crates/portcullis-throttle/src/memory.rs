//! The in-memory store: one `AtomicU64` per bucket, updated by
//! compare-and-swap, in sharded tables shared by every clone.
//!
//! # Layout, exactness and memory
//!
//! Each of the 64 shards keeps its buckets as records in one array of words:
//!
//! ```text
//! | TAT (8 bytes) | length (4 bytes) + the key's bytes, zero-padded to whole words |
//! ```
//!
//! The key's bytes are the stream its [`BucketKey`]'s `Hash` feeds, which is
//! distinct for distinct keys (property-tested in `tests/bucket_hash.rs`), so
//! **two keys never share a bucket**: a lookup compares the stored bytes, not
//! only a digest. (The store used to keep a 64-bit digest alone: about one
//! chance in 36 million, with a million keys, that two keys shared a bucket;
//! and two colliding keys of different plans could let one over-admit, as a
//! refusal caps the shared TAT at the refusing plan's bucket.)
//!
//! A shard finds a record through a `hashbrown` [`HashTable`] of `u32`
//! offsets into its array, hashed with SipHash-1-3 under a random key chosen
//! when the store is created, so an attacker who picks header values or key
//! ids cannot make one shard's probes long. What a tracked key costs, and
//! why:
//!
//! | part | bytes | instead of |
//! |---|---|---|
//! | the TAT | 8 | — (GCRA needs one number) |
//! | the key, with its length | 4 + key bytes, padded to 8 (16 for an AWS key id's 11) | a `String` (24 + a heap block of at least 32) |
//! | its slot in the index | 4 + 1 control byte, at a load of 44–88 % (hashbrown grows by doubling): 5.7–11.4 | a 16-byte entry of a map keyed by the owned key: 19–39 |
//! | the array's headroom | at most a quarter of the records (it grows by 25 %, not by doubling) | doubling: up to the records again |
//!
//! So an API key's bucket (a 10-character id) takes 30–41 bytes; the exact
//! key costs 8–16 more than a digest alone would. `benches/memory.rs`
//! measures it at a million keys, and `portcullis-loadtest mem` measures the
//! process's resident memory.
//!
//! # Forgetting, and giving memory back
//!
//! - A full bucket (TAT at or before now) carries no information. Every time a
//!   shard has doubled since its last sweep, the insert that finds it so
//!   drops its full buckets (amortised O(1) per new key). A periodic task may
//!   also call [`InMemoryStore::sweep`].
//! - A sweep that drops anything rebuilds the shard's array and index at the
//!   size of what is left and frees the old ones, so the memory goes back to
//!   the allocator (an index or array of more than a few hundred kilobytes
//!   is its own mapping, which the allocator unmaps on free).
//! - The store holds at most [`max_keys`](InMemoryStore::with_max_keys)
//!   buckets (4,194,304 by default; each shard holds its share). When a shard
//!   is at its share after a sweep, it forgets the eighth of its buckets that
//!   are closest to full. A forgotten bucket is full when next seen, so a
//!   flood of distinct keys can give the buckets it pushes out at most their
//!   burst back, and never grows memory past the cap.
//!
//! # Concurrency
//!
//! A bucket's decision is a compare-and-swap loop on its TAT word, under the
//! shard's read lock (held only to find the record). Only a new bucket, or a
//! sweep, takes the shard's write lock. A request that touches several
//! buckets takes a token from each in order and gives the ones it took back
//! when a later one refuses ([`Gcra::refund`] restores exactly the bucket
//! that would have been). Between the two, a concurrent request may find that
//! bucket one token emptier than it ends up: the hold lasts nanoseconds, and
//! it can only make such a request wait, never let one through that the
//! buckets would refuse.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

use crate::gcra::{Gcra, GcraDecision};
use crate::store::{Acquire, BucketCheck, BucketKey, Outcome, StoreError, ThrottleStore};

/// The most buckets one request may touch in this store.
pub const MAX_CHECKS: usize = 8;

const DEFAULT_MAX_KEYS: usize = 1 << 22;
const SHARDS: usize = 64;
const MIN_SWEEP: usize = 64;
/// Keys of up to this many bytes (with their 4-byte length) are encoded on
/// the stack; longer ones on the heap.
const INLINE_KEY: usize = 128;

/// The in-memory store (the default). Cheap to clone; clones share the
/// buckets.
#[derive(Clone)]
pub struct InMemoryStore {
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

/// One shard's buckets (see the module docs for the layout).
struct Table {
    /// The offset in `words` of each bucket's record, found by the SipHash
    /// of its key bytes.
    index: HashTable<u32>,
    /// The records, one after another: the TAT, then the key's words.
    words: Vec<AtomicU64>,
    sweep_at: usize,
}

/// A bucket's key as a shard stores and compares it: the bytes its
/// [`BucketKey`]'s `Hash` feeds (distinct for distinct keys), after their
/// length in 4 little-endian bytes, zero-padded to whole 8-byte words.
struct KeyBytes {
    inline: [u8; INLINE_KEY],
    /// The bytes, when they outgrow `inline`.
    spilled: Vec<u8>,
    len: usize,
}

impl Hasher for KeyBytes {
    fn write(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.spilled.is_empty() && end <= INLINE_KEY {
            self.inline[self.len..end].copy_from_slice(bytes);
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.len]);
            }
            self.spilled.extend_from_slice(bytes);
        }
        self.len = end;
    }

    fn finish(&self) -> u64 {
        // Only the recorded bytes matter; nothing asks for a digest.
        0
    }
}

impl KeyBytes {
    #[inline]
    fn of(key: &BucketKey<'_>) -> Self {
        let mut bytes = Self {
            inline: [0; INLINE_KEY],
            spilled: Vec::new(),
            len: 4,
        };
        key.hash(&mut bytes);
        // A key of 4 GiB or more is not a request's: its length saturates.
        let len = u32::try_from(bytes.len - 4)
            .unwrap_or(u32::MAX)
            .to_le_bytes();
        let padded = bytes.len.next_multiple_of(8);
        if bytes.spilled.is_empty() {
            bytes.inline[..4].copy_from_slice(&len);
        } else {
            bytes.spilled[..4].copy_from_slice(&len);
            bytes.spilled.resize(padded, 0);
        }
        bytes.len = padded;
        bytes
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    #[inline]
    fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.bytes()
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])))
    }

    fn word_count(&self) -> usize {
        self.len / 8
    }
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("shards", &self.inner.shards.len())
            .field("max_keys", &self.max_keys())
            .finish_non_exhaustive()
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryStore {
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
                    index: HashTable::new(),
                    words: Vec::new(),
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
            .map(|s| read(&s.lock).index.len())
            .sum()
    }

    /// Whether the store holds no bucket.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap bytes the shards hold: each index's allocation and each
    /// record array's capacity. It does not count the allocator's own
    /// overhead; `benches/memory.rs` compares it with the process's resident
    /// memory.
    #[must_use]
    pub fn table_bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| {
                let table = read(&s.lock);
                table.index.allocation_size()
                    + table.words.capacity() * std::mem::size_of::<AtomicU64>()
            })
            .sum()
    }

    /// Drops every full bucket (TAT at or before `now_unix_nanos`), and
    /// rebuilds each shard that dropped any at the size of what is left, so
    /// the memory goes back to the allocator. Returns how many buckets were
    /// dropped. The store also does this by itself as it grows; call it from
    /// a periodic task to release memory after a burst of keys has gone
    /// quiet.
    pub fn sweep(&self, now_unix_nanos: u64) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| {
                let mut table = write(&s.lock);
                let before = table.index.len();
                table.sweep(now_unix_nanos, self.inner.max_per_shard, &self.inner.digest);
                before - table.index.len()
            })
            .sum()
    }

    /// The whole tokens left in a bucket now (its burst if the store does not
    /// hold it).
    #[must_use]
    pub fn tokens(&self, key: &BucketKey<'_>, gcra: &Gcra, now_unix_nanos: u64) -> u32 {
        let key = KeyBytes::of(key);
        let hash = self.hash(&key);
        let table = read(&self.shard(hash).lock);
        let tat = table
            .find(hash, &key)
            .map_or(0, |cell| cell.load(Ordering::Acquire));
        gcra.tokens_at(tat, now_unix_nanos)
    }

    /// The SipHash of a key's bytes, which picks its shard and its slot.
    #[inline]
    fn hash(&self, key: &KeyBytes) -> u64 {
        let mut hasher = self.inner.digest.build_hasher();
        hasher.write(key.bytes());
        hasher.finish()
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Bits 40..46 pick the shard: hashbrown indexes with the low bits and
        // tags with the top seven, so these leave both evenly spread. A mask,
        // not `%` by the slice's length: that was a division per bucket.
        const _: () = assert!(SHARDS.is_power_of_two());
        let index = (hash >> 40) as usize & (SHARDS - 1);
        &self.inner.shards[index]
    }

    /// Decides one bucket, inserting it when new.
    #[inline]
    fn take(&self, key: &KeyBytes, gcra: &Gcra, now: u64) -> Result<GcraDecision, StoreError> {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        {
            let table = read(&shard.lock);
            if let Some(cell) = table.find(hash, key) {
                return Ok(take_from(cell, gcra, now));
            }
        }
        self.insert_and_take(shard, hash, key, gcra, now)
    }

    /// [`take`](Self::take) for a bucket the shard does not hold yet: out of
    /// line, so that the common path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn insert_and_take(
        &self,
        shard: &Shard,
        hash: u64,
        key: &KeyBytes,
        gcra: &Gcra,
        now: u64,
    ) -> Result<GcraDecision, StoreError> {
        let mut table = write(&shard.lock);
        if let Some(cell) = table.find(hash, key) {
            return Ok(take_from(cell, gcra, now));
        }
        if table.index.len() >= table.sweep_at {
            table.sweep(now, self.inner.max_per_shard, &self.inner.digest);
        }
        let cell = table
            .insert(hash, key, &self.inner.digest)
            .ok_or_else(|| StoreError::msg("a throttle shard outgrew 32 GiB of keys"))?;
        Ok(take_from(cell, gcra, now))
    }

    /// Gives back a token taken by [`take`](Self::take).
    fn give_back(&self, key: &BucketKey<'_>, gcra: &Gcra) {
        let key = KeyBytes::of(key);
        let hash = self.hash(&key);
        let table = read(&self.shard(hash).lock);
        // A bucket swept since was full, and a full bucket stays full.
        if let Some(cell) = table.find(hash, &key) {
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
    ) -> Result<Outcome, StoreError> {
        if let [check] = checks {
            // One bucket: nothing to give back.
            let key = KeyBytes::of(&check.key);
            return Ok(match self.take(&key, &check.gcra, now_unix_nanos)? {
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
    ) -> Result<Outcome, StoreError> {
        if checks.len() > MAX_CHECKS {
            return Err(StoreError::msg(format!(
                "a request may touch at most {MAX_CHECKS} buckets, got {}",
                checks.len()
            )));
        }
        let mut best = Outcome::unlimited();
        for (i, check) in checks.iter().enumerate() {
            let key = KeyBytes::of(&check.key);
            let decision = self.take(&key, &check.gcra, now_unix_nanos);
            match decision {
                Ok(GcraDecision::Admit {
                    remaining,
                    full_after_nanos,
                    ..
                }) => {
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
                refused_or_failed => {
                    for taken in &checks[..i] {
                        self.give_back(&taken.key, &taken.gcra);
                    }
                    let (retry_after_nanos, full_after_nanos) = match refused_or_failed? {
                        GcraDecision::Refuse {
                            retry_after_nanos,
                            full_after_nanos,
                        } => (retry_after_nanos, full_after_nanos),
                        GcraDecision::Admit { .. } => (0, 0),
                    };
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
    /// The TAT of the bucket whose key is `key`.
    #[inline]
    fn find(&self, hash: u64, key: &KeyBytes) -> Option<&AtomicU64> {
        let at = *self.index.find(hash, |&at| self.holds(at, key))?;
        self.words.get(at as usize)
    }

    /// Whether the record at `at` is `key`'s.
    #[inline]
    fn holds(&self, at: u32, key: &KeyBytes) -> bool {
        let start = at as usize + 1;
        self.words
            .get(start..start + key.word_count())
            .is_some_and(|stored| {
                stored
                    .iter()
                    .zip(key.words())
                    .all(|(word, expected)| word.load(Ordering::Relaxed) == expected)
            })
    }

    /// Adds a full bucket for `key` (which the table does not hold); `None`
    /// when the shard's array would pass 2^32 words (32 GiB).
    fn insert(&mut self, hash: u64, key: &KeyBytes, digest: &RandomState) -> Option<&AtomicU64> {
        let at = self.words.len();
        let record = 1 + key.word_count();
        let offset = u32::try_from(at).ok()?;
        u32::try_from(at + record).ok()?;
        if self.words.capacity() - at < record {
            // Grow by a quarter, not by doubling: at most a quarter of the
            // records is headroom.
            self.words.reserve_exact(record.max(at / 4));
        }
        self.words.push(AtomicU64::new(0));
        self.words.extend(key.words().map(AtomicU64::new));
        let Table { index, words, .. } = self;
        index.insert_unique(hash, offset, |&at| rehash(words, at, digest));
        self.words.get(at)
    }

    /// Drops the full buckets (and, at the cap, the eighth closest to full),
    /// then rebuilds the array and index at the size of what is left.
    fn sweep(&mut self, now: u64, max: usize, digest: &RandomState) {
        let mut live: Vec<(u64, u32)> = self
            .index
            .iter()
            .filter_map(|&at| {
                let tat = self.words.get(at as usize)?.load(Ordering::Acquire);
                (tat > now).then_some((tat, at))
            })
            .collect();
        if live.len() >= max {
            // Forget the eighth closest to full (the smallest TATs).
            let cut = live.len() / 8;
            live.select_nth_unstable_by_key(cut, |&(tat, _)| tat);
            live.drain(..=cut);
        }
        if live.len() < self.index.len() {
            let mut index = HashTable::with_capacity(live.len());
            let size: usize = live
                .iter()
                .map(|&(_, at)| record_len(&self.words, at))
                .sum();
            let mut words = Vec::with_capacity(size);
            for &(_, at) in &live {
                let start = at as usize;
                let Some(record) = self.words.get(start..start + record_len(&self.words, at))
                else {
                    continue;
                };
                // `size` fits in u32: the old array held these records.
                let Ok(offset) = u32::try_from(words.len()) else {
                    break;
                };
                words.extend(
                    record
                        .iter()
                        .map(|word| AtomicU64::new(word.load(Ordering::Acquire))),
                );
                index.insert_unique(rehash(&words, offset, digest), offset, |&at| {
                    rehash(&words, at, digest)
                });
            }
            self.index = index;
            self.words = words;
        }
        let len = self.index.len();
        self.sweep_at = (2 * len).clamp(MIN_SWEEP.min(max), max);
    }
}

/// The words of the record at `at`: the TAT, then the key's words.
fn record_len(words: &[AtomicU64], at: u32) -> usize {
    let key_len = words
        .get(at as usize + 1)
        .map_or(0, |word| word.load(Ordering::Relaxed) & u64::from(u32::MAX));
    // The length word counts the key's bytes after its own 4.
    1 + usize::try_from(key_len + 4).map_or(0, |n| n.div_ceil(8))
}

/// The SipHash of the key of the record at `at`, as
/// [`InMemoryStore::hash`] computed it from the request's key bytes.
fn rehash(words: &[AtomicU64], at: u32, digest: &RandomState) -> u64 {
    let start = at as usize + 1;
    let end = at as usize + record_len(words, at);
    let mut hasher = digest.build_hasher();
    for word in words.get(start..end).unwrap_or_default() {
        hasher.write(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    hasher.finish()
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

impl ThrottleStore for InMemoryStore {
    type Future = std::future::Ready<Result<Outcome, StoreError>>;

    #[inline]
    fn acquire(&self, checks: &[BucketCheck<'_>], now_unix_nanos: u64) -> Acquire<Self::Future> {
        Acquire::Ready(self.acquire_now(checks, now_unix_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CallerKey, KeySource, Level};
    use portcullis_core::plan::ThrottleSettings;

    const S: u64 = 1_000_000_000;

    fn key(value: &[u8]) -> BucketKey<'_> {
        BucketKey {
            level: Level::Key,
            stage: None,
            method: None,
            caller: Some(CallerKey {
                source: KeySource::Custom,
                value,
            }),
        }
    }

    fn gcra(rate: f64, burst: u32) -> Gcra {
        Gcra::new(&ThrottleSettings::new(rate, burst).unwrap())
    }

    #[test]
    fn full_buckets_are_swept_as_the_store_grows() {
        let store = InMemoryStore::new();
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
        let store = InMemoryStore::with_max_keys(64 * 100);
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
        let store = InMemoryStore::new();
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
    fn keys_with_one_prefix_or_past_the_inline_buffer_never_share_a_bucket() {
        let store = InMemoryStore::new();
        let g = gcra(1.0, 2);
        let long_a = vec![b'a'; 300];
        let mut long_b = long_a.clone();
        long_b[299] = b'b';
        let values: [&[u8]; 6] = [b"ab", b"ab\0", b"a", b"", &long_a, &long_b];
        for value in values {
            let check = BucketCheck {
                key: key(value),
                gcra: g,
            };
            // Each key's first request finds a full bucket: none shares one.
            assert_eq!(store.acquire_now(&[check], S).unwrap().remaining, 1);
        }
        for value in values {
            assert_eq!(store.tokens(&key(value), &g, S), 1, "{value:?}");
        }
        assert_eq!(store.len(), values.len());
    }

    #[test]
    fn a_sweep_rebuilds_the_shards_and_every_kept_bucket_is_found() {
        let store = InMemoryStore::new();
        let g = gcra(1.0, 5);
        // Key i takes i % 4 + 1 tokens at 0 s: its bucket is full again at
        // (i % 4 + 1) s.
        for i in 0u32..2_000 {
            let value = i.to_be_bytes();
            for _ in 0..=i % 4 {
                let check = BucketCheck {
                    key: key(&value),
                    gcra: g,
                };
                assert!(store.acquire_now(&[check], 0).unwrap().admitted);
            }
        }
        let bytes_before = store.table_bytes();
        // At 2 s, the buckets that took one or two tokens are full.
        assert_eq!(store.sweep(2 * S), 1_000);
        assert_eq!(store.len(), 1_000);
        assert!(store.table_bytes() < bytes_before);
        for i in 0u32..2_000 {
            let value = i.to_be_bytes();
            let expected = if i % 4 < 2 { 5 } else { 5 - (i % 4 + 1) + 2 };
            assert_eq!(store.tokens(&key(&value), &g, 2 * S), expected, "key {i}");
        }
    }

    #[test]
    fn too_many_checks_is_an_error() {
        let store = InMemoryStore::new();
        let g = gcra(1.0, 1);
        let checks = [BucketCheck {
            key: key(b"x"),
            gcra: g,
        }; MAX_CHECKS + 1];
        assert!(store.acquire_now(&checks, S).is_err());
    }
}
