//! One shard's table of records: the record layout (the words of a record,
//! the ids, the packed remaining count and day tag), the index that finds a
//! record, and past days' usage. [`InMemoryQuotaStore`](super::InMemoryQuotaStore)
//! keeps one per shard behind a lock.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use time::{Date, Duration};

use crate::store::{DayUsage, MAX_REMAINING, QuotaRequest, UsageUpdate};

/// One shard's counters (see the module docs for the layout).
#[derive(Default)]
pub(super) struct Table {
    /// The offset in `words` of each record, found by the hash of its ids.
    pub(super) index: HashTable<u32>,
    /// The records, one after another.
    pub(super) words: Vec<AtomicU64>,
    /// The usage records of past days, by record offset, for the keys that
    /// have any, oldest first.
    pub(super) history: HashMap<u32, VecDeque<PastDay>>,
}

/// A past day's usage record in 16 bytes rather than [`DayUsage`]'s 24: the
/// day's Julian number, split in two 16-bit halves, above `used` and
/// `remaining` (48 bits each).
#[derive(Clone, Copy)]
pub(super) struct PastDay(pub(super) [u64; 2]);

impl PastDay {
    pub(super) fn pack(record: DayUsage) -> Self {
        let day = u64::from(record.day.to_julian_day().cast_unsigned());
        Self([
            (day & 0xFFFF) << REMAINING_BITS | record.used.min(MAX_REMAINING),
            (day >> 16) << REMAINING_BITS | record.remaining.min(MAX_REMAINING),
        ])
    }

    pub(super) fn day(self) -> Date {
        let [low, high] = self.0.map(|word| word >> REMAINING_BITS);
        Date::from_julian_day(((high << 16 | low) as u32).cast_signed()).unwrap_or(Date::MIN)
    }

    pub(super) fn unpack(self) -> DayUsage {
        DayUsage {
            day: self.day(),
            used: self.0[0] & MAX_REMAINING,
            remaining: self.0[1] & MAX_REMAINING,
        }
    }
}

/// Word offsets in a record.
pub(super) const WORD: usize = 0;
pub(super) const SIG: usize = 1;
pub(super) const BASE: usize = 2;
pub(super) const ALLOWANCE: usize = 3;
pub(super) const DAYS: usize = 4;
pub(super) const IDS: usize = 5;

pub(super) const REMAINING_BITS: u32 = 48;
pub(super) const SECONDS_PER_DAY: i64 = 86_400;

/// The bits of the signature word that hold the quota's signature; the 14
/// above them hold the ids' lengths code.
pub(super) const SIG_MASK: u64 = (1 << SIG_BITS) - 1;
pub(super) const SIG_BITS: u32 = 50;
/// Bits of each id's length in the lengths code.
pub(super) const LEN_BITS: u32 = 7;
/// The longest id whose length the signature word holds; a longer one (of
/// either id) marks the record's lengths code `LONG_IDS` and a word of
/// lengths leads its ids.
pub(super) const SHORT_ID: usize = (1 << LEN_BITS) - 2;
pub(super) const LONG_IDS: u64 = (1 << (2 * LEN_BITS)) - 1;

/// A (plan id, key id) pair as a record stores it: the two lengths in the
/// top 14 bits of the signature word (7 bits each) when both are at most
/// [`SHORT_ID`] bytes, or else that code's all-ones value and a word of
/// lengths (4 bytes each, little-endian) before the bytes; then the bytes,
/// zero-padded to whole words.
pub(super) struct Ids<'a> {
    pub(super) plan: &'a [u8],
    pub(super) key: &'a [u8],
}

impl<'a> Ids<'a> {
    pub(super) fn of(plan_id: &'a str, key_id: &'a str) -> Self {
        Self {
            plan: plan_id.as_bytes(),
            key: key_id.as_bytes(),
        }
    }

    /// Whether the signature word holds both lengths.
    #[inline]
    pub(super) fn short(&self) -> bool {
        self.plan.len() <= SHORT_ID && self.key.len() <= SHORT_ID
    }

    /// The lengths code, shifted into place in the signature word.
    #[inline]
    pub(super) fn code(&self) -> u64 {
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
    pub(super) fn words(&self) -> impl Iterator<Item = u64> + '_ {
        let lengths =
            (!self.short()).then(|| u64::from(len32(self.plan)) | u64::from(len32(self.key)) << 32);
        let rest = (self.plan.len() + self.key.len()).div_ceil(8);
        lengths.into_iter().chain((0..rest).map(|i| self.word(i)))
    }

    /// The `i`th word of the ids' bytes (the plan's, then the key's).
    #[inline]
    pub(super) fn word(&self, i: usize) -> u64 {
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

    pub(super) fn word_count(&self) -> usize {
        usize::from(!self.short()) + (self.plan.len() + self.key.len()).div_ceil(8)
    }

    pub(super) fn hash(&self, hasher: &foldhash::fast::RandomState) -> u64 {
        hasher.hash_one((self.plan, self.key))
    }
}

pub(super) fn len32(bytes: &[u8]) -> u32 {
    // An id of 4 GiB is not a request's: its length saturates.
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// The lengths of the ids of the record at `at`, and the offset of their
/// first byte's word.
pub(super) fn lengths_at(words: &[AtomicU64], at: usize) -> (usize, usize, usize) {
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
pub(super) fn ids_at(words: &[AtomicU64], at: usize) -> (Vec<u8>, Vec<u8>) {
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
pub(super) fn record_len(words: &[AtomicU64], at: usize) -> usize {
    let (plan_len, key_len, start) = lengths_at(words, at);
    start - at + (plan_len + key_len).div_ceil(8)
}

#[inline]
pub(super) fn load(words: &[AtomicU64], i: usize) -> u64 {
    words.get(i).map_or(0, |w| w.load(Ordering::Acquire))
}

pub(super) fn store(words: &[AtomicU64], i: usize, value: u64) {
    if let Some(w) = words.get(i) {
        w.store(value, Ordering::Release);
    }
}

impl Table {
    /// The offset of the record of these ids.
    #[inline]
    pub(super) fn find(&self, hash: u64, ids: &Ids<'_>) -> Option<usize> {
        let at = *self.index.find(hash, |&at| self.holds(at as usize, ids))?;
        Some(at as usize)
    }

    #[inline]
    pub(super) fn holds(&self, at: usize, ids: &Ids<'_>) -> bool {
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
    pub(super) fn find_or_insert(
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

    pub(super) fn first_day(&self, at: usize) -> i32 {
        let low = load(&self.words, at + BASE) >> REMAINING_BITS;
        let high = load(&self.words, at + ALLOWANCE) >> REMAINING_BITS;
        ((high << 16 | low) as u32).cast_signed()
    }

    pub(super) fn period_day(&self, at: usize) -> i32 {
        ((load(&self.words, at + DAYS) >> 32) as u32).cast_signed()
    }

    pub(super) fn day(&self, at: usize) -> Date {
        let julian = (load(&self.words, at + DAYS) as u32).cast_signed();
        Date::from_julian_day(julian).unwrap_or(Date::MIN)
    }

    pub(super) fn day_base(&self, at: usize) -> u64 {
        load(&self.words, at + BASE) & MAX_REMAINING
    }

    pub(super) fn allowance(&self, at: usize) -> u64 {
        load(&self.words, at + ALLOWANCE) & MAX_REMAINING
    }

    /// Sets the low 48 bits of a word, keeping its top 16.
    pub(super) fn set_low(&self, i: usize, value: u64) {
        let word = load(&self.words, i);
        store(
            &self.words,
            i,
            (word & !MAX_REMAINING) | value.min(MAX_REMAINING),
        );
    }

    /// Sets the remaining count to `f(remaining)`, keeping the count of
    /// today's use. Returns the new remaining count.
    pub(super) fn replace_remaining(&self, at: usize, f: impl Fn(u64) -> u64) -> u64 {
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
    pub(super) fn advance(&mut self, at: usize, request: &QuotaRequest<'_>, retention_days: u32) {
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

    pub(super) fn update(
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

    pub(super) fn usage(&self, at: usize, from: Date, to: Date) -> Vec<DayUsage> {
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
    pub(super) fn prune(
        &mut self,
        today: Date,
        oldest: Date,
        hasher: &foldhash::fast::RandomState,
    ) {
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
pub(super) fn rehash(words: &[AtomicU64], at: usize, hasher: &foldhash::fast::RandomState) -> u64 {
    let (plan, key) = ids_at(words, at);
    hasher.hash_one((plan.as_slice(), key.as_slice()))
}

/// The day on which a period starting at `start` (seconds) begins.
pub(super) fn day_of_start(start: i64) -> i32 {
    let day = start.div_euclid(SECONDS_PER_DAY) + i64::from(UNIX_EPOCH_JULIAN);
    i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX })
}

/// The Julian day of 1970-01-01.
pub(super) const UNIX_EPOCH_JULIAN: i32 = 2_440_588;

pub(super) fn days_word(period_day: i32, day: i32) -> u64 {
    u64::from(period_day.cast_unsigned()) << 32 | u64::from(day.cast_unsigned())
}

#[inline]
pub(super) fn read(lock: &RwLock<Table>) -> RwLockReadGuard<'_, Table> {
    // A panic while holding the lock leaves every word whole (each change is
    // one store). Keep going.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write(lock: &RwLock<Table>) -> RwLockWriteGuard<'_, Table> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn tag_of(day: Date) -> u64 {
    // The low 16 bits of the Julian day: a day's tag recurs every 179 years.
    u64::from(day.to_julian_day().cast_unsigned() & 0xFFFF)
}

pub(super) fn pack(tag: u64, remaining: u64) -> u64 {
    (tag << REMAINING_BITS) | remaining.min(MAX_REMAINING)
}

pub(super) fn remaining_of(word: u64) -> u64 {
    word & MAX_REMAINING
}

/// The quota's limit and period kind in one word, to notice a plan change.
pub(super) fn sig_of(quota: &QuotaSettings) -> u64 {
    let kind = match quota.period() {
        QuotaPeriod::Day => 0,
        QuotaPeriod::Week => 1,
        QuotaPeriod::Month => 2,
    };
    (quota.limit().min(MAX_REMAINING) << 2) | kind
}

pub(super) fn oldest_kept(today: Date, retention_days: u32) -> Date {
    today
        .checked_sub(Duration::days(i64::from(retention_days)))
        .unwrap_or(Date::MIN)
}
