//! The store's handle: connecting, its settings, and its reads.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_api_key::KeyDigest;
use portcullis_control_plane::{ApiKey, StoreError, StoreOptions, UsagePlanKey, UsagePlanRecord};
use portcullis_core::clock::{SharedClock, SystemClock};
use redis::AsyncCommands;
use tokio::sync::{broadcast, watch};

use crate::config::RedisConfig;
use crate::connection::RedisConnection;

use super::error::{backend, not_found};
use super::follow::follow;
use super::inner::Inner;
use super::names::Names;
use super::records::{decode_key, decode_plan};
use super::scripts::read_script;

/// The shortest call deadline the control-plane store uses: its calls are
/// management operations, snapshots and block reservations, never one per
/// request, so the data plane's 20 ms would only make them fail.
pub const MIN_CONTROL_PLANE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a replica reads the configuration version even when pub/sub is
/// quiet, by default: the bound on propagation when a change message is lost.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How many counter changes a slow engine may fall behind before it is told
/// to give back every block.
const COUNTER_CHANGES_CAPACITY: usize = 256;

/// [`ControlPlaneStore`](portcullis_control_plane::ControlPlaneStore) and
/// [`QuotaReservation`](portcullis_control_plane::reservation::QuotaReservation)
/// on Redis or Redis Cluster: API keys, usage plans, plan–key associations,
/// usage records and quota counters shared by every replica of a fleet.
///
/// # Atomicity
///
/// - **Configuration** (keys, plans, associations): a change is validated in
///   Rust with `portcullis-control-plane`'s own checks against what it read,
///   then written by one script (`apply.lua`) only if the configuration
///   version has not moved since the reads (optimistic concurrency, as
///   `WATCH`/`MULTI`/`EXEC`, retried when another change came between). The
///   same script raises the version and publishes it. Bad input, a conflict
///   or a limit is refused before anything is written.
/// - **Counters**: a block grant, a report and UpdateUsage are one script call
///   each (`counter.lua`), the local store's arithmetic rule for rule, so a
///   fleet never reserves more than the quota and generations behave as on
///   the local stores.
///
/// # Keys and Cluster
///
/// Every key carries the hash tag `{<prefix>:cp}`: on Cluster the whole
/// control plane lives in one slot, on one master (and its replicas), and no
/// operation needs cross-slot atomicity. That is what a shared configuration
/// asks for (at most 10,000 keys and 300 plans by default), and its traffic is
/// one call per block, per change and per flush, never per request.
///
/// | key | type | holds |
/// |---|---|---|
/// | `{P:cp}:version` | string | the configuration version |
/// | `{P:cp}:keys` | hash | key id → key record (JSON) |
/// | `{P:cp}:ids` | sorted set | key ids, for paging in id order |
/// | `{P:cp}:digests` | hash | SHA-256 digest (hex) → key id |
/// | `{P:cp}:plans` | hash | plan id → plan record (JSON) |
/// | `{P:cp}:pk:<plan>` / `{P:cp}:kp:<key>` | sets | a plan's keys / a key's plans |
/// | `{P:cp}:ctr:<len>:<plan>:<key>` | hash | a quota counter |
/// | `{P:cp}:days:<len>:<plan>:<key>` | hash | usage records, Julian day → `used:remaining` |
/// | `{P:cp}:usage:<plan>` | set | keys the plan has counted |
///
/// # Propagation
///
/// A change is announced on this replica at once (the version the script
/// answered), and on every other replica through pub/sub on the channel
/// `<prefix>:cp:changes` (on Cluster, ordinary `PUBLISH`, which every node
/// forwards, so a replica subscribes on any one node). A replica also reads
/// the version key when its subscription (re)connects and every
/// [`poll_interval`](Self::poll_interval), so one that missed messages
/// resyncs. [`subscribe`](portcullis_control_plane::ControlPlaneStore::subscribe) follows that version;
/// `KeyCache::spawn_sync` reloads on it.
#[derive(Clone)]
pub struct RedisControlPlane {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for RedisControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisControlPlane")
            .field("connection", &self.inner.connection)
            .field("tag", &self.inner.names.tag)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl RedisControlPlane {
    /// Connects with `config` (its key prefix, and a call deadline of at
    /// least [`MIN_CONTROL_PLANE_TIMEOUT`]) and starts following changes.
    ///
    /// # Errors
    ///
    /// As [`RedisConfig::connect`]; a key prefix must not contain `{` or `}`.
    pub async fn connect(
        config: &RedisConfig,
        options: StoreOptions,
    ) -> Result<Self, redis::RedisError> {
        Self::connect_with(
            config,
            options,
            Arc::new(SystemClock),
            DEFAULT_POLL_INTERVAL,
        )
        .await
    }

    /// [`connect`](Self::connect) with the clock that dates keys and the
    /// interval of the version poll (see [`poll_interval`](Self::poll_interval)).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(
        config: &RedisConfig,
        options: StoreOptions,
        clock: SharedClock,
        poll_interval: Duration,
    ) -> Result<Self, redis::RedisError> {
        crate::check_prefix(config.prefix())?;
        let config = config
            .clone()
            .timeout(config.call_timeout().max(MIN_CONTROL_PLANE_TIMEOUT));
        let connection = config.connect().await?;
        let names = Names::new(config.prefix());
        let poll = poll_interval.max(Duration::from_millis(10));
        let inner = Arc::new(Inner {
            connection,
            names: names.clone(),
            options,
            clock,
            version: watch::Sender::new(0),
            counter_changes: broadcast::Sender::new(COUNTER_CHANGES_CAPACITY),
            poll,
            follower: Mutex::new(None),
        });
        if let Ok(version) = inner.stored_version().await {
            inner.announce(version);
        }
        let task = tokio::spawn(follow(Arc::downgrade(&inner), config.urls(), names, poll));
        *inner
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(Self { inner })
    }

    /// The interval at which this replica reads the configuration version
    /// even when no change message came: the bound on propagation when a
    /// message is lost. Set with [`connect_with`](Self::connect_with);
    /// [`DEFAULT_POLL_INTERVAL`] by default.
    #[must_use]
    pub fn poll_interval(&self) -> Duration {
        self.inner.poll
    }

    /// Whether Redis is reachable: `false` while the connection's circuit
    /// breaker is open (see [`RedisConfig::circuit_breaker`]). A readiness
    /// signal for load balancers and Kubernetes probes.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.inner.connection.is_available()
    }

    /// The store's limits.
    #[must_use]
    pub fn options(&self) -> StoreOptions {
        self.inner.options
    }

    pub(super) fn conn(&self) -> RedisConnection {
        self.inner.connection.clone()
    }

    // ---------------------------------------------------------------- reads

    pub(super) async fn key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let json: Option<String> = self
            .conn()
            .hget(self.inner.names.keys(), id)
            .await
            .map_err(backend)?;
        json.as_deref().map(decode_key).transpose()
    }

    pub(super) async fn existing_key(&self, id: &str) -> Result<ApiKey, StoreError> {
        self.key(id).await?.ok_or_else(|| not_found("API Key", id))
    }

    pub(super) async fn plan(&self, id: &str) -> Result<Option<UsagePlanRecord>, StoreError> {
        let json: Option<String> = self
            .conn()
            .hget(self.inner.names.plans(), id)
            .await
            .map_err(backend)?;
        json.as_deref().map(decode_plan).transpose()
    }

    pub(super) async fn existing_plan(&self, id: &str) -> Result<UsagePlanRecord, StoreError> {
        self.plan(id)
            .await?
            .ok_or_else(|| not_found("Usage Plan", id))
    }

    pub(super) async fn members(&self, set: String) -> Result<BTreeSet<String>, StoreError> {
        self.conn().smembers(set).await.map_err(backend)
    }

    pub(super) async fn key_count(&self) -> Result<usize, StoreError> {
        self.conn()
            .zcard(self.inner.names.ids())
            .await
            .map_err(backend)
    }

    pub(super) async fn digest_holder(
        &self,
        digest: &KeyDigest,
    ) -> Result<Option<String>, StoreError> {
        self.conn()
            .hget(self.inner.names.digests(), digest.to_hex())
            .await
            .map_err(backend)
    }

    pub(super) async fn read<T: redis::FromRedisValue>(
        &self,
        read: &str,
        args: &[&str],
    ) -> Result<T, StoreError> {
        let names = &self.inner.names;
        let mut call = read_script().call();
        call.key(names.version())
            .key(names.keys())
            .key(names.ids())
            .key(names.digests())
            .key(names.plans())
            .arg(read)
            .arg(names.kp_prefix())
            .arg(names.pk_prefix());
        for arg in args {
            call.arg(*arg);
        }
        call.invoke(&mut self.conn()).await.map_err(backend)
    }

    pub(super) fn plan_key(key: &ApiKey) -> UsagePlanKey {
        UsagePlanKey {
            id: key.id.clone(),
            key_type: "API_KEY",
            name: key.name.clone(),
            value: key.value.clone(),
        }
    }
}
