//! [`QuotaEngine`]: the quota layer's store on top of a control-plane store,
//! counting in memory against durably reserved blocks.

mod config;
mod entry;
mod slow;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use portcullis_quota::store::{Answer, DayUsage, Decision, QuotaRequest, QuotaStore, UsageUpdate};
use time::Date;
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::reservation::{CounterChange, CounterRef};
use crate::state::PairRef;
use crate::store::ControlPlaneStore;

pub use config::EngineConfig;
use entry::{EngineInner, Entry, Handle, Period, Shared, millis, ms32, now_ms};
use slow::{consume_slow, report_spent, settle};

/// The boxed future of [`QuotaEngine`]'s slow path.
pub type ConsumeFuture = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + Send>>;

/// The quota layer's store ([`QuotaStore`]) on a control-plane store: the
/// hot path counts in memory, against blocks reserved durably through
/// [`QuotaReservation`](crate::reservation::QuotaReservation).
///
/// - A request whose key holds a block takes one from it with a
///   compare-and-swap, as `portcullis-quota`'s in-memory store does: no lock,
///   no I/O, no allocation.
/// - When the block is spent, one request reports it and reserves the next
///   in one store call ([`QuotaReservation::renew`](crate::reservation::QuotaReservation::renew); the others wait for
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
///   ([`QuotaReservation::counter_changes`](crate::reservation::QuotaReservation::counter_changes): UpdateUsage on any replica), so
///   such a change takes effect on every replica as soon as it hears of it
///   (pub/sub on Redis: milliseconds, within 1 s). A changed plan quota
///   reaches the engine in the requests themselves, and the block reserved
///   under the old quota is given back at once.
/// - A request that finds the quota spent while other replicas still hold
///   blocks of it ([`Grant::outstanding`](crate::reservation::Grant::outstanding)) asks them to give back what they
///   have not spent ([`QuotaReservation::reclaim`](crate::reservation::QuotaReservation::reclaim)) and waits for it, up to
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
/// With [`EngineConfig::count_in_place`], on a store that can
/// ([`QuotaReservation::consume_in_place`](crate::reservation::QuotaReservation::consume_in_place):
/// the in-memory store), none of the above happens: each request is counted
/// on the store's counter, no block is held and no entry is kept.
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

    /// Drops the entries that carry nothing: no block, no fresh "quota
    /// spent" mark, and in use by no request. Answers how many were dropped.
    fn evict_idle(&self) -> usize {
        let entries = &self.inner.entries;
        let before = entries.len();
        let now = now_ms();
        entries.retain(|handle, ()| !handle.0.evictable(now, 1));
        let evicted = before.saturating_sub(entries.len());
        self.evicted(evicted);
        evicted
    }

    /// [`evict_idle`](Self::evict_idle) for these entries only (the
    /// sweep's), which the caller holds (one reference each besides the
    /// map's).
    fn evict(&self, held: Vec<Arc<Entry>>) {
        let now = now_ms();
        let mut evicted = 0;
        for entry in held {
            let pair = (entry.plan.as_str(), entry.key.as_bytes());
            let removed = self
                .inner
                .entries
                // The shard's write lock is held while this runs: no other
                // reference can be taken from the map meanwhile.
                .remove_if(&pair as &dyn PairRef, |handle, ()| {
                    handle.0.evictable(now, 2)
                });
            evicted += usize::from(removed.is_some());
        }
        self.evicted(evicted);
    }

    /// After `evicted` entries were dropped: gives the map's memory back
    /// when it is mostly empty, and forgets the plans and periods no entry
    /// uses any more.
    fn evicted(&self, evicted: usize) {
        if evicted == 0 {
            return;
        }
        let entries = &self.inner.entries;
        // Rebuilding the table costs a pass over what is left: only when
        // most of it is empty.
        if entries.len().saturating_mul(4) < entries.capacity() {
            entries.shrink_to_fit();
        }
        self.inner.shared().prune();
    }

    /// Reports what each block has spent since the last report, keeping the
    /// blocks, settles the blocks that are spent or older than
    /// [`EngineConfig::block_ttl`] (the final report, with what is unspent
    /// given back), and forgets the keys that then hold no block (and are
    /// not marked spent): their memory goes back to the allocator, and a
    /// key seen again starts afresh from the store (its first block is
    /// [`EngineConfig::initial_block`]). Blocks whose slow path is busy are
    /// skipped this time.
    ///
    /// # Errors
    ///
    /// The first store failure; the unreported counts stay to report later.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.sweep(true).await
    }

    /// [`flush`](Self::flush) without the reports of blocks still held
    /// (`report` false): settles only the blocks that are spent or expired,
    /// and drops their entries.
    async fn sweep(&self, report: bool) -> Result<(), StoreError> {
        let ttl = millis(self.inner.config.block_ttl);
        let entries = if report {
            self.all_entries()
        } else {
            // Only the entries whose block may be due, read without their
            // locks: a pass costs a load or two an entry, not a lock.
            let now = ms32(now_ms());
            self.inner
                .entries
                .iter()
                .filter(|e| e.key().0.due(now, ttl))
                .map(|e| e.key().0.clone())
                .collect()
        };
        let settled = self.settle_due(&entries, report).await;
        // Even when the store fails: an entry whose report failed keeps
        // its block, and so is not dropped.
        if report {
            drop(entries);
            self.evict_idle();
        } else {
            self.evict(entries);
        }
        settled
    }

    /// [`sweep`](Self::sweep)'s store calls, up to the first failure.
    async fn settle_due(&self, entries: &[Arc<Entry>], report: bool) -> Result<(), StoreError> {
        let ttl = millis(self.inner.config.block_ttl);
        for entry in entries {
            let Some(mut slow) = entry.try_lock() else {
                continue;
            };
            let now = now_ms();
            let held_for = ms32(now).wrapping_sub(slow.since());
            let expired = slow.lease.is_some() && u64::from(held_for) >= ttl;
            if expired || entry.spent() {
                settle(&self.inner.store, entry, &mut slow).await?;
            } else if report {
                report_spent(&self.inner.store, entry, &mut slow).await?;
            }
        }
        Ok(())
    }

    /// How often [`spawn_flusher`](Self::spawn_flusher)'s task looks for
    /// expired blocks: a quarter of [`EngineConfig::block_ttl`] (at least
    /// [`MIN_SWEEP`]), or `period` when that is shorter. A block is then
    /// given back, and its entry dropped, at most a quarter of a
    /// `block_ttl` after it expires (it was up to a whole `period`).
    fn sweep_period(&self, period: Duration) -> Duration {
        (self.inner.config.block_ttl / 4).max(MIN_SWEEP).min(period)
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
            let mut slow = entry.lock().await;
            settle(&self.inner.store, &entry, &mut slow).await?;
        }
        Ok(())
    }

    /// Gives back the block of one key in one plan, and forgets that the
    /// key's quota was spent, so the next request asks the store. The
    /// engine does it itself for UpdateUsage made through it, and (with
    /// [`spawn_flusher`](Self::spawn_flusher)) for every change the store
    /// announces ([`QuotaReservation::counter_changes`](crate::reservation::QuotaReservation::counter_changes)).
    ///
    /// # Errors
    ///
    /// The store's failure to take the report.
    pub async fn release(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        let Some(entry) = self.find(plan_id, key_id) else {
            return Ok(());
        };
        let mut slow = entry.lock().await;
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
    ///   reports what was spent, which bounds how stale GetUsage is;
    /// - in between, every quarter of [`EngineConfig::block_ttl`] (when
    ///   that is shorter than `period`), it gives back the blocks that are
    ///   spent or older than `block_ttl` and drops their entries, so a
    ///   key's entry lives its block's `block_ttl` and at most a quarter
    ///   more, not up to a `period` more (the memory it holds follows how
    ///   many keys hold a block);
    /// - it follows the store's [`counter_changes`](crate::reservation::QuotaReservation::counter_changes)
    ///   (UpdateUsage made on any replica) and gives back the changed
    ///   counters' blocks at once, so the change takes effect here as soon
    ///   as the store announces it.
    ///
    /// The task ends when the last clone of the engine is dropped.
    ///
    /// # Panics
    ///
    /// If `period` is zero (as [`tokio::time::interval`]).
    pub fn spawn_flusher(&self, period: Duration) -> tokio::task::JoinHandle<()>
    where
        S: 'static,
    {
        let weak = Arc::downgrade(&self.inner);
        let mut changes = self.inner.store.counter_changes();
        let sweep = self.sweep_period(period);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(sweep);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reported = tokio::time::Instant::now();
            let mut following = true;
            loop {
                tokio::select! {
                    at = ticks.tick() => {
                        let Some(inner) = weak.upgrade() else { return };
                        let engine = QuotaEngine { inner };
                        // The first tick is at once: the reports wait a
                        // whole `period`, as they always did.
                        let report = at.duration_since(reported) >= period;
                        if report {
                            reported = at;
                        }
                        if let Err(error) = engine.sweep(report).await {
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

/// The shortest interval at which [`QuotaEngine::spawn_flusher`]'s task
/// looks for expired blocks (a pass over every entry), whatever
/// [`EngineConfig::block_ttl`] is.
const MIN_SWEEP: Duration = Duration::from_millis(10);

impl<S: ControlPlaneStore + Clone> QuotaStore for QuotaEngine<S> {
    type Error = StoreError;
    type Future = ConsumeFuture;

    #[inline]
    fn consume(
        &self,
        request: &QuotaRequest<'_>,
    ) -> Answer<Result<Decision, StoreError>, ConsumeFuture> {
        if self.inner.config.count_in_place
            && let Some(decision) = self.inner.store.consume_in_place(request)
        {
            return Answer::Ready(decision);
        }
        let pair = (request.plan_id, request.key_id.as_bytes());
        let fast = self
            .inner
            .entries
            .get(&pair as &dyn PairRef)
            .and_then(|entry| entry.key().0.consume_fast(request));
        // The map's guard is released above: `entry` below may insert.
        if let Some(decision) = fast {
            return Answer::Ready(Ok(decision));
        }
        let entry = self.entry(request.plan_id, request.key_id);
        let period = Period::of(request);
        let inner = self.inner.clone();
        Answer::Pending(Box::pin(async move {
            consume_slow(&inner, &entry, period).await
        }))
    }

    fn update(
        &self,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
    ) -> impl Future<Output = Result<DayUsage, StoreError>> + Send {
        // Counting in place, no entry holds a block: none is made here.
        let entry = if self.inner.config.count_in_place {
            self.find(request.plan_id, request.key_id)
        } else {
            Some(self.entry(request.plan_id, request.key_id))
        };
        let counter = CounterRef::from_request(request);
        let inner = self.inner.clone();
        async move {
            // The entry's lock is held until the update is made.
            let _held = match &entry {
                Some(entry) => {
                    let mut slow = entry.lock().await;
                    settle(&inner.store, entry, &mut slow).await?;
                    Some(slow)
                }
                None => None,
            };
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
                let mut slow = entry.lock().await;
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
