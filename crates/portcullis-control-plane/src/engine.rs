//! [`QuotaEngine`]: the quota layer's store on top of a control-plane store,
//! counting in memory against durably reserved blocks.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use portcullis_core::plan::QuotaSettings;
use portcullis_quota::Window;
use portcullis_quota::store::{DayUsage, Decision, QuotaRequest, QuotaStore, UsageUpdate};
use time::Date;
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::reservation::{CounterChange, CounterRef, Grant, QuotaReservation, Report, period_kind};
use crate::state::{KeyId, PairRef};
use crate::store::ControlPlaneStore;

/// How the engine sizes its blocks (leases) and how long it keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The largest block reserved at once: the most a crash can cost one
    /// key in under-admission (and over-counting in its usage records).
    pub max_block: u64,
    /// The first block of a counter, and the smallest the request rate
    /// sizes (the remaining quota can make blocks smaller, down to 1).
    pub initial_block: u64,
    /// How much of this replica's traffic for a key one block should serve:
    /// a block is the key's observed request rate on this replica times
    /// this (100 ms by default), within `initial_block..=max_block`.
    pub block_duration: Duration,
    /// A block not spent within this is given back by the background task
    /// ([`QuotaEngine::spawn_flusher`]), so an idle replica does not sit on
    /// quota another replica could use (1 s by default).
    pub block_ttl: Duration,
    /// How long the engine trusts "this key's quota is spent" before it
    /// asks the store again, so quota given back by another replica (or
    /// added by UpdateUsage) is found (100 ms by default).
    pub exhausted_recheck: Duration,
    /// How long a request that finds the quota spent while other replicas
    /// hold blocks of it ([`Grant::outstanding`](crate::reservation::Grant::outstanding))
    /// waits for them to give back what they have not spent
    /// ([`QuotaReservation::reclaim`]) before it is refused (200 ms by
    /// default; zero refuses at once and leaves the blocks to expire).
    pub reclaim_wait: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_block: 1000,
            initial_block: 16,
            block_duration: Duration::from_millis(100),
            block_ttl: Duration::from_secs(1),
            exhausted_recheck: Duration::from_millis(100),
            reclaim_wait: Duration::from_millis(200),
        }
    }
}

/// Milliseconds since this process first asked: the engine's cheap clock.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The low 32 bits of a [`now_ms`] time (see `Slow::since`).
fn ms32(ms: u64) -> u32 {
    // Truncation is the point: compared with wrapping arithmetic.
    #[allow(clippy::cast_possible_truncation)]
    let low = ms as u32;
    low
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The boxed future of [`QuotaEngine`]'s slow path.
pub type ConsumeFuture = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + Send>>;

const TAG_SHIFT: u32 = 48;
const EXHAUSTED: u64 = 1 << 47;
const REMAINING: u64 = EXHAUSTED - 1;

fn tag_of(day: Date) -> u64 {
    u64::from(day.to_julian_day().cast_unsigned() & 0xFFFF)
}

fn pack(tag: u64, exhausted: bool, remaining: u64) -> u64 {
    (tag << TAG_SHIFT) | if exhausted { EXHAUSTED } else { 0 } | remaining.min(REMAINING)
}

fn sig_of(quota: &QuotaSettings) -> u64 {
    (quota.limit().min(REMAINING) << 2) | u64::from(period_kind(quota.period()))
}

/// The period a block was reserved in, shared by every block reserved for
/// the same plan quota on the same day (a handful at a time), so a block
/// holds a pointer to it rather than 68 bytes of its own.
#[derive(PartialEq, Eq)]
struct Period {
    quota: QuotaSettings,
    window: Window,
    day: Date,
    initial_window: Option<Window>,
}

impl Period {
    fn of(request: &QuotaRequest<'_>) -> Self {
        Self {
            quota: request.quota,
            window: request.window,
            day: request.day,
            initial_window: request.initial_window,
        }
    }
}

/// One counter's block in this process: 160 bytes while it holds a block
/// (see the [crate docs](crate) for what each part costs), dropped by the
/// flusher once it has held none for [`EngineConfig::block_ttl`].
struct Entry {
    /// The plan's id, shared by every entry of the plan (a thin pointer).
    plan: Arc<String>,
    key: KeyId,
    /// `tag(day) << 48 | exhausted << 47 | what remains of the block`.
    word: AtomicU64,
    /// `sig_of` the quota the block was reserved under.
    sig: AtomicU64,
    /// What remained to reserve in the period after the last grant.
    pool: AtomicU64,
    /// With the exhausted flag: until when ([`now_ms`]) it is trusted.
    exhausted_until: AtomicU64,
    slow: tokio::sync::Mutex<Slow>,
}

struct Slow {
    lease: Option<Lease>,
    /// This replica's request rate for the counter, per second, as its
    /// last blocks measured it (0 before the first).
    rate: f32,
    /// A [`now_ms`] time, its low 32 bits: while the entry holds a block,
    /// when the block was granted; else since when it has held none (its
    /// creation or the end of its last block). It wraps after 49 days; the
    /// flusher looks at it every second, and a wrapped value only keeps an
    /// idle entry, or a block, one more round.
    since: u32,
}

struct Lease {
    period: Arc<Period>,
    generation: u64,
    granted: u64,
    /// Spent requests already reported.
    reported: u64,
}

impl Entry {
    fn new(plan: Arc<String>, key: &str) -> Self {
        Self {
            plan,
            key: KeyId::new(key),
            word: AtomicU64::new(0),
            sig: AtomicU64::new(u64::MAX),
            pool: AtomicU64::new(0),
            exhausted_until: AtomicU64::new(0),
            slow: tokio::sync::Mutex::new(Slow {
                lease: None,
                rate: 0.0,
                since: ms32(now_ms()),
            }),
        }
    }

    /// The store's name for this entry's counter in `period`.
    fn counter(&self, period: &Period) -> CounterRef {
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
    /// none for `idle` already, no fresh "quota spent" mark, and nobody
    /// using it (the map holds the only reference; the caller holds the
    /// map's write lock, so no other can be taken).
    fn evictable(self: &Arc<Self>, now: u64, idle: u64) -> bool {
        if Arc::strong_count(self) > 1 {
            return false;
        }
        let Ok(slow) = self.slow.try_lock() else {
            return false;
        };
        let marked = self.word.load(Ordering::Acquire) & EXHAUSTED != 0
            && now < self.exhausted_until.load(Ordering::Relaxed);
        let idle_for = ms32(now).wrapping_sub(slow.since);
        slow.lease.is_none() && !marked && u64::from(idle_for) >= idle
    }

    /// The lock-free path: `None` when the block is spent or belongs to
    /// another day or quota.
    #[inline]
    fn consume_fast(&self, request: &QuotaRequest<'_>) -> Option<Decision> {
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
                let fresh = word & EXHAUSTED != 0
                    && now_ms() < self.exhausted_until.load(Ordering::Relaxed);
                return fresh.then_some(Decision {
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

    /// Takes what remains of the block (the fast path then finds nothing).
    fn take_remaining(&self) -> u64 {
        let word = self.word.load(Ordering::Acquire);
        let old = self
            .word
            .swap(pack(word >> TAG_SHIFT, false, 0), Ordering::AcqRel);
        old & REMAINING
    }
}

/// The map's key: the entry itself, found by its plan and key ids (so the
/// ids are stored once, in the entry).
struct Handle(Arc<Entry>);

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
struct Shared {
    plans: Vec<Arc<String>>,
    periods: Vec<Arc<Period>>,
}

impl Shared {
    fn plan(&mut self, plan_id: &str) -> Arc<String> {
        if let Some(plan) = self.plans.iter().find(|p| p.as_str() == plan_id) {
            return plan.clone();
        }
        let plan = Arc::new(plan_id.to_owned());
        self.plans.push(plan.clone());
        plan
    }

    fn period(&mut self, period: Period) -> Arc<Period> {
        if let Some(shared) = self.periods.iter().rev().find(|p| ***p == period) {
            return shared.clone();
        }
        let period = Arc::new(period);
        self.periods.push(period.clone());
        period
    }

    /// Forgets what no entry uses any more.
    fn prune(&mut self) {
        self.plans.retain(|p| Arc::strong_count(p) > 1);
        self.periods.retain(|p| Arc::strong_count(p) > 1);
        self.plans.shrink_to_fit();
        self.periods.shrink_to_fit();
    }
}

struct EngineInner<S> {
    store: S,
    config: EngineConfig,
    entries: DashMap<Handle, (), foldhash::fast::RandomState>,
    shared: Mutex<Shared>,
}

impl<S> EngineInner<S> {
    fn shared(&self) -> MutexGuard<'_, Shared> {
        // `Shared` holds no invariant a panic half-way could break.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The quota layer's store ([`QuotaStore`]) on a control-plane store: the
/// hot path counts in memory, against blocks reserved durably through
/// [`QuotaReservation`].
///
/// - A request whose key holds a block takes one from it with a
///   compare-and-swap, as `portcullis-quota`'s in-memory store does: no lock,
///   no I/O, no allocation.
/// - When the block is spent, one request reports it and reserves the next
///   in one store call ([`QuotaReservation::renew`]; the others wait for
///   it): one durable write (or one Redis round trip) per block, not per
///   request. A block (a lease) is sized by the key's request rate on this
///   replica: rate × [`EngineConfig::block_duration`] (100 ms of traffic),
///   within [`EngineConfig::initial_block`]`..=`[`EngineConfig::max_block`],
///   and never more than a quarter of what the period has left (at least
///   1), so blocks shrink to 1 as the quota nears 0 and the last requests
///   are never stranded on another replica.
/// - Unused blocks are given back: on expiry ([`EngineConfig::block_ttl`],
///   by the background task), on [`shutdown`](Self::shutdown), and when the
///   store announces a change to the counter
///   ([`QuotaReservation::counter_changes`]: UpdateUsage on any replica), so
///   such a change takes effect on every replica as soon as it hears of it
///   (pub/sub on Redis: milliseconds, within 1 s). A changed plan quota
///   reaches the engine in the requests themselves, and the block reserved
///   under the old quota is given back at once.
/// - A request that finds the quota spent while other replicas still hold
///   blocks of it ([`Grant::outstanding`]) asks them to give back what they
///   have not spent ([`QuotaReservation::reclaim`]) and waits for it, up to
///   [`EngineConfig::reclaim_wait`]: the last requests of a quota are not
///   stranded in a block on a replica whose traffic for the key has
///   stopped.
/// - A spent quota is trusted for [`EngineConfig::exhausted_recheck`], then
///   the store is asked again, so quota given back elsewhere is found.
/// - [`flush`](Self::flush) (every second with
///   [`spawn_flusher`](Self::spawn_flusher)) reports what was spent, for the
///   usage records. **GetUsage counts admitted requests, not reserved
///   ones**; what another replica admitted since its last flush is not in
///   it yet, so it may be stale by up to one flush period of that
///   replica's traffic (and never more than the blocks it holds).
///   [`usage`](QuotaStore::usage) through this engine reports its own first.
///
/// **Crash bound** (`kill -9`, power loss): never over-admitted; at most the
/// unspent part of one block per key (≤ `max_block`) is lost as
/// under-admission, and the same part is over-counted in that day's usage
/// record: no admitted request is missing from it.
pub struct QuotaEngine<S> {
    inner: Arc<EngineInner<S>>,
}

impl<S> Clone for QuotaEngine<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for QuotaEngine<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaEngine")
            .field("config", &self.inner.config)
            .field("counters", &self.inner.entries.len())
            .finish_non_exhaustive()
    }
}

impl<S: ControlPlaneStore + Clone> QuotaEngine<S> {
    /// An engine on `store` with the default block sizes.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self::with_config(store, EngineConfig::default())
    }

    /// An engine on `store`.
    #[must_use]
    pub fn with_config(store: S, config: EngineConfig) -> Self {
        let config = EngineConfig {
            max_block: config.max_block.max(1),
            initial_block: config.initial_block.clamp(1, config.max_block.max(1)),
            ..config
        };
        Self {
            inner: Arc::new(EngineInner {
                store,
                config,
                entries: DashMap::with_hasher(foldhash::fast::RandomState::default()),
                shared: Mutex::new(Shared::default()),
            }),
        }
    }

    /// The store under the engine.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Whether the store under the engine can be reached now
    /// ([`ControlPlaneStore::is_available`]): a readiness signal. Blocks in
    /// hand keep serving exactly while it is `false`.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.inner.store.is_available()
    }

    /// How many plan/key counters the engine holds in memory (for memory
    /// measurements; each holds at most one block).
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.inner.entries.len()
    }

    fn find(&self, plan_id: &str, key_id: &str) -> Option<Arc<Entry>> {
        let pair = (plan_id, key_id.as_bytes());
        self.inner
            .entries
            .get(&pair as &dyn PairRef)
            .map(|e| e.key().0.clone())
    }

    fn entry(&self, plan_id: &str, key_id: &str) -> Arc<Entry> {
        if let Some(entry) = self.find(plan_id, key_id) {
            return entry;
        }
        let plan = self.inner.shared().plan(plan_id);
        let entry = Arc::new(Entry::new(plan, key_id));
        self.inner
            .entries
            .entry(Handle(entry))
            .or_insert(())
            .key()
            .0
            .clone()
    }

    fn all_entries(&self) -> Vec<Arc<Entry>> {
        self.inner
            .entries
            .iter()
            .map(|e| e.key().0.clone())
            .collect()
    }

    /// Drops the entries that carry nothing: no block, none for
    /// [`EngineConfig::block_ttl`], no fresh "quota spent" mark, and in use
    /// by no request. Gives the map's memory back when it is mostly empty.
    /// Answers how many were dropped.
    fn evict_idle(&self) -> usize {
        let entries = &self.inner.entries;
        let before = entries.len();
        let now = now_ms();
        let idle = millis(self.inner.config.block_ttl);
        entries.retain(|handle, ()| !handle.0.evictable(now, idle));
        let evicted = before.saturating_sub(entries.len());
        if evicted > 0 {
            // Rebuilding the table costs a pass over what is left: only
            // when most of it is empty.
            if entries.len().saturating_mul(4) < entries.capacity() {
                entries.shrink_to_fit();
            }
            self.inner.shared().prune();
        }
        evicted
    }

    /// Reports what each block has spent since the last report, keeping the
    /// blocks, gives back blocks older than [`EngineConfig::block_ttl`], and
    /// forgets keys that have held no block for a `block_ttl` (and are not
    /// marked spent): their memory goes back to the allocator, and a key
    /// seen again starts afresh (its first block is
    /// [`EngineConfig::initial_block`]). Blocks whose slow path is busy are
    /// skipped this time.
    ///
    /// # Errors
    ///
    /// The first store failure; the unreported counts stay to report later.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let reported = self.report_all().await;
        // Even when the store fails: an entry whose report failed keeps
        // its block, and so is not dropped.
        self.evict_idle();
        reported
    }

    /// [`flush`](Self::flush)'s reports, up to the first failure.
    async fn report_all(&self) -> Result<(), StoreError> {
        let ttl = millis(self.inner.config.block_ttl);
        for entry in self.all_entries() {
            let Ok(mut slow) = entry.slow.try_lock() else {
                continue;
            };
            let now = now_ms();
            let held_for = ms32(now).wrapping_sub(slow.since);
            let expired = slow.lease.is_some() && u64::from(held_for) >= ttl;
            if expired {
                settle(&self.inner.store, &entry, &mut slow).await?;
            } else {
                report_spent(&self.inner.store, &entry, &mut slow).await?;
            }
        }
        Ok(())
    }

    /// Reports every block's count and gives back what is unspent; call it
    /// before the process exits. Counting goes on afterwards (new blocks are
    /// reserved as needed).
    ///
    /// # Errors
    ///
    /// The first store failure.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        for entry in self.all_entries() {
            let mut slow = entry.slow.lock().await;
            settle(&self.inner.store, &entry, &mut slow).await?;
        }
        Ok(())
    }

    /// Gives back the block of one key in one plan, and forgets that the
    /// key's quota was spent, so the next request asks the store. The
    /// engine does it itself for UpdateUsage made through it, and (with
    /// [`spawn_flusher`](Self::spawn_flusher)) for every change the store
    /// announces ([`QuotaReservation::counter_changes`]).
    ///
    /// # Errors
    ///
    /// The store's failure to take the report.
    pub async fn release(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let Some(entry) = self.find(plan_id, key_id) else {
            return Ok(());
        };
        let mut slow = entry.slow.lock().await;
        settle(&self.inner.store, &entry, &mut slow).await
    }

    async fn follow(&self, change: Result<CounterChange, broadcast::error::RecvError>) {
        let released = match change {
            Ok(CounterChange::Counter { plan_id, key_id }) => self.release(&plan_id, &key_id).await,
            // Missed changes: give everything back.
            Ok(_) | Err(_) => self.shutdown().await,
        };
        if let Err(error) = released {
            tracing::warn!(%error, "quota engine: giving back a block after a change failed");
        }
    }

    /// Spawns the engine's background task:
    ///
    /// - every `period` (a second is a good choice) it [`flush`](Self::flush)es:
    ///   reports what was spent, which bounds how stale GetUsage is, and
    ///   gives back blocks older than [`EngineConfig::block_ttl`];
    /// - it follows the store's [`counter_changes`](QuotaReservation::counter_changes)
    ///   (UpdateUsage made on any replica) and gives back the changed
    ///   counters' blocks at once, so the change takes effect here as soon
    ///   as the store announces it.
    ///
    /// The task ends when the last clone of the engine is dropped.
    pub fn spawn_flusher(&self, period: Duration) -> tokio::task::JoinHandle<()>
    where
        S: 'static,
    {
        let weak = Arc::downgrade(&self.inner);
        let mut changes = self.inner.store.counter_changes();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut following = true;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        let Some(inner) = weak.upgrade() else { return };
                        let engine = QuotaEngine { inner };
                        if let Err(error) = engine.flush().await {
                            tracing::debug!(%error, "quota engine: flushing usage failed");
                        }
                    }
                    change = changes.recv(), if following => {
                        if matches!(change, Err(broadcast::error::RecvError::Closed)) {
                            // The store announces nothing.
                            following = false;
                            continue;
                        }
                        let Some(inner) = weak.upgrade() else { return };
                        QuotaEngine { inner }.follow(change).await;
                    }
                }
            }
        })
    }
}

/// Reports a block's spent requests since the last report.
async fn report_spent<S: QuotaReservation>(
    store: &S,
    entry: &Entry,
    slow: &mut Slow,
) -> Result<(), StoreError> {
    let Some(lease) = slow.lease.as_mut() else {
        return Ok(());
    };
    let remaining = entry.word.load(Ordering::Acquire) & REMAINING;
    let spent = lease.granted.saturating_sub(remaining);
    let delta = spent.saturating_sub(lease.reported);
    if delta == 0 {
        return Ok(());
    }
    store
        .report(
            entry.counter(&lease.period),
            Report {
                generation: lease.generation,
                spent: delta,
                returned: 0,
            },
        )
        .await?;
    lease.reported = spent;
    Ok(())
}

/// Takes the block out of the fast path (clearing an exhausted mark too)
/// and builds its final report.
fn close(entry: &Entry, slow: &mut Slow) -> Option<(Lease, Report)> {
    let remaining = entry.take_remaining();
    let lease = slow.lease.take()?;
    let spent = lease.granted.saturating_sub(remaining);
    let report = Report {
        generation: lease.generation,
        spent: spent.saturating_sub(lease.reported),
        returned: remaining,
    };
    Some((lease, report))
}

/// After a final report succeeded: learns the replica's rate from the block.
fn closed(slow: &mut Slow, lease: &Lease, report: &Report) {
    let spent = lease.granted.saturating_sub(report.returned);
    // `since` is still when the block was granted.
    let now = ms32(now_ms());
    let held_for = now.wrapping_sub(slow.since);
    slow.since = now;
    let seconds = (f64::from(held_for) / 1000.0).max(0.001);
    #[allow(clippy::cast_precision_loss)] // a rate needs no more than f64's 52 bits
    let sample = spent as f64 / seconds;
    // f32 keeps 24 bits: a block size from it is within 1 in 16 million.
    #[allow(clippy::cast_possible_truncation)]
    let sample = sample as f32;
    slow.rate = if slow.rate > 0.0 {
        f32::midpoint(slow.rate, sample)
    } else {
        sample
    };
}

/// After a final report failed: what the store may not have seen.
///
/// When the store says nothing was sent ([`StoreError::Unavailable`]) the
/// block goes back as it was and keeps serving. Otherwise the report may
/// or may not have been applied: the unspent part is forfeited (so it can
/// never be given back twice and over-admitted), and what was spent stays
/// to report later (at worst counted twice in the usage records, capped by
/// what was reserved).
fn reopen(entry: &Entry, slow: &mut Slow, mut lease: Lease, report: &Report, error: &StoreError) {
    if matches!(error, StoreError::Unavailable(_)) {
        let tag = tag_of(lease.period.day);
        entry
            .word
            .store(pack(tag, false, report.returned), Ordering::Release);
    } else {
        lease.granted = lease.granted.saturating_sub(report.returned);
    }
    slow.lease = Some(lease);
}

/// Gives the block up: reports what it spent and returns the rest.
async fn settle<S: QuotaReservation>(
    store: &S,
    entry: &Entry,
    slow: &mut Slow,
) -> Result<(), StoreError> {
    let Some((lease, report)) = close(entry, slow) else {
        return Ok(());
    };
    match store.report(entry.counter(&lease.period), report).await {
        Ok(()) => {
            closed(slow, &lease, &report);
            Ok(())
        }
        Err(error) => {
            reopen(entry, slow, lease, &report, &error);
            Err(error)
        }
    }
}

/// The next block's size: the replica's rate for the key times
/// [`EngineConfig::block_duration`], within `initial_block..=max_block`, and
/// never more than a quarter of what the period has left (at least 1), so
/// blocks shrink to 1 as the quota nears 0 and the last requests are never
/// stranded on another replica.
fn block_size(config: &EngineConfig, rate: f64, left: u64) -> u64 {
    let by_rate = if rate > 0.0 {
        // Saturating float-to-int: a huge rate is clamped below.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (rate * config.block_duration.as_secs_f64()).ceil() as u64;
        n
    } else {
        config.initial_block
    };
    by_rate
        .clamp(config.initial_block, config.max_block)
        .min((left / 4).max(1))
}

/// The quota is spent but blocks of it are out on other replicas: asks
/// their holders to give back what they have not spent, and reserves again
/// (one request at a time) until something is granted, nothing is out any
/// more, or `wait` has passed; the request is repeated while waiting, in
/// case an announcement was lost. Answers the last grant; a store failure ends
/// the wait (the request is refused as the first grant said).
async fn reclaim<S: ControlPlaneStore>(
    store: &S,
    wait: Duration,
    counter: &CounterRef,
    mut grant: Grant,
) -> Grant {
    if wait.is_zero() {
        return grant;
    }
    // An announcement can be lost (a holder's subscription being
    // re-established): it is repeated every `REANNOUNCE` while waiting.
    const REANNOUNCE: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + wait;
    let mut announced: Option<Instant> = None;
    let mut pause = Duration::from_millis(2);
    while grant.granted == 0 && grant.outstanding > 0 {
        let now = Instant::now();
        if announced.is_none_or(|at| now.duration_since(at) >= REANNOUNCE) {
            if let Err(error) = store.reclaim(counter).await {
                tracing::debug!(%error, "quota engine: asking for unspent blocks back failed");
                break;
            }
            announced = Some(now);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(25));
        match store.reserve(counter.clone(), 1).await {
            Ok(next) => grant = next,
            Err(error) => {
                tracing::debug!(%error, "quota engine: reserving after a reclaim failed");
                break;
            }
        }
    }
    grant
}

async fn consume_slow<S: ControlPlaneStore>(
    inner: &EngineInner<S>,
    entry: &Entry,
    period: Period,
) -> Result<Decision, StoreError> {
    let (store, config) = (&inner.store, inner.config);
    let mut slow = entry.slow.lock().await;
    let counter = entry.counter(&period);
    if let Some(decision) = entry.consume_fast(&counter.as_request()) {
        return Ok(decision);
    }
    // The spent (or stale) block is reported in the same call that reserves
    // the next when both are for the same counter and period.
    let mut previous = None;
    if let Some((lease, report)) = close(entry, &mut slow) {
        if *lease.period == period {
            previous = Some((lease, report));
        } else {
            match store.report(entry.counter(&lease.period), report).await {
                Ok(()) => closed(&mut slow, &lease, &report),
                Err(error) => {
                    reopen(entry, &mut slow, lease, &report, &error);
                    return Err(error);
                }
            }
        }
    }
    let left = if entry.sig.load(Ordering::Acquire) == sig_of(&counter.quota) {
        entry.pool.load(Ordering::Acquire)
    } else {
        counter.quota.limit()
    };
    let want = block_size(&config, f64::from(slow.rate), left);
    let report = previous
        .as_ref()
        .map(|(_, report)| *report)
        .filter(|r| r.spent > 0 || r.returned > 0);
    let mut grant = match store.renew(counter.clone(), report, want).await {
        Ok(grant) => grant,
        Err(error) => {
            if let Some((lease, report)) = previous {
                reopen(entry, &mut slow, lease, &report, &error);
            }
            return Err(error);
        }
    };
    if let Some((lease, report)) = &previous {
        closed(&mut slow, lease, report);
    }
    if grant.granted == 0 && grant.outstanding > 0 {
        grant = reclaim(store, config.reclaim_wait, &counter, grant).await;
    }
    let tag = tag_of(counter.day);
    entry.pool.store(grant.remaining, Ordering::Release);
    entry.sig.store(sig_of(&counter.quota), Ordering::Release);
    if grant.granted == 0 {
        entry.exhausted_until.store(
            now_ms().saturating_add(millis(config.exhausted_recheck)),
            Ordering::Relaxed,
        );
        entry.word.store(pack(tag, true, 0), Ordering::Release);
        return Ok(Decision {
            admitted: false,
            remaining: 0,
        });
    }
    // The previous block's period when it is the same, else the one the
    // entries share.
    let period = match previous {
        Some((lease, _)) => lease.period,
        None => inner.shared().period(period),
    };
    entry
        .word
        .store(pack(tag, false, grant.granted - 1), Ordering::Release);
    slow.lease = Some(Lease {
        period,
        generation: grant.generation,
        granted: grant.granted,
        reported: 0,
    });
    slow.since = ms32(now_ms());
    Ok(Decision {
        admitted: true,
        remaining: (grant.granted - 1).saturating_add(grant.remaining),
    })
}

impl<S: ControlPlaneStore + Clone> QuotaStore for QuotaEngine<S> {
    type Error = StoreError;
    type ConsumeFuture = ConsumeFuture;

    #[inline]
    fn try_consume_now(&self, request: &QuotaRequest<'_>) -> Option<Result<Decision, StoreError>> {
        let pair = (request.plan_id, request.key_id.as_bytes());
        let entry = self.inner.entries.get(&pair as &dyn PairRef)?;
        entry.key().0.consume_fast(request).map(Ok)
    }

    fn consume(&self, request: &QuotaRequest<'_>) -> ConsumeFuture {
        let entry = self.entry(request.plan_id, request.key_id);
        let period = Period::of(request);
        let inner = self.inner.clone();
        Box::pin(async move { consume_slow(&inner, &entry, period).await })
    }

    fn update(
        &self,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
    ) -> impl Future<Output = Result<DayUsage, StoreError>> + Send {
        let entry = self.entry(request.plan_id, request.key_id);
        let counter = CounterRef::from_request(request);
        let inner = self.inner.clone();
        async move {
            let mut slow = entry.slow.lock().await;
            settle(&inner.store, &entry, &mut slow).await?;
            let record = inner.store.update_usage(counter, update).await?;
            Ok(DayUsage {
                day: record.day,
                used: record.used,
                remaining: record.remaining,
            })
        }
    }

    fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, StoreError>> + Send {
        let entry = self.find(plan_id, key_id);
        let (plan_id, key_id) = (plan_id.to_owned(), key_id.to_owned());
        let inner = self.inner.clone();
        async move {
            if let Some(entry) = entry {
                let mut slow = entry.slow.lock().await;
                report_spent(&inner.store, &entry, &mut slow).await?;
            }
            let records = inner.store.get_usage(&plan_id, &key_id, from, to).await?;
            Ok(records
                .into_iter()
                .map(|r| DayUsage {
                    day: r.day,
                    used: r.used,
                    remaining: r.remaining,
                })
                .collect())
        }
    }

    fn keys(&self, plan_id: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        let plan_id = plan_id.to_owned();
        let inner = self.inner.clone();
        async move { inner.store.usage_keys(&plan_id).await }
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
        assert_eq!(size_of::<Slow>(), 40);
        assert_eq!(size_of::<Handle>(), 8, "the map holds one pointer");
        assert!(
            size_of::<Entry>() <= 136,
            "an entry is {} bytes: with Arc's counts more than a 160-byte malloc block",
            size_of::<Entry>()
        );
    }
}
