//! The in-memory store: exact under concurrency, lock-free on the hot path.
//!
//! A sharded map ([`dashmap`], rather than one `RwLock<HashMap>` that every
//! request would contend on) holds one entry per usage plan and API key,
//! found by the borrowed `(plan id, key id)` pair without allocating, hashed
//! with `foldhash` (hashbrown's default: randomly seeded, and several times
//! faster than SipHash on short ids; the ids are those of keys the API-key
//! layer accepted, not arbitrary client input). The entry's count of what remains in the period lives in
//! one `AtomicU64`, packed with a 16-bit tag of the day it belongs to:
//!
//! ```text
//! | day tag (16 bits) | remaining (48 bits) |
//! ```
//!
//! A request whose day matches the tag takes one with a compare-and-swap, as
//! governor does with its GCRA state: no lock, and never below zero, so never
//! more than the allowance is admitted and a refused request changes nothing.
//! The first request of a new day or period (a tag mismatch) takes the
//! entry's mutex, files the old day's `[used, remaining]` as a usage record,
//! and swaps in the new tag, again by compare-and-swap, so that no request in
//! flight under the old tag is lost.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use time::{Date, Duration};

use super::{
    DEFAULT_RETENTION_DAYS, DayUsage, Decision, MAX_REMAINING, QuotaRequest, QuotaStore,
    UsageUpdate,
};
use crate::calendar::Window;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};

/// The in-memory store cannot fail: its error type has no values.
pub type MemoryStoreError = Infallible;

/// The default store: counters and usage records in this process's memory.
///
/// Clones share the same counters. It is exact under any concurrency (see
/// the [module docs](crate::store)), and it needs nothing running; state is
/// lost when the process exits, and each process counts on its own: use the
/// Redis store to share quotas between instances.
///
/// ```
/// use portcullis_quota::store::{MemoryStore, QuotaRequest, QuotaStore};
/// use portcullis_quota::Calendar;
/// use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
/// use time::macros::datetime;
///
/// let store = MemoryStore::new();
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
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    keys: DashMap<PlanKey, KeyEntry, foldhash::fast::RandomState>,
    retention_days: u32,
}

/// A (plan id, key id) pair, looked up without allocating through the
/// borrowed form [`PairRef`].
struct PlanKey {
    plan: Arc<str>,
    key: Arc<str>,
}

/// A (plan id, key id) pair, owned or borrowed: the map's borrowed key type.
trait PairRef {
    fn pair(&self) -> (&str, &str);
}

impl PairRef for PlanKey {
    fn pair(&self) -> (&str, &str) {
        (&self.plan, &self.key)
    }
}

impl PairRef for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl Hash for dyn PairRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (plan, key) = self.pair();
        plan.hash(state);
        key.hash(state);
    }
}

impl PartialEq for dyn PairRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn PairRef + '_ {}

impl Hash for PlanKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn PairRef).hash(state);
    }
}

impl PartialEq for PlanKey {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for PlanKey {}

impl<'a> Borrow<dyn PairRef + 'a> for PlanKey {
    fn borrow(&self) -> &(dyn PairRef + 'a) {
        self
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tracked_keys", &self.tracked_keys())
            .field("retention_days", &self.inner.retention_days)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
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
                keys: DashMap::with_hasher(foldhash::fast::RandomState::default()),
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
        self.inner.keys.len()
    }

    /// Drops every usage record older than the retention before `today`.
    /// Records are also dropped as each key moves to a new day; this sweeps
    /// keys that have gone quiet.
    pub fn prune(&self, today: Date) {
        let oldest = oldest_kept(today, self.inner.retention_days);
        for entry in &self.inner.keys {
            let mut slow = entry.lock();
            slow.history.retain(|record| record.day >= oldest);
        }
    }

    /// Calls `f` with the entry of the request's key, creating it first if
    /// the key is new.
    #[inline]
    fn with_entry<R>(&self, request: &QuotaRequest<'_>, f: impl FnOnce(&KeyEntry) -> R) -> R {
        let pair = (request.plan_id, request.key_id);
        if let Some(entry) = self.inner.keys.get(&pair as &dyn PairRef) {
            return f(&entry);
        }
        self.with_new_entry(request, f)
    }

    #[cold]
    fn with_new_entry<R>(&self, request: &QuotaRequest<'_>, f: impl FnOnce(&KeyEntry) -> R) -> R {
        let id = PlanKey {
            plan: Arc::from(request.plan_id),
            key: Arc::from(request.key_id),
        };
        let entry = self
            .inner
            .keys
            .entry(id)
            .or_insert_with(|| KeyEntry::new(request))
            .downgrade();
        f(&entry)
    }

    fn find<R>(&self, plan_id: &str, key_id: &str, f: impl FnOnce(&KeyEntry) -> R) -> Option<R> {
        let pair = (plan_id, key_id);
        let entry = self.inner.keys.get(&pair as &dyn PairRef)?;
        Some(f(&entry))
    }

    /// Counts one request, synchronously.
    fn consume_sync(&self, request: &QuotaRequest<'_>) -> Decision {
        let retention = self.inner.retention_days;
        self.with_entry(request, |entry| {
            entry
                .consume_fast(request)
                .unwrap_or_else(|| entry.consume_slow(request, retention))
        })
    }
}

impl QuotaStore for MemoryStore {
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
        let retention = self.inner.retention_days;
        let usage = self.with_entry(request, |entry| entry.update(request, update, retention));
        ready(Ok(usage))
    }

    fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, Infallible>> + Send {
        let records = self
            .find(plan_id, key_id, |entry| entry.usage(from, to))
            .unwrap_or_default();
        ready(Ok(records))
    }

    fn keys(&self, plan_id: &str) -> impl Future<Output = Result<Vec<String>, Infallible>> + Send {
        let mut keys: Vec<String> = self
            .inner
            .keys
            .iter()
            .filter(|e| &*e.key().plan == plan_id)
            .map(|e| e.key().key.to_string())
            .collect();
        keys.sort_unstable();
        ready(Ok(keys))
    }
}

const REMAINING_BITS: u32 = 48;

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

/// One key's counters in one plan.
struct KeyEntry {
    /// `tag(day) << 48 | remaining`.
    word: AtomicU64,
    /// `sig_of(quota)` of the quota the current allowance was computed for.
    sig: AtomicU64,
    /// Everything that changes only when the day, the period or the plan
    /// changes, or when an operator updates the usage.
    slow: Mutex<Slow>,
}

struct Slow {
    /// The start of the period in which the key was first seen.
    first_period_start: i64,
    /// The period being counted.
    window: Window,
    /// The day being counted.
    day: Date,
    /// `used today = day_base - remaining`: what remained when the day began,
    /// plus what updates added since.
    day_base: u64,
    /// The period's allowance when it began (what a reset restores).
    allowance: u64,
    /// Usage records of the previous days, oldest first.
    history: VecDeque<DayUsage>,
}

impl KeyEntry {
    fn new(request: &QuotaRequest<'_>) -> Self {
        let allowance = request.allowance(request.is_initial(request.window.start()));
        Self {
            word: AtomicU64::new(pack(tag_of(request.day), allowance)),
            sig: AtomicU64::new(sig_of(&request.quota)),
            slow: Mutex::new(Slow {
                first_period_start: request.window.start(),
                window: request.window,
                day: request.day,
                day_base: allowance,
                allowance,
                history: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slow> {
        // The counters stay consistent whatever a panicking holder did: every
        // change to them is a single atomic step.
        self.slow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock-free path: `None` when the day or the plan changed.
    #[inline]
    fn consume_fast(&self, request: &QuotaRequest<'_>) -> Option<Decision> {
        if self.sig.load(Ordering::Acquire) != sig_of(&request.quota) {
            return None;
        }
        let tag = tag_of(request.day);
        let mut word = self.word.load(Ordering::Acquire);
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
            match self.word.compare_exchange_weak(
                word,
                word - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
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

    #[cold]
    fn consume_slow(&self, request: &QuotaRequest<'_>, retention_days: u32) -> Decision {
        let mut slow = self.lock();
        self.advance(&mut slow, request, retention_days);
        // Under the mutex the tag cannot change: only the remaining count,
        // which concurrent fast-path requests decrement.
        match self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (remaining_of(word) > 0).then(|| word - 1)
            }) {
            Ok(previous) => Decision {
                admitted: true,
                remaining: remaining_of(previous) - 1,
            },
            Err(_) => Decision {
                admitted: false,
                remaining: 0,
            },
        }
    }

    /// Sets the remaining count to `f(remaining)` in one atomic step, keeping
    /// the count of today's use. Returns the new remaining count.
    fn replace_remaining(&self, slow: &mut Slow, tag: u64, f: impl Fn(u64) -> u64) -> u64 {
        let mut old = 0;
        let mut new = 0;
        // The closure always returns `Some`, so `fetch_update` cannot fail.
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                old = remaining_of(word);
                new = f(old).min(MAX_REMAINING);
                Some(pack(tag, new))
            });
        slow.day_base = slow.day_base.saturating_sub(old).saturating_add(new);
        new
    }

    /// Moves the entry to the request's day, period and plan.
    ///
    /// Time only moves forward here: a request dated before the day being
    /// counted (a clock stepped back, or a request that read the clock just
    /// before midnight and arrived just after another) counts in the current
    /// day.
    fn advance(&self, slow: &mut Slow, request: &QuotaRequest<'_>, retention_days: u32) {
        let sig = sig_of(&request.quota);
        let old_sig = self.sig.load(Ordering::Acquire);
        let kind_changed = (old_sig & 3) != (sig & 3);
        let new_period = kind_changed || request.window.start() > slow.window.start();
        let new_day = new_period || request.day > slow.day;
        if new_day {
            let tag = tag_of(request.day);
            let allowance = request.allowance(request.is_initial(slow.first_period_start));
            let mut old = 0;
            let mut new = 0;
            let _ = self
                .word
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                    old = remaining_of(word);
                    new = if new_period { allowance } else { old };
                    Some(pack(tag, new))
                });
            slow.history.push_back(DayUsage {
                day: slow.day,
                used: slow.day_base.saturating_sub(old),
                remaining: old,
            });
            if new_period {
                slow.window = request.window;
                slow.allowance = allowance;
            }
            slow.day = request.day;
            slow.day_base = new;
            let oldest = oldest_kept(request.day, retention_days);
            while slow.history.front().is_some_and(|r| r.day < oldest) {
                slow.history.pop_front();
            }
            self.sig.store(sig, Ordering::Release);
        } else if sig != old_sig {
            // Same period, new limit: what remains moves by the difference.
            let (old_limit, new_limit) = (old_sig >> 2, sig >> 2);
            let tag = tag_of(slow.day);
            let shift = |n: u64| {
                if new_limit >= old_limit {
                    n.saturating_add(new_limit - old_limit)
                } else {
                    n.saturating_sub(old_limit - new_limit)
                }
            };
            self.replace_remaining(slow, tag, shift);
            slow.allowance = shift(slow.allowance).min(MAX_REMAINING);
            self.sig.store(sig, Ordering::Release);
        }
    }

    fn update(
        &self,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
        retention_days: u32,
    ) -> DayUsage {
        let mut slow = self.lock();
        self.advance(&mut slow, request, retention_days);
        let tag = tag_of(slow.day);
        let allowance = slow.allowance;
        let remaining = match update {
            UsageUpdate::Extend(more) => {
                self.replace_remaining(&mut slow, tag, |n| n.saturating_add(more))
            }
            UsageUpdate::SetRemaining(n) => self.replace_remaining(&mut slow, tag, |_| n),
            UsageUpdate::Reset => self.replace_remaining(&mut slow, tag, |_| allowance),
        };
        DayUsage {
            day: slow.day,
            used: slow.day_base.saturating_sub(remaining),
            remaining,
        }
    }

    fn usage(&self, from: Date, to: Date) -> Vec<DayUsage> {
        let slow = self.lock();
        let remaining = remaining_of(self.word.load(Ordering::Acquire));
        let live = DayUsage {
            day: slow.day,
            used: slow.day_base.saturating_sub(remaining),
            remaining,
        };
        slow.history
            .iter()
            .copied()
            .chain(std::iter::once(live))
            .filter(|r| from <= r.day && r.day <= to)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use time::macros::date;

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
        let store = MemoryStore::new();
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
        let records = store
            .find("plan", "k", |e| e.usage(monday, tuesday))
            .unwrap();
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
        let store = MemoryStore::new();
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
        let store = MemoryStore::with_retention_days(2);
        let quota = QuotaSettings::new(5, QuotaPeriod::Day).unwrap();
        let first = date!(2026 - 11 - 01);
        for offset in 0..6 {
            let day = first + Duration::days(offset);
            store.consume_sync(&request("k", quota, day));
        }
        let days: Vec<Date> = store
            .find("plan", "k", |e| e.usage(Date::MIN, Date::MAX))
            .unwrap()
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
    fn an_earlier_day_counts_in_the_current_one() {
        let store = MemoryStore::new();
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
