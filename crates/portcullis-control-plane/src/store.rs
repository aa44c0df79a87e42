//! The [`ControlPlaneStore`] trait and the local stores: [`MemoryStore`] and
//! (in [`crate::embedded`]) [`EmbeddedStore`](crate::EmbeddedStore).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use portcullis_api_key::KeyDigest;
use portcullis_core::clock::{SharedClock, SystemClock};
use portcullis_quota::store::{Decision, QuotaRequest, UsageUpdate};
use time::Date;
use tokio::sync::{broadcast, watch};

use crate::error::StoreError;
use crate::journal::Journal;
use crate::model::{
    ApiKey, ApiKeyFilter, ApiKeyUpdate, NewApiKey, Page, PageRequest, UsagePlanKey,
    UsagePlanRecord, UsageRecord,
};
use crate::reservation::{CounterChange, CounterRef, Grant, QuotaReservation, Report};
use crate::state::{Change, NewUsagePlan, State, StoreOptions};

/// Keys, plans and their associations at one moment: what a cache in front
/// of the store loads.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every API key.
    pub api_keys: Vec<ApiKey>,
    /// Every usage plan.
    pub usage_plans: Vec<UsagePlanRecord>,
    /// `(key id, plan ids)` for every key in at least one plan.
    pub key_plans: Vec<(String, Vec<String>)>,
    /// The configuration version the snapshot was taken at (see
    /// [`ControlPlaneStore::subscribe`]).
    pub version: u64,
}

/// The control plane's store: API keys, usage plans, plan–key associations,
/// usage records and (through [`QuotaReservation`]) quota counters.
///
/// Every operation is async with a `Send` future and answers owned values,
/// so a networked backend (Redis) fits. Every mutating operation validates
/// its input against the stored state first: when it answers an error other
/// than [`StoreError::Backend`] or [`StoreError::Unreachable`], nothing was
/// changed.
///
/// List operations page as API Gateway does: items in id order, at most
/// `limit` (1 to 500, default 25) a page, and a `position` to continue from.
pub trait ControlPlaneStore: QuotaReservation {
    /// CreateApiKey. Generates the id and the value when they are not given.
    /// A duplicate id or value is a [`StoreError::Conflict`].
    fn create_api_key(
        &self,
        key: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// ImportApiKeys: all or none.
    fn import_api_keys(
        &self,
        keys: Vec<NewApiKey>,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Inserts or replaces a whole key record, by id: for seeding and for
    /// adapters that write records built elsewhere. Another key with the same
    /// digest is a [`StoreError::Conflict`].
    fn put_api_key(&self, key: ApiKey) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// GetApiKey.
    fn get_api_key(&self, id: &str) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// The key whose value has this digest.
    fn find_api_key(
        &self,
        digest: &KeyDigest,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;

    /// GetApiKeys.
    fn get_api_keys(
        &self,
        filter: ApiKeyFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<ApiKey>, StoreError>> + Send;

    /// UpdateApiKey.
    fn update_api_key(
        &self,
        id: &str,
        update: ApiKeyUpdate,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// DeleteApiKey: also removes the key from its usage plans.
    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// CreateUsagePlan. The plan needs a name.
    fn create_usage_plan(
        &self,
        plan: NewUsagePlan,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send;

    /// GetUsagePlan.
    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send;

    /// GetUsagePlans, optionally only the plans `key_id` is in.
    fn get_usage_plans(
        &self,
        key_id: Option<&str>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanRecord>, StoreError>> + Send;

    /// UpdateUsagePlan: replaces the plan with the same id (the management
    /// API applies the patch operations to the current plan and validates
    /// the result). A stage change that would put a key in two plans on one
    /// stage is a [`StoreError::Conflict`].
    fn update_usage_plan(
        &self,
        plan: UsagePlanRecord,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send;

    /// DeleteUsagePlan: also removes its key associations and counters
    /// (usage records stay, for billing).
    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// CreateUsagePlanKey. A key already in the plan, or in another plan on
    /// one of its stages, is a [`StoreError::Conflict`].
    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
        key_type: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send;

    /// GetUsagePlanKey.
    fn get_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send;

    /// GetUsagePlanKeys, optionally only keys whose name starts with
    /// `name_query`.
    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        name_query: Option<&str>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send;

    /// DeleteUsagePlanKey.
    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// UpdateUsage on the counter's current period. Blocks outstanding on
    /// other replicas keep counting; see [`crate::reservation`].
    fn update_usage(
        &self,
        counter: CounterRef,
        update: UsageUpdate,
    ) -> impl Future<Output = Result<UsageRecord, StoreError>> + Send;

    /// GetUsage for one key: its records from `from` to `to`, in day order.
    fn get_usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<UsageRecord>, StoreError>> + Send;

    /// The ids of the keys with counters or usage records in the plan.
    fn usage_keys(
        &self,
        plan_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Every key, plan and association.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// The configuration version: it changes after every change to keys,
    /// plans or associations made through this store.
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// Whether the store can be reached now: a readiness signal for load
    /// balancers and Kubernetes probes. A networked store answers `false`
    /// while its circuit breaker is open; a local store is always
    /// available (the default).
    fn is_available(&self) -> bool {
        true
    }
}

/// How many counter changes a slow follower may fall behind before it is
/// told to give back every block.
const COUNTER_CHANGES_CAPACITY: usize = 256;

pub(crate) struct Inner {
    state: Mutex<State>,
    journal: Journal,
    clock: SharedClock,
    version: watch::Sender<u64>,
    counter_changes: broadcast::Sender<CounterChange>,
}

impl Inner {
    pub(crate) fn new(state: State, journal: Journal, clock: SharedClock) -> Self {
        Self {
            state: Mutex::new(state),
            journal,
            clock,
            version: watch::Sender::new(0),
            counter_changes: broadcast::Sender::new(COUNTER_CHANGES_CAPACITY),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is only changed by `State::apply`, which cannot panic
        // half-way in a way that breaks an invariant the next operation
        // relies on; a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> Result<T, StoreError>) -> Result<T, StoreError> {
        f(&self.lock())
    }

    /// [`QuotaReservation::consume_in_place`]: only when the journal is
    /// nowhere, so a change need not be written before it is applied.
    fn consume_in_place(&self, request: &QuotaRequest<'_>) -> Option<Result<Decision, StoreError>> {
        matches!(self.journal, Journal::Memory).then(|| self.lock().consume_in_place(request))
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&State) -> Result<(T, Vec<Change>), StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.lock();
        let (out, changes) = f(&state)?;
        if changes.is_empty() {
            return Ok(out);
        }
        self.journal.write(&changes)?;
        let config = changes.iter().any(Change::is_config);
        state.apply(changes);
        drop(state);
        if config {
            self.version.send_modify(|v| *v += 1);
        }
        Ok(out)
    }
}

/// A store whose state lives in this process: [`MemoryStore`] (nothing
/// written anywhere) and [`EmbeddedStore`](crate::EmbeddedStore) (every change
/// written to a redb database, durably, before it is applied). They are one
/// type with two constructors, [`LocalStore::memory`] and
/// [`LocalStore::open`].
///
/// Clones share the same state. Reads take a mutex for as long as a copy of
/// the answer takes; the hot path never reads the store (see
/// [`QuotaEngine`](crate::QuotaEngine) and [`KeyCache`](crate::KeyCache)).
pub struct LocalStore {
    pub(crate) inner: Arc<Inner>,
}

impl Clone for LocalStore {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore").finish_non_exhaustive()
    }
}

/// The in-memory store, for tests and throwaway use: nothing survives the
/// process.
pub type MemoryStore = LocalStore;

impl LocalStore {
    /// An empty in-memory store with the default options and the system
    /// clock.
    #[must_use]
    pub fn memory() -> Self {
        Self::memory_with(StoreOptions::default(), Arc::new(SystemClock))
    }

    /// An empty in-memory store.
    #[must_use]
    pub fn memory_with(options: StoreOptions, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner::new(State::new(options), Journal::Memory, clock)),
        }
    }

    /// Runs a read now.
    fn read<T>(&self, f: impl FnOnce(&State) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.inner.read(f)
    }

    /// Runs a write; on a blocking journal, on tokio's blocking pool when a
    /// runtime is there.
    fn write<T, F>(&self, f: F) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&State, time::OffsetDateTime) -> Result<(T, Vec<Change>), StoreError>
            + Send
            + 'static,
    {
        let inner = self.inner.clone();
        async move {
            let blocks = inner.journal.blocks();
            let run = move || {
                let now = inner.clock.now();
                inner.write(|state| f(state, now))
            };
            if blocks && let Ok(handle) = tokio::runtime::Handle::try_current() {
                return handle
                    .spawn_blocking(run)
                    .await
                    .map_err(StoreError::backend)?;
            }
            run()
        }
    }

    /// How many quota counters the store holds (one for each plan and key
    /// counted, until its period ends and it carries nothing more), for
    /// memory measurements.
    #[must_use]
    pub fn quota_counters(&self) -> usize {
        self.read(|s| Ok(s.quota_counters())).unwrap_or(0)
    }

    /// The quota counter's durable state, for tests and diagnostics:
    /// `(budget, reserved, used)` in the current period.
    #[must_use]
    pub fn counter_state(&self, plan_id: &str, key_id: &str) -> Option<(u64, u64, u64)> {
        self.read(|s| Ok(s.counter(plan_id, key_id)))
            .ok()
            .flatten()
            .map(|c| (c.budget, c.reserved, c.used))
    }
}

impl QuotaReservation for LocalStore {
    fn reserve(
        &self,
        counter: CounterRef,
        want: u64,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send {
        self.write(move |s, _| s.reserve(&counter, want))
    }

    fn report(
        &self,
        counter: CounterRef,
        report: Report,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.write(move |s, _| s.report(&counter, report))
    }

    fn renew(
        &self,
        counter: CounterRef,
        report: Option<Report>,
        want: u64,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send {
        self.write(move |s, _| s.renew(&counter, report, want))
    }

    /// In memory (nothing written anywhere, one process): counts the
    /// request on the counter under the store's lock. The embedded store
    /// answers `None`: a block saves a durable write a request there.
    fn consume_in_place(&self, request: &QuotaRequest<'_>) -> Option<Result<Decision, StoreError>> {
        self.inner.consume_in_place(request)
    }

    fn reclaim(&self, counter: &CounterRef) -> impl Future<Output = Result<(), StoreError>> + Send {
        // Nobody listening is fine: then nobody holds a block.
        let _ = self.inner.counter_changes.send(CounterChange::Counter {
            plan_id: counter.plan_id.clone(),
            key_id: counter.key_id.clone(),
        });
        async { Ok(()) }
    }

    fn counter_changes(&self) -> broadcast::Receiver<CounterChange> {
        self.inner.counter_changes.subscribe()
    }
}

impl ControlPlaneStore for LocalStore {
    fn create_api_key(
        &self,
        key: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.write(move |s, now| {
            let (mut keys, changes) = s.create_api_keys(vec![key], now)?;
            let key = keys
                .pop()
                .ok_or_else(|| StoreError::Backend("no key was built".into()))?;
            Ok((key, changes))
        })
    }

    fn import_api_keys(
        &self,
        keys: Vec<NewApiKey>,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send {
        self.write(move |s, now| s.create_api_keys(keys, now))
    }

    fn put_api_key(&self, key: ApiKey) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.write(move |s, _| s.put_api_key(key))
    }

    fn get_api_key(&self, id: &str) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        std::future::ready(self.read(|s| s.api_key(id)))
    }

    fn find_api_key(
        &self,
        digest: &KeyDigest,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send {
        std::future::ready(self.read(|s| Ok(s.api_key_by_digest(digest))))
    }

    fn get_api_keys(
        &self,
        filter: ApiKeyFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<ApiKey>, StoreError>> + Send {
        std::future::ready(self.read(|s| s.api_keys(&filter, &page)))
    }

    fn update_api_key(
        &self,
        id: &str,
        update: ApiKeyUpdate,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        let id = id.to_owned();
        self.write(move |s, now| s.update_api_key(&id, update, now))
    }

    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let id = id.to_owned();
        self.write(move |s, _| s.delete_api_key(&id))
    }

    fn create_usage_plan(
        &self,
        plan: NewUsagePlan,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.write(move |s, _| s.create_usage_plan(plan))
    }

    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        std::future::ready(self.read(|s| s.usage_plan(id)))
    }

    fn get_usage_plans(
        &self,
        key_id: Option<&str>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanRecord>, StoreError>> + Send {
        std::future::ready(self.read(|s| s.usage_plans(key_id, &page)))
    }

    fn update_usage_plan(
        &self,
        plan: UsagePlanRecord,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.write(move |s, _| s.replace_usage_plan(plan))
    }

    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let id = id.to_owned();
        self.write(move |s, _| s.delete_usage_plan(&id))
    }

    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
        key_type: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        let (plan_id, key_id, key_type) =
            (plan_id.to_owned(), key_id.to_owned(), key_type.to_owned());
        self.write(move |s, _| s.create_usage_plan_key(&plan_id, &key_id, &key_type))
    }

    fn get_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        std::future::ready(self.read(|s| s.usage_plan_key(plan_id, key_id)))
    }

    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        name_query: Option<&str>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send {
        std::future::ready(self.read(|s| s.usage_plan_keys(plan_id, name_query, &page)))
    }

    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (plan_id, key_id) = (plan_id.to_owned(), key_id.to_owned());
        self.write(move |s, _| s.delete_usage_plan_key(&plan_id, &key_id))
    }

    fn update_usage(
        &self,
        counter: CounterRef,
        update: UsageUpdate,
    ) -> impl Future<Output = Result<UsageRecord, StoreError>> + Send {
        let inner = self.inner.clone();
        let change = CounterChange::Counter {
            plan_id: counter.plan_id.clone(),
            key_id: counter.key_id.clone(),
        };
        let write = self.write(move |s, _| s.update_usage(&counter, update));
        async move {
            let record = write.await?;
            // Nobody listening is fine.
            let _ = inner.counter_changes.send(change);
            Ok(record)
        }
    }

    fn get_usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<UsageRecord>, StoreError>> + Send {
        std::future::ready(self.read(|s| s.usage(plan_id, key_id, from, to)))
    }

    fn usage_keys(
        &self,
        plan_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        std::future::ready(self.read(|s| Ok(s.usage_keys(plan_id))))
    }

    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send {
        let version = *self.inner.version.borrow();
        std::future::ready(self.read(|s| {
            let api_keys = s.all_api_keys();
            let key_plans = api_keys
                .iter()
                .map(|k| (k.id.clone(), s.key_plan_ids(&k.id)))
                .filter(|(_, plans)| !plans.is_empty())
                .collect();
            Ok(Snapshot {
                api_keys,
                usage_plans: s.all_usage_plans(),
                key_plans,
                version,
            })
        }))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }
}
