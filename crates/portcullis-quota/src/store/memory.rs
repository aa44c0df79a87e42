//! The in-memory store: exact under concurrency, lock-free on the hot path,
//! and compact: a tracked key costs its id's bytes and about 45 more.
//!
//! # Layout
//!
//! The store has 64 shards. Each keeps its counters as records in one array
//! of words, found through a `hashbrown` [`HashTable`] of `u32` offsets into
//! it (hashed with `foldhash`, hashbrown's default: randomly seeded, and
//! several times faster than SipHash on short ids; the ids are those of keys
//! the API-key layer accepted, not arbitrary client input). A record:
//!
//! ```text
//! word 0  | day tag (16 bits) | remaining (48 bits) |   the hot word
//! word 1  | key id length (7) | plan id length (7) | the quota's limit << 2 | period kind (50) |
//! word 2  | first period's day, low half (16) | day base (48) |
//! word 3  | first period's day, high half (16) | allowance (48) |
//! word 4  | period start (day, 32) | day being counted (32) |
//! word 5… | plan id | key id |  zero-padded
//! ```
//!
//! Word 1's low 50 bits are the quota's signature, to notice a plan change;
//! its top 14 the two ids' lengths. An id longer than 126 bytes sets all 14
//! and puts a word of lengths (32 bits each) before the ids' bytes.
//!
//! A request whose day matches the tag takes one with a compare-and-swap on
//! word 0, as governor does with its GCRA state, under the shard's read lock
//! (held only to find the record): no other lock, and never below zero, so
//! never more than the allowance is admitted and a refused request changes
//! nothing. The first request of a new day or period (a tag mismatch), a
//! plan change and an update take the shard's write lock, file the old day's
//! `[used, remaining]` as a usage record and move the counters.
//!
//! # What each part costs
//!
//! | part | bytes | instead of |
//! |---|---|---|
//! | counters (words 0–4) | 40 | an entry of two atomics, a mutex and a 112-byte state (176 with the map's key) |
//! | the plan and key ids | their bytes, padded to 8: 16 for a 4-byte plan and an AWS 10-character key id (their lengths ride in word 1's spare bits; 8 more for an id past 126 bytes) | a word of lengths and the bytes (24); two `Arc<str>` (32, and two heap blocks of 32 or more) |
//! | its slot in the index | 4 + 1 control byte at a load of 44–88 %: 5.7–11.4 | a dashmap entry |
//! | the array's headroom | at most a quarter of the records (it grows by 25 %) | |
//! | usage records of past days | 16 a day (the day and two 48-bit counts), in a side map only for keys that have them, grown one day at a time | 24 a day in a `VecDeque` that doubles (3,352 bytes a key at 90 days), and an empty `VecDeque` in every entry (24) |
//!
//! Days and period starts are kept as day numbers (32 bits): the calendar's
//! periods are whole UTC days, so a period start is compared by the day it
//! starts on. Limits and counts are 48 bits ([`MAX_REMAINING`]).
//!
//! # Forgetting, and giving memory back
//!
//! A counter is needed until its period has ended and its last usage record
//! has passed the retention: [`InMemoryQuotaStore::prune`] then drops it, and
//! rebuilds each shard that dropped any at the size of what is left, so the
//! memory goes back to the allocator. A key seen again after that starts as
//! a new key (its first period is the current one, so a plan's `offset`
//! applies to it again: it can only be admitted less, never more).

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use time::Date;

use super::{
    Answer, DEFAULT_RETENTION_DAYS, DayUsage, Decision, QuotaRequest, QuotaStore, UsageUpdate,
};

mod table;

use table::{
    Ids, REMAINING_BITS, SIG, SIG_MASK, Table, WORD, ids_at, load, oldest_kept, read, remaining_of,
    sig_of, store, tag_of, write,
};

/// The in-memory store cannot fail: its error type has no values.
pub type InMemoryQuotaStoreError = Infallible;

/// The default store: counters and usage records in this process's memory.
///
/// Clones share the same counters. It is exact under any concurrency (see
/// the [module docs](crate::store)), and it needs nothing running; state is
/// lost when the process exits, and each process counts on its own: use the
/// Redis store to share quotas between instances.
///
/// ```
/// use portcullis_quota::store::{Answer, InMemoryQuotaStore, QuotaRequest, QuotaStore};
/// use portcullis_quota::Calendar;
/// use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
/// use time::macros::datetime;
///
/// let store = InMemoryQuotaStore::new();
/// let now = datetime!(2026-11-23 10:00 UTC);
/// let request = QuotaRequest {
///     plan_id: "basic",
///     key_id: "key-1",
///     quota: QuotaSettings::new(2, QuotaPeriod::Day).unwrap(),
///     window: Calendar::new().window(QuotaPeriod::Day, now),
///     day: now.date(),
///     initial_window: None,
/// };
/// // An in-memory store always answers at once.
/// let admitted = |r: &QuotaRequest<'_>| match store.consume(r) {
///     Answer::Ready(decision) => decision.unwrap().admitted,
///     Answer::Pending(_) => unreachable!(),
/// };
/// assert!(admitted(&request));
/// assert!(admitted(&request));
/// assert!(!admitted(&request));
/// ```
#[derive(Clone)]
pub struct InMemoryQuotaStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    retention_days: u32,
}

const SHARDS: usize = 64;

/// One shard, on its own cache line.
#[repr(align(64))]
struct Shard {
    lock: RwLock<Table>,
}

impl fmt::Debug for InMemoryQuotaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryQuotaStore")
            .field("tracked_keys", &self.tracked_keys())
            .field("retention_days", &self.inner.retention_days)
            .finish()
    }
}

impl Default for InMemoryQuotaStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryQuotaStore {
    /// An empty store keeping usage records for
    /// [`DEFAULT_RETENTION_DAYS`] (90) days.
    #[must_use]
    pub fn new() -> Self {
        Self::with_retention_days(DEFAULT_RETENTION_DAYS)
    }

    /// An empty store keeping usage records for `days` days before today
    /// (0 keeps only the day being counted).
    #[must_use]
    pub fn with_retention_days(days: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS)
                    .map(|_| Shard {
                        lock: RwLock::new(Table::default()),
                    })
                    .collect(),
                hasher: foldhash::fast::RandomState::default(),
                retention_days: days,
            }),
        }
    }

    /// How many days of usage records the store keeps.
    #[must_use]
    pub fn retention_days(&self) -> u32 {
        self.inner.retention_days
    }

    /// How many (plan, key) pairs the store tracks.
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| read(&s.lock).index.len())
            .sum()
    }

    /// The heap bytes the counters take: each shard's index allocation and
    /// record array capacity (usage records of past days not included). It
    /// does not count the allocator's own overhead.
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

    /// Drops every usage record older than the retention before `today`, and
    /// every counter that carries nothing any more: its period has ended
    /// (it began more than 31 days ago) and the day it last counted is older
    /// than the retention. Shards that dropped a counter are rebuilt at the
    /// size of what is left, so the memory goes back to the allocator.
    /// Records are also dropped as each key moves to a new day; call this
    /// from a periodic task (daily is enough) to sweep keys that have gone
    /// quiet.
    pub fn prune(&self, today: Date) {
        let oldest = oldest_kept(today, self.inner.retention_days);
        for shard in &self.inner.shards {
            write(&shard.lock).prune(today, oldest, &self.inner.hasher);
        }
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Bits 40..46 pick the shard: hashbrown indexes with the low bits and
        // tags with the top seven, so these leave both evenly spread.
        &self.inner.shards[(hash >> 40) as usize & (SHARDS - 1)]
    }

    /// Counts one request, synchronously.
    #[inline]
    fn consume_sync(&self, request: &QuotaRequest<'_>) -> Decision {
        let ids = Ids::of(request.plan_id, request.key_id);
        let hash = ids.hash(&self.inner.hasher);
        let shard = self.shard(hash);
        {
            let table = read(&shard.lock);
            if let Some(at) = table.find(hash, &ids)
                && let Some(decision) = consume_fast(&table.words, at, request)
            {
                return decision;
            }
        }
        self.consume_slow(shard, hash, &ids, request)
    }

    #[cold]
    #[inline(never)]
    fn consume_slow(
        &self,
        shard: &Shard,
        hash: u64,
        ids: &Ids<'_>,
        request: &QuotaRequest<'_>,
    ) -> Decision {
        let mut table = write(&shard.lock);
        let Some(at) = table.find_or_insert(hash, ids, request, &self.inner.hasher) else {
            // A shard past 32 GiB (unreachable in practice): refuse rather
            // than count nowhere.
            return Decision {
                admitted: false,
                remaining: 0,
            };
        };
        table.advance(at, request, self.inner.retention_days);
        // Under the write lock nothing else touches the record.
        let word = load(&table.words, at + WORD);
        let remaining = remaining_of(word);
        if remaining == 0 {
            return Decision {
                admitted: false,
                remaining: 0,
            };
        }
        store(&table.words, at + WORD, word - 1);
        Decision {
            admitted: true,
            remaining: remaining - 1,
        }
    }
}

/// The lock-free path: `None` when the day or the plan changed.
#[inline]
fn consume_fast(words: &[AtomicU64], at: usize, request: &QuotaRequest<'_>) -> Option<Decision> {
    let (cell, sig) = (words.get(at + WORD)?, words.get(at + SIG)?);
    if sig.load(Ordering::Acquire) & SIG_MASK != sig_of(&request.quota) {
        return None;
    }
    let tag = tag_of(request.day);
    let mut word = cell.load(Ordering::Acquire);
    loop {
        if word >> REMAINING_BITS != tag {
            return None;
        }
        let remaining = remaining_of(word);
        if remaining == 0 {
            return Some(Decision {
                admitted: false,
                remaining: 0,
            });
        }
        match cell.compare_exchange_weak(word, word - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                return Some(Decision {
                    admitted: true,
                    remaining: remaining - 1,
                });
            }
            Err(current) => word = current,
        }
    }
}

impl QuotaStore for InMemoryQuotaStore {
    type Error = Infallible;
    type Future = Ready<Result<Decision, Infallible>>;

    #[inline]
    fn consume(
        &self,
        request: &QuotaRequest<'_>,
    ) -> Answer<Result<Decision, Infallible>, Self::Future> {
        Answer::Ready(Ok(self.consume_sync(request)))
    }

    fn update(
        &self,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
    ) -> impl Future<Output = Result<DayUsage, Infallible>> + Send {
        let ids = Ids::of(request.plan_id, request.key_id);
        let hash = ids.hash(&self.inner.hasher);
        let mut table = write(&self.shard(hash).lock);
        let usage = match table.find_or_insert(hash, &ids, request, &self.inner.hasher) {
            Some(at) => table.update(at, request, update, self.inner.retention_days),
            // A shard past 32 GiB (unreachable in practice): nothing changed.
            None => DayUsage {
                day: request.day,
                used: 0,
                remaining: 0,
            },
        };
        ready(Ok(usage))
    }

    fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, Infallible>> + Send {
        let ids = Ids::of(plan_id, key_id);
        let hash = ids.hash(&self.inner.hasher);
        let table = read(&self.shard(hash).lock);
        let records = table
            .find(hash, &ids)
            .map(|at| table.usage(at, from, to))
            .unwrap_or_default();
        ready(Ok(records))
    }

    fn keys(&self, plan_id: &str) -> impl Future<Output = Result<Vec<String>, Infallible>> + Send {
        let mut keys: Vec<String> = Vec::new();
        for shard in &self.inner.shards {
            let table = read(&shard.lock);
            for &at in &table.index {
                let (plan, key) = ids_at(&table.words, at as usize);
                if plan == plan_id.as_bytes() {
                    keys.push(String::from_utf8_lossy(&key).into_owned());
                }
            }
        }
        keys.sort_unstable();
        ready(Ok(keys))
    }
}

#[cfg(test)]
mod tests;
