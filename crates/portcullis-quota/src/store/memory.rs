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

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;
use time::{Date, Duration};

use super::{
    DEFAULT_RETENTION_DAYS, DayUsage, Decision, MAX_REMAINING, QuotaRequest, QuotaStore,
    UsageUpdate,
};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};

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
/// use portcullis_quota::store::{InMemoryQuotaStore, QuotaRequest, QuotaStore};
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
/// let admitted = |r: &QuotaRequest<'_>| store.try_consume_now(r).unwrap().unwrap().admitted;
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

/// One shard's counters (see the module docs for the layout).
#[derive(Default)]
struct Table {
    /// The offset in `words` of each record, found by the hash of its ids.
    index: HashTable<u32>,
    /// The records, one after another.
    words: Vec<AtomicU64>,
    /// The usage records of past days, by record offset, for the keys that
    /// have any, oldest first.
    history: HashMap<u32, VecDeque<PastDay>>,
}

/// A past day's usage record in 16 bytes rather than [`DayUsage`]'s 24: the
/// day's Julian number, split in two 16-bit halves, above `used` and
/// `remaining` (48 bits each).
#[derive(Clone, Copy)]
struct PastDay([u64; 2]);

impl PastDay {
    fn pack(record: DayUsage) -> Self {
        let day = u64::from(record.day.to_julian_day().cast_unsigned());
        Self([
            (day & 0xFFFF) << REMAINING_BITS | record.used.min(MAX_REMAINING),
            (day >> 16) << REMAINING_BITS | record.remaining.min(MAX_REMAINING),
        ])
    }

    fn day(self) -> Date {
        let [low, high] = self.0.map(|word| word >> REMAINING_BITS);
        Date::from_julian_day(((high << 16 | low) as u32).cast_signed()).unwrap_or(Date::MIN)
    }

    fn unpack(self) -> DayUsage {
        DayUsage {
            day: self.day(),
            used: self.0[0] & MAX_REMAINING,
            remaining: self.0[1] & MAX_REMAINING,
        }
    }
}

/// Word offsets in a record.
const WORD: usize = 0;
const SIG: usize = 1;
const BASE: usize = 2;
const ALLOWANCE: usize = 3;
const DAYS: usize = 4;
const IDS: usize = 5;

const REMAINING_BITS: u32 = 48;
const SECONDS_PER_DAY: i64 = 86_400;

/// The bits of the signature word that hold the quota's signature; the 14
/// above them hold the ids' lengths code.
const SIG_MASK: u64 = (1 << SIG_BITS) - 1;
const SIG_BITS: u32 = 50;
/// Bits of each id's length in the lengths code.
const LEN_BITS: u32 = 7;
/// The longest id whose length the signature word holds; a longer one (of
/// either id) marks the record's lengths code `LONG_IDS` and a word of
/// lengths leads its ids.
const SHORT_ID: usize = (1 << LEN_BITS) - 2;
const LONG_IDS: u64 = (1 << (2 * LEN_BITS)) - 1;

/// A (plan id, key id) pair as a record stores it: the two lengths in the
/// top 14 bits of the signature word (7 bits each) when both are at most
/// [`SHORT_ID`] bytes, or else that code's all-ones value and a word of
/// lengths (4 bytes each, little-endian) before the bytes; then the bytes,
/// zero-padded to whole words.
struct Ids<'a> {
    plan: &'a [u8],
    key: &'a [u8],
}

impl<'a> Ids<'a> {
    fn of(plan_id: &'a str, key_id: &'a str) -> Self {
        Self {
            plan: plan_id.as_bytes(),
            key: key_id.as_bytes(),
        }
    }

    /// Whether the signature word holds both lengths.
    #[inline]
    fn short(&self) -> bool {
        self.plan.len() <= SHORT_ID && self.key.len() <= SHORT_ID
    }

    /// The lengths code, shifted into place in the signature word.
    #[inline]
    fn code(&self) -> u64 {
        let code = if self.short() {
            self.plan.len() as u64 | (self.key.len() as u64) << LEN_BITS
        } else {
            LONG_IDS
        };
        code << SIG_BITS
    }

    /// The ids' words, as stored after the counters: a word of lengths for
    /// long ids, then the bytes.
    #[inline]
    fn words(&self) -> impl Iterator<Item = u64> + '_ {
        let lengths =
            (!self.short()).then(|| u64::from(len32(self.plan)) | u64::from(len32(self.key)) << 32);
        let rest = (self.plan.len() + self.key.len()).div_ceil(8);
        lengths.into_iter().chain((0..rest).map(|i| self.word(i)))
    }

    /// The `i`th word of the ids' bytes (the plan's, then the key's).
    #[inline]
    fn word(&self, i: usize) -> u64 {
        let mut out = [0u8; 8];
        let start = 8 * i;
        let plan = self.plan.get(start..).unwrap_or_default();
        let n = plan.len().min(8);
        out[..n].copy_from_slice(&plan[..n]);
        if n < 8 {
            let key = self
                .key
                .get(start.saturating_sub(self.plan.len())..)
                .unwrap_or_default();
            let m = key.len().min(8 - n);
            out[n..n + m].copy_from_slice(&key[..m]);
        }
        u64::from_le_bytes(out)
    }

    fn word_count(&self) -> usize {
        usize::from(!self.short()) + (self.plan.len() + self.key.len()).div_ceil(8)
    }

    fn hash(&self, hasher: &foldhash::fast::RandomState) -> u64 {
        hasher.hash_one((self.plan, self.key))
    }
}

fn len32(bytes: &[u8]) -> u32 {
    // An id of 4 GiB is not a request's: its length saturates.
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// The lengths of the ids of the record at `at`, and the offset of their
/// first byte's word.
fn lengths_at(words: &[AtomicU64], at: usize) -> (usize, usize, usize) {
    let code = load(words, at + SIG) >> SIG_BITS;
    if code == LONG_IDS {
        let lengths = load(words, at + IDS);
        let plan_len = (lengths & u64::from(u32::MAX)) as usize;
        let key_len = (lengths >> 32) as usize;
        (plan_len, key_len, at + IDS + 1)
    } else {
        let mask = (1 << LEN_BITS) - 1;
        (
            (code & mask) as usize,
            (code >> LEN_BITS) as usize,
            at + IDS,
        )
    }
}

/// The ids of the record at `at`, decoded.
fn ids_at(words: &[AtomicU64], at: usize) -> (Vec<u8>, Vec<u8>) {
    let (plan_len, key_len, start) = lengths_at(words, at);
    let count = (plan_len + key_len).div_ceil(8);
    let bytes: Vec<u8> = words
        .get(start..start + count)
        .unwrap_or_default()
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    let plan = bytes.get(..plan_len).unwrap_or_default().to_vec();
    let key = bytes
        .get(plan_len..plan_len + key_len)
        .unwrap_or_default()
        .to_vec();
    (plan, key)
}

/// The words of the record at `at`.
fn record_len(words: &[AtomicU64], at: usize) -> usize {
    let (plan_len, key_len, start) = lengths_at(words, at);
    start - at + (plan_len + key_len).div_ceil(8)
}

#[inline]
fn load(words: &[AtomicU64], i: usize) -> u64 {
    words.get(i).map_or(0, |w| w.load(Ordering::Acquire))
}

fn store(words: &[AtomicU64], i: usize, value: u64) {
    if let Some(w) = words.get(i) {
        w.store(value, Ordering::Release);
    }
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

impl Table {
    /// The offset of the record of these ids.
    #[inline]
    fn find(&self, hash: u64, ids: &Ids<'_>) -> Option<usize> {
        let at = *self.index.find(hash, |&at| self.holds(at as usize, ids))?;
        Some(at as usize)
    }

    #[inline]
    fn holds(&self, at: usize, ids: &Ids<'_>) -> bool {
        // The lengths code first: ids whose bytes run alike ("ab", "c" and
        // "a", "bc") differ there.
        if load(&self.words, at + SIG) & !SIG_MASK != ids.code() {
            return false;
        }
        let start = at + IDS;
        self.words
            .get(start..start + ids.word_count())
            .is_some_and(|stored| {
                stored
                    .iter()
                    .zip(ids.words())
                    .all(|(word, expected)| word.load(Ordering::Relaxed) == expected)
            })
    }

    /// The record of these ids, added if new (as the request's key would be
    /// first seen); `None` when the shard's array would pass 2^32 words
    /// (32 GiB).
    fn find_or_insert(
        &mut self,
        hash: u64,
        ids: &Ids<'_>,
        request: &QuotaRequest<'_>,
        hasher: &foldhash::fast::RandomState,
    ) -> Option<usize> {
        if let Some(at) = self.find(hash, ids) {
            return Some(at);
        }
        let at = self.words.len();
        let record = IDS + ids.word_count();
        let offset = u32::try_from(at).ok()?;
        u32::try_from(at + record).ok()?;
        if self.words.capacity() - at < record {
            // Grow by a quarter, not by doubling: at most a quarter of the
            // records is headroom.
            self.words.reserve_exact(record.max(at / 4));
        }
        let allowance = request.allowance(request.is_initial(request.window.start()));
        let first = day_of_start(request.window.start());
        let first_bits = u64::from(first.cast_unsigned());
        let day = request.day.to_julian_day();
        self.words.extend(
            [
                pack(tag_of(request.day), allowance),
                sig_of(&request.quota) | ids.code(),
                (first_bits & 0xFFFF) << REMAINING_BITS | allowance,
                (first_bits >> 16) << REMAINING_BITS | allowance,
                days_word(first, day),
            ]
            .into_iter()
            .chain(ids.words())
            .map(AtomicU64::new),
        );
        let Table { index, words, .. } = self;
        index.insert_unique(hash, offset, |&at| rehash(words, at as usize, hasher));
        Some(at)
    }

    fn first_day(&self, at: usize) -> i32 {
        let low = load(&self.words, at + BASE) >> REMAINING_BITS;
        let high = load(&self.words, at + ALLOWANCE) >> REMAINING_BITS;
        ((high << 16 | low) as u32).cast_signed()
    }

    fn period_day(&self, at: usize) -> i32 {
        ((load(&self.words, at + DAYS) >> 32) as u32).cast_signed()
    }

    fn day(&self, at: usize) -> Date {
        let julian = (load(&self.words, at + DAYS) as u32).cast_signed();
        Date::from_julian_day(julian).unwrap_or(Date::MIN)
    }

    fn day_base(&self, at: usize) -> u64 {
        load(&self.words, at + BASE) & MAX_REMAINING
    }

    fn allowance(&self, at: usize) -> u64 {
        load(&self.words, at + ALLOWANCE) & MAX_REMAINING
    }

    /// Sets the low 48 bits of a word, keeping its top 16.
    fn set_low(&self, i: usize, value: u64) {
        let word = load(&self.words, i);
        store(
            &self.words,
            i,
            (word & !MAX_REMAINING) | value.min(MAX_REMAINING),
        );
    }

    /// Sets the remaining count to `f(remaining)`, keeping the count of
    /// today's use. Returns the new remaining count.
    fn replace_remaining(&self, at: usize, f: impl Fn(u64) -> u64) -> u64 {
        let word = load(&self.words, at + WORD);
        let old = remaining_of(word);
        let new = f(old).min(MAX_REMAINING);
        store(&self.words, at + WORD, pack(word >> REMAINING_BITS, new));
        let base = self.day_base(at).saturating_sub(old).saturating_add(new);
        self.set_low(at + BASE, base);
        new
    }

    /// Moves the record to the request's day, period and plan.
    ///
    /// Time only moves forward here: a request dated before the day being
    /// counted (a clock stepped back, or a request that read the clock just
    /// before midnight and arrived just after another) counts in the current
    /// day.
    fn advance(&mut self, at: usize, request: &QuotaRequest<'_>, retention_days: u32) {
        let sig = sig_of(&request.quota);
        let sig_word = load(&self.words, at + SIG);
        let old_sig = sig_word & SIG_MASK;
        let code = sig_word & !SIG_MASK;
        let kind_changed = (old_sig & 3) != (sig & 3);
        let period = day_of_start(request.window.start());
        let new_period = kind_changed || period > self.period_day(at);
        let day = self.day(at);
        let new_day = new_period || request.day > day;
        if new_day {
            let first =
                (i64::from(self.first_day(at)) - i64::from(UNIX_EPOCH_JULIAN)) * SECONDS_PER_DAY;
            let allowance = request.allowance(request.is_initial(first));
            let old = remaining_of(load(&self.words, at + WORD));
            let new = if new_period { allowance } else { old };
            store(&self.words, at + WORD, pack(tag_of(request.day), new));
            let record = DayUsage {
                day,
                used: self.day_base(at).saturating_sub(old),
                remaining: old,
            };
            let oldest = oldest_kept(request.day, retention_days);
            let offset = u32::try_from(at).unwrap_or(u32::MAX);
            let history = self.history.entry(offset).or_default();
            if history.len() == history.capacity() {
                // One day at a time: a key's records take what they need,
                // not a doubling (a day's move is rare next to its requests).
                history.reserve_exact(1);
            }
            history.push_back(PastDay::pack(record));
            while history.front().is_some_and(|r| r.day() < oldest) {
                history.pop_front();
            }
            if history.is_empty() {
                self.history.remove(&offset);
            }
            let kept_period = if new_period {
                self.set_low(at + ALLOWANCE, allowance);
                period
            } else {
                self.period_day(at)
            };
            store(
                &self.words,
                at + DAYS,
                days_word(kept_period, request.day.to_julian_day()),
            );
            self.set_low(at + BASE, new);
            store(&self.words, at + SIG, sig | code);
        } else if sig != old_sig {
            // Same period, new limit: what remains moves by the difference.
            let (old_limit, new_limit) = (old_sig >> 2, sig >> 2);
            let shift = |n: u64| {
                if new_limit >= old_limit {
                    n.saturating_add(new_limit - old_limit)
                } else {
                    n.saturating_sub(old_limit - new_limit)
                }
            };
            self.replace_remaining(at, shift);
            self.set_low(at + ALLOWANCE, shift(self.allowance(at)));
            store(&self.words, at + SIG, sig | code);
        }
    }

    fn update(
        &mut self,
        at: usize,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
        retention_days: u32,
    ) -> DayUsage {
        self.advance(at, request, retention_days);
        let allowance = self.allowance(at);
        let remaining = match update {
            UsageUpdate::Extend(more) => self.replace_remaining(at, |n| n.saturating_add(more)),
            UsageUpdate::SetRemaining(n) => self.replace_remaining(at, |_| n),
            UsageUpdate::Reset => self.replace_remaining(at, |_| allowance),
        };
        DayUsage {
            day: self.day(at),
            used: self.day_base(at).saturating_sub(remaining),
            remaining,
        }
    }

    fn usage(&self, at: usize, from: Date, to: Date) -> Vec<DayUsage> {
        let remaining = remaining_of(load(&self.words, at + WORD));
        let live = DayUsage {
            day: self.day(at),
            used: self.day_base(at).saturating_sub(remaining),
            remaining,
        };
        let offset = u32::try_from(at).unwrap_or(u32::MAX);
        self.history
            .get(&offset)
            .into_iter()
            .flatten()
            .map(|r| r.unpack())
            .chain(std::iter::once(live))
            .filter(|r| from <= r.day && r.day <= to)
            .collect()
    }

    /// See [`InMemoryQuotaStore::prune`].
    fn prune(&mut self, today: Date, oldest: Date, hasher: &foldhash::fast::RandomState) {
        self.history.retain(|_, records| {
            while records.front().is_some_and(|r| r.day() < oldest) {
                records.pop_front();
            }
            records.shrink_to_fit();
            !records.is_empty()
        });
        // The longest period, a month, is at most 31 days.
        let ended = today.to_julian_day().saturating_sub(31);
        let live: Vec<usize> = self
            .index
            .iter()
            .map(|&at| at as usize)
            .filter(|&at| self.day(at) >= oldest || self.period_day(at) > ended)
            .collect();
        if live.len() == self.index.len() {
            return;
        }
        let size = live.iter().map(|&at| record_len(&self.words, at)).sum();
        let mut words: Vec<AtomicU64> = Vec::with_capacity(size);
        let mut index = HashTable::with_capacity(live.len());
        let mut history = HashMap::with_capacity(self.history.len());
        for at in live {
            let Some(record) = self.words.get(at..at + record_len(&self.words, at)) else {
                continue;
            };
            let Ok(offset) = u32::try_from(words.len()) else {
                break;
            };
            words.extend(
                record
                    .iter()
                    .map(|w| AtomicU64::new(w.load(Ordering::Acquire))),
            );
            if let Some(records) = u32::try_from(at)
                .ok()
                .and_then(|old| self.history.remove(&old))
            {
                history.insert(offset, records);
            }
            index.insert_unique(rehash(&words, offset as usize, hasher), offset, |&at| {
                rehash(&words, at as usize, hasher)
            });
        }
        self.index = index;
        self.words = words;
        self.history = history;
    }
}

/// The hash of the ids of the record at `at`, as [`Ids::hash`] computes it.
fn rehash(words: &[AtomicU64], at: usize, hasher: &foldhash::fast::RandomState) -> u64 {
    let (plan, key) = ids_at(words, at);
    hasher.hash_one((plan.as_slice(), key.as_slice()))
}

/// The day on which a period starting at `start` (seconds) begins.
fn day_of_start(start: i64) -> i32 {
    let day = start.div_euclid(SECONDS_PER_DAY) + i64::from(UNIX_EPOCH_JULIAN);
    i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX })
}

/// The Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN: i32 = 2_440_588;

fn days_word(period_day: i32, day: i32) -> u64 {
    u64::from(period_day.cast_unsigned()) << 32 | u64::from(day.cast_unsigned())
}

#[inline]
fn read(lock: &RwLock<Table>) -> RwLockReadGuard<'_, Table> {
    // A panic while holding the lock leaves every word whole (each change is
    // one store). Keep going.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Table>) -> RwLockWriteGuard<'_, Table> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl QuotaStore for InMemoryQuotaStore {
    type Error = Infallible;
    type ConsumeFuture = Ready<Result<Decision, Infallible>>;

    #[inline]
    fn try_consume_now(&self, request: &QuotaRequest<'_>) -> Option<Result<Decision, Infallible>> {
        Some(Ok(self.consume_sync(request)))
    }

    fn consume(&self, request: &QuotaRequest<'_>) -> Self::ConsumeFuture {
        ready(Ok(self.consume_sync(request)))
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

fn tag_of(day: Date) -> u64 {
    // The low 16 bits of the Julian day: a day's tag recurs every 179 years.
    u64::from(day.to_julian_day().cast_unsigned() & 0xFFFF)
}

fn pack(tag: u64, remaining: u64) -> u64 {
    (tag << REMAINING_BITS) | remaining.min(MAX_REMAINING)
}

fn remaining_of(word: u64) -> u64 {
    word & MAX_REMAINING
}

/// The quota's limit and period kind in one word, to notice a plan change.
fn sig_of(quota: &QuotaSettings) -> u64 {
    let kind = match quota.period() {
        QuotaPeriod::Day => 0,
        QuotaPeriod::Week => 1,
        QuotaPeriod::Month => 2,
    };
    (quota.limit().min(MAX_REMAINING) << 2) | kind
}

fn oldest_kept(today: Date, retention_days: u32) -> Date {
    today
        .checked_sub(Duration::days(i64::from(retention_days)))
        .unwrap_or(Date::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use time::macros::date;

    /// The usage records of key `k` in plan `plan`.
    fn records(store: &InMemoryQuotaStore, from: Date, to: Date) -> Vec<DayUsage> {
        let mut future = std::pin::pin!(store.usage("plan", "k", from, to));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(Ok(records)) => records,
            std::task::Poll::Ready(Err(never)) => match never {},
            std::task::Poll::Pending => panic!("the in-memory store is ready at once"),
        }
    }

    fn block_on<T>(future: impl Future<Output = Result<T, Infallible>>) -> T {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(Ok(value)) => value,
            std::task::Poll::Ready(Err(never)) => match never {},
            std::task::Poll::Pending => panic!("the in-memory store is ready at once"),
        }
    }

    fn request<'a>(key: &'a str, quota: QuotaSettings, day: Date) -> QuotaRequest<'a> {
        QuotaRequest {
            plan_id: "plan",
            key_id: key,
            quota,
            window: Calendar::new().window_of_date(quota.period(), day),
            day,
            initial_window: None,
        }
    }

    #[test]
    fn a_new_day_files_a_record_and_keeps_the_period() {
        let store = InMemoryQuotaStore::new();
        let quota = QuotaSettings::new(5, QuotaPeriod::Week).unwrap();
        let monday = date!(2026 - 11 - 23);
        let tuesday = date!(2026 - 11 - 24);
        for _ in 0..2 {
            assert!(store.consume_sync(&request("k", quota, monday)).admitted);
        }
        let d = store.consume_sync(&request("k", quota, tuesday));
        assert_eq!(
            d,
            Decision {
                admitted: true,
                remaining: 2
            }
        );
        let records = records(&store, monday, tuesday);
        assert_eq!(
            records,
            vec![
                DayUsage {
                    day: monday,
                    used: 2,
                    remaining: 3
                },
                DayUsage {
                    day: tuesday,
                    used: 1,
                    remaining: 2
                },
            ]
        );
    }

    #[test]
    fn a_raised_limit_adds_to_what_remains() {
        let store = InMemoryQuotaStore::new();
        let day = date!(2026 - 11 - 23);
        let small = QuotaSettings::new(2, QuotaPeriod::Day).unwrap();
        let big = QuotaSettings::new(4, QuotaPeriod::Day).unwrap();
        assert!(store.consume_sync(&request("k", small, day)).admitted);
        assert!(store.consume_sync(&request("k", small, day)).admitted);
        assert!(!store.consume_sync(&request("k", small, day)).admitted);
        assert_eq!(
            store.consume_sync(&request("k", big, day)),
            Decision {
                admitted: true,
                remaining: 1
            }
        );
    }

    #[test]
    fn records_past_the_retention_are_dropped() {
        let store = InMemoryQuotaStore::with_retention_days(2);
        let quota = QuotaSettings::new(5, QuotaPeriod::Day).unwrap();
        let first = date!(2026 - 11 - 01);
        for offset in 0..6 {
            let day = first + Duration::days(offset);
            store.consume_sync(&request("k", quota, day));
        }
        let days: Vec<Date> = records(&store, Date::MIN, Date::MAX)
            .into_iter()
            .map(|r| r.day)
            .collect();
        assert_eq!(
            days,
            vec![
                date!(2026 - 11 - 04),
                date!(2026 - 11 - 05),
                date!(2026 - 11 - 06)
            ]
        );
    }

    #[test]
    fn ids_that_concatenate_alike_are_distinct_keys() {
        let store = InMemoryQuotaStore::new();
        let quota = QuotaSettings::new(1, QuotaPeriod::Day).unwrap();
        let day = date!(2026 - 11 - 23);
        let pairs = [("ab", "c"), ("a", "bc"), ("abc", ""), ("", "abc")];
        for (plan, key) in pairs {
            let mut r = request(key, quota, day);
            r.plan_id = plan;
            assert!(store.consume_sync(&r).admitted, "{plan:?}/{key:?}");
        }
        assert_eq!(store.tracked_keys(), pairs.len());
    }

    #[test]
    fn ids_of_every_length_keep_their_own_counters_through_prune() {
        // Lengths up to 126 bytes ride in the signature word; a longer id
        // (of either kind) puts a word of lengths before the bytes. Around
        // the boundary, and with ids whose bytes run alike, each pair keeps
        // its own counter, is found again after a prune rebuilds the shard,
        // and is listed with its own id.
        let store = InMemoryQuotaStore::with_retention_days(0);
        let quota = QuotaSettings::new(3, QuotaPeriod::Month).unwrap();
        let day = date!(2026 - 03 - 10);
        let mut pairs: Vec<(String, String)> = Vec::new();
        for len in [0, 1, 125, 126, 127, 128, 300] {
            pairs.push(("plan".into(), "k".repeat(len)));
            pairs.push(("p".repeat(len), "key".into()));
        }
        pairs.push(("p".repeat(126), "k".repeat(127)));
        pairs.push(("p".repeat(127), "k".repeat(126)));
        pairs.sort();
        pairs.dedup();
        let consume = |store: &InMemoryQuotaStore, plan: &str, key: &str, day| {
            let mut r = request(key, quota, day);
            r.plan_id = plan;
            store.consume_sync(&r)
        };
        for (i, (plan, key)) in pairs.iter().enumerate() {
            // Pair i takes one request, or two when i is odd.
            for _ in 0..=(i % 2) {
                assert!(consume(&store, plan, key, day).admitted, "{i}");
            }
        }
        assert_eq!(store.tracked_keys(), pairs.len());
        // Pairs last used in February are dropped by a prune on March 31
        // (their period has ended, and with a retention of 0 days their last
        // day is past it); the others' period, March, is still running. The
        // dropped pairs land in every shard, so every shard is rebuilt.
        for i in 0..1_000 {
            let key = format!("{i:0>200}");
            assert!(consume(&store, "dropped", &key, date!(2026 - 02 - 10)).admitted);
        }
        store.prune(date!(2026 - 03 - 31));
        assert_eq!(store.tracked_keys(), pairs.len());
        for (i, (plan, key)) in pairs.iter().enumerate() {
            let d = consume(&store, plan, key, day);
            let expected = if i % 2 == 0 { 1 } else { 0 };
            assert_eq!(d.remaining, expected, "{i}: {} / {}", plan.len(), key.len());
        }
        let mut listed = block_on(store.keys("plan"));
        listed.sort_unstable();
        let mut expected: Vec<String> = pairs
            .iter()
            .filter(|(plan, _)| plan == "plan")
            .map(|(_, key)| key.clone())
            .collect();
        expected.sort_unstable();
        assert_eq!(listed, expected);
    }

    #[test]
    fn prune_drops_only_counters_that_carry_nothing_and_keeps_finding_the_rest() {
        let store = InMemoryQuotaStore::with_retention_days(10);
        let quota = QuotaSettings::new(5, QuotaPeriod::Month).unwrap();
        let old_day = date!(2026 - 01 - 05);
        let today = date!(2026 - 03 - 20);
        let keys: Vec<String> = (0..500).map(|i| format!("key-{i}")).collect();
        // Even keys were last used in January, odd ones today (twice).
        for (i, key) in keys.iter().enumerate() {
            let day = if i % 2 == 0 { old_day } else { today };
            for _ in 0..=(i % 2) {
                assert!(store.consume_sync(&request(key, quota, day)).admitted);
            }
        }
        let bytes_before = store.table_bytes();
        store.prune(today);
        assert_eq!(store.tracked_keys(), 250);
        assert!(store.table_bytes() < bytes_before);
        for (i, key) in keys.iter().enumerate() {
            let d = store.consume_sync(&request(key, quota, today));
            // A dropped key starts afresh; a kept one goes on from 3 left.
            let expected = if i % 2 == 0 { 4 } else { 2 };
            assert_eq!(d.remaining, expected, "{key}");
        }
        // A counter in a running period is never dropped, however old its
        // last day.
        let store = InMemoryQuotaStore::with_retention_days(0);
        assert!(
            store
                .consume_sync(&request("k", quota, date!(2026 - 03 - 01)))
                .admitted
        );
        store.prune(date!(2026 - 03 - 31));
        assert_eq!(store.tracked_keys(), 1);
        store.prune(date!(2026 - 04 - 01));
        assert_eq!(store.tracked_keys(), 0);
    }

    #[test]
    fn an_earlier_day_counts_in_the_current_one() {
        let store = InMemoryQuotaStore::new();
        let quota = QuotaSettings::new(3, QuotaPeriod::Day).unwrap();
        store.consume_sync(&request("k", quota, date!(2026 - 11 - 24)));
        let late = store.consume_sync(&request("k", quota, date!(2026 - 11 - 23)));
        assert_eq!(
            late,
            Decision {
                admitted: true,
                remaining: 1
            }
        );
    }
}
