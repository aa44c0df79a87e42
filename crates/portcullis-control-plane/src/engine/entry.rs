//! One plan/key counter in the engine's memory ([`Entry`]): the lock-free
//! block word, the slow path's lease, what the entries share, and the
//! engine's state that holds them ([`EngineInner`]).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use portcullis_core::plan::QuotaSettings;
use portcullis_quota::Window;
use portcullis_quota::store::{Decision, QuotaRequest};
use time::Date;
use tokio::sync::Notify;

use crate::reservation::{CounterRef, period_kind};
use crate::state::{KeyId, PairRef};

use super::config::EngineConfig;

/// Milliseconds since this process first asked: the engine's cheap clock.
pub(super) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The low 32 bits of a [`now_ms`] time (see `Slow::since`).
pub(super) fn ms32(ms: u64) -> u32 {
    // Truncation is the point: compared with wrapping arithmetic.
    #[allow(clippy::cast_possible_truncation)]
    let low = ms as u32;
    low
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(super) const TAG_SHIFT: u32 = 48;
pub(super) const EXHAUSTED: u64 = 1 << 47;
pub(super) const REMAINING: u64 = EXHAUSTED - 1;

pub(super) fn tag_of(day: Date) -> u64 {
    u64::from(day.to_julian_day().cast_unsigned() & 0xFFFF)
}

pub(super) fn pack(tag: u64, exhausted: bool, remaining: u64) -> u64 {
    (tag << TAG_SHIFT) | if exhausted { EXHAUSTED } else { 0 } | remaining.min(REMAINING)
}

pub(super) fn sig_of(quota: &QuotaSettings) -> u64 {
    (quota.limit().min(REMAINING) << 2) | u64::from(period_kind(quota.period()))
}

/// The period a block was reserved in, shared by every block reserved for
/// the same plan quota on the same day (a handful at a time), so a block
/// holds a pointer to it rather than 68 bytes of its own.
#[derive(PartialEq, Eq)]
pub(super) struct Period {
    pub(super) quota: QuotaSettings,
    pub(super) window: Window,
    pub(super) day: Date,
    pub(super) initial_window: Option<Window>,
}

impl Period {
    pub(super) fn of(request: &QuotaRequest<'_>) -> Self {
        Self {
            quota: request.quota,
            window: request.window,
            day: request.day,
            initial_window: request.initial_window,
        }
    }
}

/// One counter's block in this process (see the [crate docs](crate) for
/// what each part costs): kept while it holds a block, dropped by the
/// flusher once the block is spent or given back.
pub(super) struct Entry {
    /// The plan's id, shared by every entry of the plan (a thin pointer).
    pub(super) plan: Arc<String>,
    pub(super) key: KeyId,
    /// `tag(day) << 48 | exhausted << 47 | what remains of the block`.
    pub(super) word: AtomicU64,
    /// `sig_of` the quota the block was reserved under.
    pub(super) sig: AtomicU64,
    /// What remained to reserve in the period after the last grant.
    pub(super) pool: AtomicU64,
    /// With the exhausted flag: until when it is trusted (a [`now_ms`]
    /// time, its low 32 bits, compared with wrapping arithmetic).
    pub(super) exhausted_until: AtomicU32,
    /// The slow path's lock ([`Entry::lock`]): [`LOCKED`], and
    /// [`WAITING`] once a request has waited for it.
    lock: AtomicU32,
    /// A [`now_ms`] time, its low 32 bits: while the entry holds a block,
    /// when the block was granted (its age for [`EngineConfig::block_ttl`],
    /// and the time over which the rate is measured); else when its last
    /// block was settled. Written with the slow path's lock held
    /// ([`SlowGuard::set_since`]), read without it by the flusher's sweeps
    /// ([`Entry::due`]), which check again under the lock. It wraps after
    /// 49 days; the flusher looks at it every second, and a wrapped value
    /// only keeps a block one more round.
    since: AtomicU32,
    /// This replica's request rate for the counter, per second, as its
    /// last blocks measured it (0 before the first): an `f32`'s bits,
    /// written with the slow path's lock held.
    rate: AtomicU32,
    /// The slow path's state while the lock is free; its holder works on
    /// its own copy ([`SlowGuard`]), so no `std` guard is held across an
    /// `await`.
    slow: Mutex<Slow>,
}

/// [`Entry::lock`]'s state: held.
const LOCKED: u32 = 1;
/// [`Entry::lock`]'s state: a request may be waiting (it is woken when
/// the lock is let go).
const WAITING: u32 = 2;

/// What a request waits on for an entry's lock: one of a few [`Notify`]s
/// for every entry of the process, chosen by the entry's address, so an
/// entry pays 4 bytes for its lock, not an async mutex's 40. A request
/// woken for another entry's lock on the same `Notify` tries again and
/// waits again; the slow path is rare enough for that to cost nothing.
static WAITERS: [Notify; 64] = [const { Notify::const_new() }; 64];

#[derive(Default)]
pub(super) struct Slow {
    pub(super) lease: Option<Lease>,
}

pub(super) struct Lease {
    pub(super) period: Arc<Period>,
    pub(super) generation: u64,
    pub(super) granted: u64,
    /// Spent requests already reported.
    pub(super) reported: u64,
}

impl Entry {
    pub(super) fn new(plan: Arc<String>, key: &str) -> Self {
        Self {
            plan,
            key: KeyId::new(key),
            word: AtomicU64::new(0),
            sig: AtomicU64::new(u64::MAX),
            pool: AtomicU64::new(0),
            exhausted_until: AtomicU32::new(0),
            lock: AtomicU32::new(0),
            since: AtomicU32::new(ms32(now_ms())),
            rate: AtomicU32::new(0.0f32.to_bits()),
            slow: Mutex::new(Slow { lease: None }),
        }
    }

    fn waiters(&self) -> &'static Notify {
        // Entries are at least 16 bytes apart: the low bits say nothing.
        let at = std::ptr::from_ref(self) as usize >> 4;
        &WAITERS[at % WAITERS.len()]
    }

    fn slow_state(&self) -> MutexGuard<'_, Slow> {
        // Only [`SlowGuard`] takes it, for a move: nothing a panic could
        // leave half-done.
        self.slow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slow path's lock, if it is free.
    pub(super) fn try_lock(&self) -> Option<SlowGuard<'_>> {
        let mut state = self.lock.load(Ordering::Relaxed);
        loop {
            if state & LOCKED != 0 {
                return None;
            }
            match self.lock.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => state = current,
            }
        }
        let slow = std::mem::take(&mut *self.slow_state());
        Some(SlowGuard { entry: self, slow })
    }

    /// The slow path's lock, waiting for it (in no particular order).
    pub(super) async fn lock(&self) -> SlowGuard<'_> {
        // A unit of the task's cooperative budget, as `tokio`'s own locks
        // take: a task whose every lock is free still yields now and then,
        // so on a one-thread runtime the flusher gets its turn.
        tokio::task::coop::consume_budget().await;
        loop {
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            let notified = self.waiters().notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the flag is raised: the holder who sees
            // the flag when letting go wakes this request.
            notified.as_mut().enable();
            self.lock.fetch_or(WAITING, Ordering::AcqRel);
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            notified.await;
        }
    }

    /// The store's name for this entry's counter in `period`.
    pub(super) fn counter(&self, period: &Period) -> CounterRef {
        CounterRef {
            plan_id: self.plan.to_string(),
            key_id: self.key.to_owned_string(),
            quota: period.quota,
            window: period.window,
            day: period.day,
            initial_window: period.initial_window,
        }
    }

    /// Whether the entry carries nothing worth keeping at `now`: no block,
    /// no fresh "quota spent" mark, and nobody using it (the map and the
    /// caller hold the only `references`; the caller holds the map's write
    /// lock, so no other can be taken).
    pub(super) fn evictable(self: &Arc<Self>, now: u64, references: usize) -> bool {
        if Arc::strong_count(self) > references {
            return false;
        }
        let Some(slow) = self.try_lock() else {
            return false;
        };
        slow.lease.is_none() && !self.marked_spent(now)
    }

    /// Whether the quota is marked spent, and the mark is still trusted at
    /// `now`.
    pub(super) fn marked_spent(&self, now: u64) -> bool {
        let until = self.exhausted_until.load(Ordering::Relaxed);
        // Ahead of `now` by less than half of `u32`'s 49 days: fresh.
        #[allow(clippy::cast_possible_wrap)]
        let ahead = until.wrapping_sub(ms32(now)) as i32;
        self.word.load(Ordering::Acquire) & EXHAUSTED != 0 && ahead > 0
    }

    /// Marks the quota spent until `recheck` from now (at most 24 days:
    /// a longer mark is trusted that long).
    pub(super) fn mark_spent(&self, recheck: Duration) {
        const MAX: u64 = i32::MAX as u64;
        let until = now_ms().saturating_add(millis(recheck).min(MAX));
        self.exhausted_until.store(ms32(until), Ordering::Relaxed);
    }

    /// Whether the fast path has taken the whole block: what is left of the
    /// lease is a report (called with the slow path's lock held, so the
    /// lease is this word's).
    pub(super) fn spent(&self) -> bool {
        let word = self.word.load(Ordering::Acquire);
        word & (EXHAUSTED | REMAINING) == 0
    }

    /// The lock-free path: `None` when the block is spent or belongs to
    /// another day or quota.
    #[inline]
    pub(super) fn consume_fast(&self, request: &QuotaRequest<'_>) -> Option<Decision> {
        if self.sig.load(Ordering::Acquire) != sig_of(&request.quota) {
            return None;
        }
        let tag = tag_of(request.day);
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if word >> TAG_SHIFT != tag {
                return None;
            }
            let remaining = word & REMAINING;
            if remaining == 0 {
                // Spent: refused at once while the store's "nothing left"
                // is fresh, then the slow path asks again.
                return self.marked_spent(now_ms()).then_some(Decision {
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
                        remaining: (remaining - 1)
                            .saturating_add(self.pool.load(Ordering::Relaxed)),
                    });
                }
                Err(current) => word = current,
            }
        }
    }

    /// Whether the flusher's sweep at `now` (a [`ms32`] time) should look
    /// at this entry under its lock: its block is spent, or older than
    /// `ttl` milliseconds (or it holds none and has not for that long). Read
    /// without the lock: the sweep checks again with it.
    pub(super) fn due(&self, now: u32, ttl: u64) -> bool {
        let held_for = now.wrapping_sub(self.since.load(Ordering::Relaxed));
        u64::from(held_for) >= ttl || self.spent()
    }

    /// Takes what remains of the block (the fast path then finds nothing).
    pub(super) fn take_remaining(&self) -> u64 {
        let word = self.word.load(Ordering::Acquire);
        let old = self
            .word
            .swap(pack(word >> TAG_SHIFT, false, 0), Ordering::AcqRel);
        old & REMAINING
    }
}

/// An entry's slow path, locked ([`Entry::lock`]): its state, moved out of
/// the entry while the lock is held and back when it is let go.
pub(super) struct SlowGuard<'a> {
    entry: &'a Entry,
    slow: Slow,
}

impl SlowGuard<'_> {
    /// [`Entry`]'s `since`: when the block was granted, or the last one
    /// settled.
    pub(super) fn since(&self) -> u32 {
        self.entry.since.load(Ordering::Relaxed)
    }

    pub(super) fn set_since(&mut self, at: u32) {
        self.entry.since.store(at, Ordering::Relaxed);
    }

    /// [`Entry`]'s rate: requests a second on this replica (0 before the
    /// first block is settled).
    pub(super) fn rate(&self) -> f32 {
        f32::from_bits(self.entry.rate.load(Ordering::Relaxed))
    }

    pub(super) fn set_rate(&mut self, rate: f32) {
        self.entry.rate.store(rate.to_bits(), Ordering::Relaxed);
    }
}

impl Deref for SlowGuard<'_> {
    type Target = Slow;

    fn deref(&self) -> &Slow {
        &self.slow
    }
}

impl DerefMut for SlowGuard<'_> {
    fn deref_mut(&mut self) -> &mut Slow {
        &mut self.slow
    }
}

impl Drop for SlowGuard<'_> {
    fn drop(&mut self) {
        *self.entry.slow_state() = std::mem::take(&mut self.slow);
        let state = self.entry.lock.swap(0, Ordering::Release);
        if state & WAITING != 0 {
            self.entry.waiters().notify_waiters();
        }
    }
}

/// The map's key: the entry itself, found by its plan and key ids (so the
/// ids are stored once, in the entry).
pub(super) struct Handle(pub(super) Arc<Entry>);

impl PairRef for Handle {
    #[inline]
    fn pair(&self) -> (&str, &[u8]) {
        (self.0.plan.as_str(), self.0.key.as_bytes())
    }
}

impl Hash for Handle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn PairRef).hash(state);
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for Handle {}

impl<'a> Borrow<dyn PairRef + 'a> for Handle {
    fn borrow(&self) -> &(dyn PairRef + 'a) {
        self
    }
}

/// What the entries share: plan ids and periods, each kept once while some
/// entry uses it.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) plans: Vec<Arc<String>>,
    pub(super) periods: Vec<Arc<Period>>,
}

impl Shared {
    pub(super) fn plan(&mut self, plan_id: &str) -> Arc<String> {
        if let Some(plan) = self.plans.iter().find(|p| p.as_str() == plan_id) {
            return plan.clone();
        }
        let plan = Arc::new(plan_id.to_owned());
        self.plans.push(plan.clone());
        plan
    }

    pub(super) fn period(&mut self, period: Period) -> Arc<Period> {
        if let Some(shared) = self.periods.iter().rev().find(|p| ***p == period) {
            return shared.clone();
        }
        let period = Arc::new(period);
        self.periods.push(period.clone());
        period
    }

    /// Forgets what no entry uses any more.
    pub(super) fn prune(&mut self) {
        self.plans.retain(|p| Arc::strong_count(p) > 1);
        self.periods.retain(|p| Arc::strong_count(p) > 1);
        self.plans.shrink_to_fit();
        self.periods.shrink_to_fit();
    }
}

pub(super) struct EngineInner<S> {
    pub(super) store: S,
    pub(super) config: EngineConfig,
    pub(super) entries: DashMap<Handle, (), foldhash::fast::RandomState>,
    pub(super) shared: Mutex<Shared>,
}

impl<S> EngineInner<S> {
    pub(super) fn shared(&self) -> MutexGuard<'_, Shared> {
        // `Shared` holds no invariant a panic half-way could break.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes the crate docs' table of what each byte costs states: a
    /// field added to an entry shows here first.
    #[test]
    fn an_entry_is_as_small_as_the_docs_say() {
        assert_eq!(size_of::<KeyId>(), 16, "a key id of up to 14 bytes inline");
        assert_eq!(size_of::<Lease>(), 32, "a block points to its period");
        assert_eq!(size_of::<Slow>(), 32);
        assert_eq!(size_of::<Mutex<Slow>>(), 40);
        assert_eq!(size_of::<Handle>(), 8, "the map holds one pointer");
        assert!(
            size_of::<Entry>() <= 104,
            "an entry is {} bytes: with Arc's counts more than a 128-byte malloc block",
            size_of::<Entry>()
        );
    }

    /// The slow path's lock admits one holder at a time across `await`s,
    /// wakes the requests waiting for it, and hands each holder the state
    /// the previous one left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_slow_lock_is_held_by_one_request_at_a_time() {
        use std::sync::atomic::AtomicUsize;

        const TASKS: u32 = 16;
        const ROUNDS: u32 = 50;
        let entry = Arc::new(Entry::new(Arc::new("plan".to_owned()), "key"));
        let start = entry.lock().await.since();
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let (entry, inside) = (entry.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let mut slow = entry.lock().await;
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    let seen = slow.since();
                    tokio::task::yield_now().await;
                    slow.set_since(seen.wrapping_add(1));
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let slow = entry.lock().await;
        assert_eq!(slow.since(), start.wrapping_add(TASKS * ROUNDS));
        assert!(entry.try_lock().is_none(), "held");
        drop(slow);
        assert!(entry.try_lock().is_some(), "let go");
    }
}
