//! The stores a [`Gateway`](crate::Gateway) runs on, one type whatever
//! `[store]` says: [`GatewayStore`] (keys, plans, usage and quota counters)
//! and [`GatewayThrottleStore`] (the throttle's buckets).

use std::future::Future;
use std::pin::Pin;

use portcullis_api_key::KeyDigest;
use portcullis_control_plane::reservation::{
    CounterChange, CounterRef, Grant, QuotaReservation, Report,
};
use portcullis_control_plane::{
    ApiKey, ApiKeyFilter, ApiKeyUpdate, ControlPlaneStore, LocalStore, NewApiKey, NewUsagePlan,
    Page, PageRequest, Snapshot, StoreError, UsagePlanKey, UsagePlanRecord, UsageRecord,
};
use portcullis_quota::store::{Decision, QuotaRequest, UsageUpdate};
use portcullis_throttle::InMemoryThrottleStore;
use portcullis_throttle::store::{Answer, BucketCheck, Outcome, ThrottleStore, ThrottleStoreError};
use time::Date;
use tokio::sync::{broadcast, watch};

/// The control-plane store of a [`Gateway`](crate::Gateway): the embedded
/// or in-memory [`LocalStore`], or Redis (`RedisControlPlane`, with the
/// `redis` feature). The API-key layer reads it through a `KeyCache` and the
/// quota layer through a `QuotaEngine`, so the hot path never waits on it;
/// the management API writes to it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum GatewayStore {
    /// `[store] kind = "embedded"` or `"memory"`.
    Local(LocalStore),
    /// `[store] kind = "redis"`.
    #[cfg(feature = "redis")]
    Redis(portcullis_redis::RedisControlPlane),
}

/// Calls `$call` on whichever store this is.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            GatewayStore::Local($store) => $call.await,
            #[cfg(feature = "redis")]
            GatewayStore::Redis($store) => $call.await,
        }
    };
}

impl QuotaReservation for GatewayStore {
    async fn reserve(&self, counter: CounterRef, want: u64) -> Result<Grant, StoreError> {
        each!(self, s => s.reserve(counter, want))
    }

    async fn report(&self, counter: CounterRef, report: Report) -> Result<(), StoreError> {
        each!(self, s => s.report(counter, report))
    }

    async fn renew(
        &self,
        counter: CounterRef,
        report: Option<Report>,
        want: u64,
    ) -> Result<Grant, StoreError> {
        each!(self, s => s.renew(counter, report, want))
    }

    async fn reclaim(&self, counter: &CounterRef) -> Result<(), StoreError> {
        each!(self, s => s.reclaim(counter))
    }

    fn consume_in_place(&self, request: &QuotaRequest<'_>) -> Option<Result<Decision, StoreError>> {
        match self {
            GatewayStore::Local(s) => s.consume_in_place(request),
            // Shared by replicas: blocks (leases).
            #[cfg(feature = "redis")]
            GatewayStore::Redis(_) => None,
        }
    }

    fn counter_changes(&self) -> broadcast::Receiver<CounterChange> {
        match self {
            GatewayStore::Local(s) => s.counter_changes(),
            #[cfg(feature = "redis")]
            GatewayStore::Redis(s) => s.counter_changes(),
        }
    }
}

impl ControlPlaneStore for GatewayStore {
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey, StoreError> {
        each!(self, s => s.create_api_key(key))
    }

    async fn import_api_keys(&self, keys: Vec<NewApiKey>) -> Result<Vec<ApiKey>, StoreError> {
        each!(self, s => s.import_api_keys(keys))
    }

    async fn put_api_key(&self, key: ApiKey) -> Result<ApiKey, StoreError> {
        each!(self, s => s.put_api_key(key))
    }

    async fn get_api_key(&self, id: &str) -> Result<ApiKey, StoreError> {
        each!(self, s => s.get_api_key(id))
    }

    async fn find_api_key(&self, digest: &KeyDigest) -> Result<Option<ApiKey>, StoreError> {
        each!(self, s => s.find_api_key(digest))
    }

    async fn get_api_keys(
        &self,
        filter: ApiKeyFilter,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        each!(self, s => s.get_api_keys(filter, page))
    }

    async fn update_api_key(&self, id: &str, update: ApiKeyUpdate) -> Result<ApiKey, StoreError> {
        each!(self, s => s.update_api_key(id, update))
    }

    async fn delete_api_key(&self, id: &str) -> Result<(), StoreError> {
        each!(self, s => s.delete_api_key(id))
    }

    async fn create_usage_plan(&self, plan: NewUsagePlan) -> Result<UsagePlanRecord, StoreError> {
        each!(self, s => s.create_usage_plan(plan))
    }

    async fn get_usage_plan(&self, id: &str) -> Result<UsagePlanRecord, StoreError> {
        each!(self, s => s.get_usage_plan(id))
    }

    async fn get_usage_plans(
        &self,
        key_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<UsagePlanRecord>, StoreError> {
        each!(self, s => s.get_usage_plans(key_id, page))
    }

    async fn update_usage_plan(
        &self,
        plan: UsagePlanRecord,
    ) -> Result<UsagePlanRecord, StoreError> {
        each!(self, s => s.update_usage_plan(plan))
    }

    async fn delete_usage_plan(&self, id: &str) -> Result<(), StoreError> {
        each!(self, s => s.delete_usage_plan(id))
    }

    async fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
        key_type: &str,
    ) -> Result<UsagePlanKey, StoreError> {
        each!(self, s => s.create_usage_plan_key(plan_id, key_id, key_type))
    }

    async fn get_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> Result<UsagePlanKey, StoreError> {
        each!(self, s => s.get_usage_plan_key(plan_id, key_id))
    }

    async fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        name_query: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<UsagePlanKey>, StoreError> {
        each!(self, s => s.get_usage_plan_keys(plan_id, name_query, page))
    }

    async fn delete_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        each!(self, s => s.delete_usage_plan_key(plan_id, key_id))
    }

    async fn update_usage(
        &self,
        counter: CounterRef,
        update: UsageUpdate,
    ) -> Result<UsageRecord, StoreError> {
        each!(self, s => s.update_usage(counter, update))
    }

    async fn get_usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        each!(self, s => s.get_usage(plan_id, key_id, from, to))
    }

    async fn usage_keys(&self, plan_id: &str) -> Result<Vec<String>, StoreError> {
        each!(self, s => s.usage_keys(plan_id))
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        each!(self, s => s.snapshot())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        match self {
            GatewayStore::Local(s) => s.subscribe(),
            #[cfg(feature = "redis")]
            GatewayStore::Redis(s) => s.subscribe(),
        }
    }

    fn is_available(&self) -> bool {
        match self {
            GatewayStore::Local(s) => s.is_available(),
            #[cfg(feature = "redis")]
            GatewayStore::Redis(s) => s.is_available(),
        }
    }
}

/// The future of a [`GatewayThrottleStore`] decision that is not made
/// synchronously (a Redis round trip).
pub type ThrottleFuture = Pin<Box<dyn Future<Output = Result<Outcome, ThrottleStoreError>> + Send>>;

/// The throttle's store of a [`Gateway`](crate::Gateway): buckets in this
/// process, or on Redis (shared by a fleet) with `[store] kind = "redis"`.
/// The in-memory store answers synchronously, so its path neither boxes nor
/// polls.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum GatewayThrottleStore {
    /// Buckets in this process (`embedded` and `memory` stores).
    Memory(InMemoryThrottleStore),
    /// Buckets on Redis, every request decided by a script.
    #[cfg(feature = "redis")]
    Redis(portcullis_redis::RedisThrottleStore),
    /// Buckets on Redis, spent from leases in memory (what `[store] kind =
    /// "redis"` builds): about one script per lease, not per request, with
    /// the same fleet-wide bound (see `LeasedThrottleStore`).
    #[cfg(feature = "redis")]
    RedisLeased(portcullis_redis::LeasedThrottleStore),
}

impl GatewayThrottleStore {
    /// Gives back the throttle leases this replica holds (Redis leases
    /// only; nothing to do for the others).
    ///
    /// # Errors
    ///
    /// The first lease Redis did not take back (it is counted spent at its
    /// deadline, within 250 ms).
    pub async fn shutdown(&self) -> Result<(), ThrottleStoreError> {
        match self {
            #[cfg(feature = "redis")]
            GatewayThrottleStore::RedisLeased(store) => store.shutdown().await,
            _ => Ok(()),
        }
    }

    /// Starts the leases' background task (gives back unused leases), on a
    /// Tokio runtime.
    pub(crate) fn spawn_background(&self) {
        #[cfg(feature = "redis")]
        if let GatewayThrottleStore::RedisLeased(store) = self {
            drop(store.spawn_flusher(std::time::Duration::from_millis(25)));
        }
    }
}

impl ThrottleStore for GatewayThrottleStore {
    type Future = ThrottleFuture;

    #[inline]
    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future> {
        match self {
            GatewayThrottleStore::Memory(store) => match store.acquire(checks, now_unix_nanos) {
                Answer::Ready(outcome) => Answer::Ready(outcome),
                Answer::Pending(ready) => Answer::Pending(Box::pin(ready)),
            },
            #[cfg(feature = "redis")]
            GatewayThrottleStore::Redis(store) => store.acquire(checks, now_unix_nanos),
            #[cfg(feature = "redis")]
            GatewayThrottleStore::RedisLeased(store) => store.acquire(checks, now_unix_nanos),
        }
    }
}

/// The API-key store of a [`Gateway`](crate::Gateway): a cache of the
/// control-plane store.
pub type GatewayKeyStore = portcullis_control_plane::KeyCache<GatewayStore>;

/// The quota store of a [`Gateway`](crate::Gateway): counting in memory
/// against blocks reserved durably in the control-plane store (embedded,
/// Redis), or, for `[store] kind = "memory"`, on the store's counters
/// themselves, where a block would save nothing
/// ([`EngineConfig::count_in_place`](portcullis_control_plane::EngineConfig::count_in_place)).
pub type GatewayQuotaStore = portcullis_control_plane::QuotaEngine<GatewayStore>;
