//! The control plane on Redis: API keys, usage plans, plan–key associations,
//! usage records and quota counters shared by a fleet (see
//! [`RedisControlPlane`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use portcullis_api_key::{ApiKeyValue, KeyDigest};
use portcullis_control_plane::reservation::{
    CounterChange, CounterRef, Grant, QuotaReservation, Report,
};
use portcullis_control_plane::{
    ApiKey, ApiKeyFilter, ApiKeyUpdate, ControlPlaneStore, NewApiKey, NewUsagePlan, Page,
    PageRequest, Snapshot, StoreError, StoreOptions, UsagePlanKey, UsagePlanRecord, UsageRecord,
    validate,
};
use portcullis_core::clock::{SharedClock, SystemClock};
use portcullis_core::plan::{QuotaPeriod, UsagePlan};
use portcullis_quota::store::{MAX_REMAINING, UsageUpdate};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use tokio::sync::{broadcast, watch};

use crate::connection::{RedisConfig, RedisConnection};
use crate::script::Lua;

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

/// How many times a configuration change is retried when another change
/// came between its reads and its write.
const MAX_ATTEMPTS: usize = 64;

pub(crate) fn counter_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("lua/control_plane/counter.lua").to_owned()
    })
}

pub(crate) fn apply_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("lua/control_plane/apply.lua").to_owned()
    })
}

pub(crate) fn read_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("lua/control_plane/read.lua").to_owned()
    })
}

pub(crate) fn usage_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("lua/control_plane/usage.lua").to_owned()
    })
}

pub(crate) fn usage_keys_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("lua/control_plane/usage_keys.lua").to_owned()
    })
}

/// The names of every Redis key of one control plane. They all carry the
/// hash tag `{<prefix>:cp}`, so on Cluster they live in one slot and every
/// script is atomic over them.
#[derive(Clone, Debug)]
struct Names {
    tag: String,
    channel: String,
    counters_channel: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            tag: format!("{{{prefix}:cp}}"),
            channel: format!("{prefix}:cp:changes"),
            counters_channel: format!("{prefix}:cp:counters"),
        }
    }
    fn version(&self) -> String {
        format!("{}:version", self.tag)
    }
    fn keys(&self) -> String {
        format!("{}:keys", self.tag)
    }
    fn ids(&self) -> String {
        format!("{}:ids", self.tag)
    }
    fn digests(&self) -> String {
        format!("{}:digests", self.tag)
    }
    fn plans(&self) -> String {
        format!("{}:plans", self.tag)
    }
    fn kp_prefix(&self) -> String {
        format!("{}:kp:", self.tag)
    }
    fn pk_prefix(&self) -> String {
        format!("{}:pk:", self.tag)
    }
    fn key_plans(&self, key: &str) -> String {
        format!("{}:kp:{key}", self.tag)
    }
    fn plan_keys(&self, plan: &str) -> String {
        format!("{}:pk:{plan}", self.tag)
    }
    /// Counters and usage records name the plan with its length first, so
    /// that no two (plan, key) pairs share a name whatever their ids hold.
    fn counter_prefix(&self, plan: &str) -> String {
        format!("{}:ctr:{}:{plan}:", self.tag, plan.len())
    }
    fn days_prefix(&self, plan: &str) -> String {
        format!("{}:days:{}:{plan}:", self.tag, plan.len())
    }
    fn counter(&self, plan: &str, key: &str) -> String {
        format!("{}{key}", self.counter_prefix(plan))
    }
    fn days(&self, plan: &str, key: &str) -> String {
        format!("{}{key}", self.days_prefix(plan))
    }
    fn usage(&self, plan: &str) -> String {
        format!("{}:usage:{plan}", self.tag)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    id: String,
    name: Option<String>,
    customer_id: Option<String>,
    description: Option<String>,
    enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_date: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_updated_date: OffsetDateTime,
    stage_keys: Vec<String>,
    tags: BTreeMap<String, String>,
    digest: KeyDigest,
    value: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredPlan {
    plan: UsagePlan,
    tags: BTreeMap<String, String>,
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    let any: &dyn std::any::Any = &error;
    if let Some(redis) = any.downcast_ref::<redis::RedisError>() {
        if crate::connection::is_circuit_open(redis) || redis.is_connection_refusal() {
            // Not sent: nothing changed on Redis.
            return StoreError::Unavailable(redis.to_string());
        }
        if redis.is_timeout() || crate::connection::unreachable(redis) {
            // Down or slow: the call may or may not have run.
            return StoreError::Unreachable(Box::new(error));
        }
    }
    StoreError::Backend(Box::new(error))
}

fn encode_key(key: &ApiKey) -> Result<String, StoreError> {
    serde_json::to_string(&StoredKey {
        id: key.id.clone(),
        name: key.name.clone(),
        customer_id: key.customer_id.clone(),
        description: key.description.clone(),
        enabled: key.enabled,
        created_date: key.created_date,
        last_updated_date: key.last_updated_date,
        stage_keys: key.stage_keys.clone(),
        tags: key.tags.clone(),
        digest: key.digest,
        value: key.value.as_ref().map(|v| v.expose().to_owned()),
    })
    .map_err(backend)
}

fn decode_key(json: &str) -> Result<ApiKey, StoreError> {
    let stored: StoredKey = serde_json::from_str(json).map_err(backend)?;
    let value = match stored.value {
        Some(value) => Some(ApiKeyValue::new(value).map_err(backend)?),
        None => None,
    };
    Ok(ApiKey {
        id: stored.id,
        name: stored.name,
        customer_id: stored.customer_id,
        description: stored.description,
        enabled: stored.enabled,
        created_date: stored.created_date,
        last_updated_date: stored.last_updated_date,
        stage_keys: stored.stage_keys,
        tags: stored.tags,
        digest: stored.digest,
        value,
    })
}

fn encode_plan(record: &UsagePlanRecord) -> Result<String, StoreError> {
    serde_json::to_string(&StoredPlan {
        plan: record.plan.clone(),
        tags: record.tags.clone(),
    })
    .map_err(backend)
}

fn decode_plan(json: &str) -> Result<UsagePlanRecord, StoreError> {
    let stored: StoredPlan = serde_json::from_str(json).map_err(backend)?;
    Ok(UsagePlanRecord {
        plan: stored.plan,
        tags: stored.tags,
    })
}

fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

fn period_kind(period: QuotaPeriod) -> u8 {
    match period {
        QuotaPeriod::Day => 0,
        QuotaPeriod::Week => 1,
        QuotaPeriod::Month => 2,
    }
}

fn date_of(julian: i64) -> Date {
    i32::try_from(julian)
        .ok()
        .and_then(|d| Date::from_julian_day(d).ok())
        .unwrap_or(Date::MIN)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `items` (any order) as API Gateway pages them: in id order, after
/// `request.position`, at most the request's limit.
fn page_of<T>(mut items: Vec<(String, T)>, request: &PageRequest) -> Result<Page<T>, StoreError> {
    let limit = validate::page_limit(request)?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let after = request.position.as_deref();
    let mut rest = items
        .into_iter()
        .filter(|(id, _)| after.is_none_or(|p| id.as_str() > p));
    let mut out = Vec::new();
    let mut last = None;
    for (id, item) in rest.by_ref().take(limit) {
        last = Some(id);
        out.push(item);
    }
    let position = if rest.next().is_some() { last } else { None };
    Ok(Page {
        items: out,
        position,
    })
}

/// A change to the configuration, written by `apply.lua` if nothing changed
/// since it was read.
#[derive(Default)]
struct Tx {
    keys: Vec<String>,
    args: Vec<String>,
}

impl Tx {
    fn op(&mut self, op: &str, key: String, field: &str, value: &str) {
        let index = match self.keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        };
        // KEYS[1] is the version key.
        self.args.extend([
            op.to_owned(),
            (index + 2).to_string(),
            field.to_owned(),
            value.to_owned(),
        ]);
    }
    fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

struct Inner {
    connection: RedisConnection,
    names: Names,
    options: StoreOptions,
    clock: SharedClock,
    version: watch::Sender<u64>,
    counter_changes: broadcast::Sender<CounterChange>,
    poll: Duration,
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let follower = self
            .follower
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = follower {
            task.abort();
        }
    }
}

impl Inner {
    /// Makes `version` the one this replica's subscribers see.
    fn announce(&self, version: u64) {
        self.version.send_if_modified(|current| {
            if *current == version {
                false
            } else {
                *current = version;
                true
            }
        });
    }

    async fn stored_version(&self) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let version: Option<u64> = connection
            .get(self.names.version())
            .await
            .map_err(backend)?;
        Ok(version.unwrap_or(0))
    }
}

/// [`ControlPlaneStore`] and [`QuotaReservation`] on Redis or Redis Cluster:
/// API keys, usage plans, plan–key associations, usage records and quota
/// counters shared by every replica of a fleet.
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
/// resyncs. [`subscribe`](ControlPlaneStore::subscribe) follows that version;
/// `KeyCache::spawn_sync` reloads on it.
#[derive(Clone)]
pub struct RedisControlPlane {
    inner: Arc<Inner>,
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

    fn conn(&self) -> RedisConnection {
        self.inner.connection.clone()
    }

    // ---------------------------------------------------------------- reads

    async fn key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let json: Option<String> = self
            .conn()
            .hget(self.inner.names.keys(), id)
            .await
            .map_err(backend)?;
        json.as_deref().map(decode_key).transpose()
    }

    async fn existing_key(&self, id: &str) -> Result<ApiKey, StoreError> {
        self.key(id).await?.ok_or_else(|| not_found("API Key", id))
    }

    async fn plan(&self, id: &str) -> Result<Option<UsagePlanRecord>, StoreError> {
        let json: Option<String> = self
            .conn()
            .hget(self.inner.names.plans(), id)
            .await
            .map_err(backend)?;
        json.as_deref().map(decode_plan).transpose()
    }

    async fn existing_plan(&self, id: &str) -> Result<UsagePlanRecord, StoreError> {
        self.plan(id)
            .await?
            .ok_or_else(|| not_found("Usage Plan", id))
    }

    async fn members(&self, set: String) -> Result<BTreeSet<String>, StoreError> {
        self.conn().smembers(set).await.map_err(backend)
    }

    async fn key_count(&self) -> Result<usize, StoreError> {
        self.conn()
            .zcard(self.inner.names.ids())
            .await
            .map_err(backend)
    }

    async fn digest_holder(&self, digest: &KeyDigest) -> Result<Option<String>, StoreError> {
        self.conn()
            .hget(self.inner.names.digests(), digest.to_hex())
            .await
            .map_err(backend)
    }

    async fn read<T: redis::FromRedisValue>(
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

    // --------------------------------------------------------------- writes

    /// Runs `attempt` against the configuration version it is given and
    /// writes its change if that version still holds; again if not.
    async fn transact<T, F, Fut>(&self, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(T, Tx), StoreError>>,
    {
        for round in 0..MAX_ATTEMPTS {
            let version = self.inner.stored_version().await?;
            let (out, tx) = attempt().await?;
            if tx.is_empty() {
                return Ok(out);
            }
            let names = &self.inner.names;
            let mut call = apply_script().call();
            call.key(names.version());
            for key in &tx.keys {
                call.key(key.as_str());
            }
            call.arg(version).arg(names.channel.as_str());
            for arg in &tx.args {
                call.arg(arg.as_str());
            }
            let answer: i64 = call.invoke(&mut self.conn()).await.map_err(backend)?;
            if let Ok(new_version) = u64::try_from(answer) {
                self.inner.announce(new_version);
                return Ok(out);
            }
            // Another change came between the reads and the write.
            let pause = 1 + (round as u64).min(20) + u64::from(rand_jitter());
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(StoreError::Backend(
            "the configuration changed under every attempt; try again".into(),
        ))
    }

    fn put_key_ops(
        &self,
        tx: &mut Tx,
        key: &ApiKey,
        old: Option<&ApiKey>,
    ) -> Result<(), StoreError> {
        let names = &self.inner.names;
        if let Some(old) = old
            && old.digest != key.digest
        {
            tx.op("hdel", names.digests(), &old.digest.to_hex(), "");
        }
        tx.op("hset", names.keys(), &key.id, &encode_key(key)?);
        tx.op("zadd", names.ids(), &key.id, "");
        tx.op("hset", names.digests(), &key.digest.to_hex(), &key.id);
        Ok(())
    }

    fn limit_exceeded_keys(&self) -> StoreError {
        StoreError::LimitExceeded(format!(
            "the store holds at most {} API keys",
            self.inner.options.max_api_keys
        ))
    }

    async fn create_keys(&self, inputs: Vec<NewApiKey>) -> Result<Vec<ApiKey>, StoreError> {
        self.transact(|| {
            let inputs = inputs.clone();
            async move {
                let count = self.key_count().await?;
                if count.saturating_add(inputs.len()) > self.inner.options.max_api_keys {
                    return Err(self.limit_exceeded_keys());
                }
                let now = self.inner.clock.now();
                let mut built: Vec<ApiKey> = Vec::with_capacity(inputs.len());
                let mut ids = BTreeSet::new();
                let mut digests = BTreeSet::new();
                for input in inputs {
                    let key =
                        validate::build_api_key(input, now, self.inner.options.retain_values)?;
                    if !ids.insert(key.id.clone()) || self.key(&key.id).await?.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "an API key with id {} already exists",
                            key.id
                        )));
                    }
                    if !digests.insert(*key.digest.as_bytes())
                        || self.digest_holder(&key.digest).await?.is_some()
                    {
                        return Err(StoreError::Conflict(
                            "an API key with this value already exists".to_owned(),
                        ));
                    }
                    built.push(key);
                }
                let mut tx = Tx::default();
                for key in &built {
                    self.put_key_ops(&mut tx, key, None)?;
                }
                Ok((built, tx))
            }
        })
        .await
    }

    /// Removes `(plan, key)`'s association and counter.
    fn del_assoc_ops(&self, tx: &mut Tx, plan: &str, key: &str) {
        let names = &self.inner.names;
        tx.op("srem", names.plan_keys(plan), key, "");
        tx.op("srem", names.key_plans(key), plan, "");
        tx.op("del", names.counter(plan, key), "", "");
    }

    /// Whether `plan` may hold `key` next to the key's other plans.
    async fn check_stages(
        &self,
        plan: &UsagePlanRecord,
        key: &str,
        message: impl Fn(&str, &str) -> String,
    ) -> Result<(), StoreError> {
        for other in self.members(self.inner.names.key_plans(key)).await? {
            if other == plan.id() {
                continue;
            }
            if let Some(other_plan) = self.plan(&other).await?
                && let Some(stage) = validate::stages_overlap(&plan.plan, &other_plan.plan)
            {
                return Err(StoreError::Conflict(message(&other, &stage)));
            }
        }
        Ok(())
    }

    fn plan_key(key: &ApiKey) -> UsagePlanKey {
        UsagePlanKey {
            id: key.id.clone(),
            key_type: "API_KEY",
            name: key.name.clone(),
            value: key.value.clone(),
        }
    }

    // ------------------------------------------------------------- counters

    async fn counter_call(
        &self,
        counter: &CounterRef,
        mode: &str,
        tail: &[u64],
        strings: &[&str],
    ) -> Result<redis::Value, StoreError> {
        let names = &self.inner.names;
        let request = counter.as_request();
        let initial_mode: u8 = match counter.initial_window {
            Some(w) if w.start() == counter.window.start() => 1,
            Some(_) => 2,
            None => 0,
        };
        let mut call = counter_script().call();
        call.key(names.counter(&counter.plan_id, &counter.key_id))
            .key(names.days(&counter.plan_id, &counter.key_id))
            .key(names.usage(&counter.plan_id))
            .arg(mode)
            .arg(counter.key_id.as_str())
            .arg(counter.window.start())
            .arg(period_kind(counter.quota.period()));
        if mode == "report" {
            call.arg(counter.day.to_julian_day());
        } else {
            call.arg(counter.quota.limit().min(MAX_REMAINING * 2))
                .arg(counter.day.to_julian_day())
                .arg(request.allowance(true))
                .arg(request.allowance(false))
                .arg(initial_mode)
                .arg(self.inner.options.retention_days);
        }
        for n in tail {
            call.arg(*n);
        }
        for text in strings {
            call.arg(*text);
        }
        call.invoke(&mut self.conn()).await.map_err(backend)
    }
}

/// A few milliseconds of jitter, so that replicas retrying a change do not
/// retry in step.
fn rand_jitter() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    (nanos % 5) as u8
}

fn parse<T: redis::FromRedisValue>(value: redis::Value) -> Result<T, StoreError> {
    redis::from_redis_value(value).map_err(backend)
}

/// Follows the configuration version and counter changes: pub/sub on any
/// node, the version key on every (re)connect and every `poll`. Ends when
/// the store is dropped.
async fn follow(store: Weak<Inner>, urls: Vec<String>, names: Names, poll: Duration) {
    let mut attempt = 0usize;
    // Failures are logged when they start, not on every retry.
    let mut failing = false;
    // Whether a subscription was made before: on a later one, messages may
    // have been missed.
    let mut resubscribed = false;
    loop {
        let Some(url) = urls.get(attempt % urls.len().max(1)).cloned() else {
            return;
        };
        attempt = attempt.wrapping_add(1);
        let subscribed = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub =
                tokio::time::timeout(Duration::from_secs(1), client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        redis::RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "pub/sub connect timed out",
                        ))
                    })??;
            pubsub
                .subscribe(&[names.channel.as_str(), names.counters_channel.as_str()])
                .await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                if failing {
                    tracing::info!(
                        layer = "redis",
                        store = "control_plane",
                        "change subscription restored"
                    );
                    failing = false;
                }
                if resubscribed && let Some(inner) = store.upgrade() {
                    // Counter changes made while unsubscribed are unknown:
                    // engines give every block back.
                    let _ = inner.counter_changes.send(CounterChange::All);
                }
                resubscribed = true;
                let mut messages = pubsub.into_on_message();
                let mut tick = tokio::time::interval(poll);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // The first tick fires at once: a resync after (re)connecting.
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let Some(inner) = store.upgrade() else { return };
                            if message.get_channel_name() == names.counters_channel {
                                let change = message
                                    .get_payload::<String>()
                                    .ok()
                                    .and_then(|p| serde_json::from_str::<(String, String)>(&p).ok())
                                    .map_or(CounterChange::All, |(plan_id, key_id)| {
                                        CounterChange::Counter { plan_id, key_id }
                                    });
                                let _ = inner.counter_changes.send(change);
                                continue;
                            }
                            match message.get_payload::<u64>() {
                                Ok(version) => inner.announce(version),
                                Err(_) => resync(&inner).await,
                            }
                        }
                        _ = tick.tick() => {
                            let Some(inner) = store.upgrade() else { return };
                            resync(&inner).await;
                        }
                    }
                }
                tracing::warn!(
                    layer = "redis",
                    store = "control_plane",
                    "change subscription lost; reconnecting"
                );
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(layer = "redis", store = "control_plane", %error, "change subscription failed; polling the version until it is back");
                    failing = true;
                }
                let Some(inner) = store.upgrade() else { return };
                resync(&inner).await;
                drop(inner);
                tokio::time::sleep(poll).await;
            }
        }
    }
}

async fn resync(inner: &Inner) {
    match inner.stored_version().await {
        Ok(version) => inner.announce(version),
        Err(error) => {
            tracing::debug!(layer = "redis", store = "control_plane", %error, "reading the configuration version failed");
        }
    }
}

impl QuotaReservation for RedisControlPlane {
    fn reserve(
        &self,
        counter: CounterRef,
        want: u64,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send {
        self.renew(counter, None, want)
    }

    async fn renew(
        &self,
        counter: CounterRef,
        report: Option<Report>,
        want: u64,
    ) -> Result<Grant, StoreError> {
        if want == 0 {
            return Err(StoreError::BadRequest(
                "a reservation asks for at least 1".to_owned(),
            ));
        }
        let want = want.min(MAX_REMAINING * 2);
        let reply = match report {
            None => self.counter_call(&counter, "reserve", &[want], &[]).await?,
            Some(report) => {
                let tail = [
                    want,
                    report.generation,
                    report.spent.min(MAX_REMAINING * 2),
                    report.returned.min(MAX_REMAINING * 2),
                ];
                self.counter_call(&counter, "reserve", &tail, &[]).await?
            }
        };
        let (granted, generation, remaining, outstanding): (i64, i64, i64, i64) = parse(reply)?;
        Ok(Grant {
            granted: to_u64(granted),
            generation: to_u64(generation),
            remaining: to_u64(remaining),
            outstanding: to_u64(outstanding),
        })
    }

    async fn report(&self, counter: CounterRef, report: Report) -> Result<(), StoreError> {
        self.counter_call(
            &counter,
            "report",
            &[
                report.generation,
                report.spent.min(MAX_REMAINING * 2),
                report.returned.min(MAX_REMAINING * 2),
            ],
            &[],
        )
        .await?;
        Ok(())
    }

    async fn reclaim(&self, counter: &CounterRef) -> Result<(), StoreError> {
        // The same announcement UpdateUsage makes: holders give their blocks
        // back when they hear it.
        let message = serde_json::to_string(&(&counter.plan_id, &counter.key_id))
            .map_err(|e| StoreError::Backend(e.into()))?;
        redis::cmd("PUBLISH")
            .arg(&self.inner.names.counters_channel)
            .arg(message)
            .query_async::<i64>(&mut self.conn())
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn counter_changes(&self) -> broadcast::Receiver<CounterChange> {
        self.inner.counter_changes.subscribe()
    }
}

impl ControlPlaneStore for RedisControlPlane {
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey, StoreError> {
        let mut keys = self.create_keys(vec![key]).await?;
        keys.pop()
            .ok_or_else(|| StoreError::Backend("no key was built".into()))
    }

    fn import_api_keys(
        &self,
        keys: Vec<NewApiKey>,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send {
        self.create_keys(keys)
    }

    fn put_api_key(&self, key: ApiKey) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.transact(move || {
            let mut key = key.clone();
            async move {
                validate::check_api_key(&key)?;
                if let Some(holder) = self.digest_holder(&key.digest).await?
                    && holder != key.id
                {
                    return Err(StoreError::Conflict(
                        "an API key with this value already exists".to_owned(),
                    ));
                }
                let old = self.key(&key.id).await?;
                if old.is_none() && self.key_count().await? >= self.inner.options.max_api_keys {
                    return Err(self.limit_exceeded_keys());
                }
                if !self.inner.options.retain_values {
                    key.value = None;
                }
                let mut tx = Tx::default();
                self.put_key_ops(&mut tx, &key, old.as_ref())?;
                Ok((key, tx))
            }
        })
    }

    fn get_api_key(&self, id: &str) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.existing_key(id)
    }

    fn find_api_key(
        &self,
        digest: &KeyDigest,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send {
        let hex = digest.to_hex();
        async move {
            let json: Option<String> = self.read("find", &[&hex]).await?;
            json.as_deref().map(decode_key).transpose()
        }
    }

    async fn get_api_keys(
        &self,
        filter: ApiKeyFilter,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        let limit = validate::page_limit(&page)?;
        let matches = |k: &ApiKey| {
            filter
                .name_query
                .as_deref()
                .is_none_or(|q| k.name.as_deref().is_some_and(|n| n.starts_with(q)))
                && filter
                    .customer_id
                    .as_deref()
                    .is_none_or(|c| k.customer_id.as_deref() == Some(c))
        };
        let chunk = (limit + 1).max(100);
        let mut after = page.position.clone().unwrap_or_default();
        let mut found: Vec<ApiKey> = Vec::new();
        while found.len() <= limit {
            let records: Vec<Option<String>> = self
                .read("keys_after", &[&after, &chunk.to_string()])
                .await?;
            let fetched = records.len();
            for json in records.into_iter().flatten() {
                let key = decode_key(&json)?;
                after.clone_from(&key.id);
                if matches(&key) {
                    found.push(key);
                }
            }
            if fetched < chunk {
                break;
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let position = if more {
            found.last().map(|k| k.id.clone())
        } else {
            None
        };
        Ok(Page {
            items: found,
            position,
        })
    }

    fn update_api_key(
        &self,
        id: &str,
        update: ApiKeyUpdate,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.transact(move || {
            let update = update.clone();
            async move {
                let old = self.existing_key(id).await?;
                let key =
                    validate::apply_api_key_update(old.clone(), update, self.inner.clock.now())?;
                let mut tx = Tx::default();
                self.put_key_ops(&mut tx, &key, Some(&old))?;
                Ok((key, tx))
            }
        })
    }

    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.transact(move || async move {
            let key = self.existing_key(id).await?;
            let names = &self.inner.names;
            let mut tx = Tx::default();
            tx.op("hdel", names.keys(), id, "");
            tx.op("zrem", names.ids(), id, "");
            tx.op("hdel", names.digests(), &key.digest.to_hex(), "");
            for plan in self.members(names.key_plans(id)).await? {
                self.del_assoc_ops(&mut tx, &plan, id);
            }
            tx.op("del", names.key_plans(id), "", "");
            Ok(((), tx))
        })
    }

    fn create_usage_plan(
        &self,
        plan: NewUsagePlan,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.transact(move || {
            let plan = plan.clone();
            async move {
                let count: usize = self
                    .conn()
                    .hlen(self.inner.names.plans())
                    .await
                    .map_err(backend)?;
                if count >= self.inner.options.max_usage_plans {
                    return Err(StoreError::LimitExceeded(format!(
                        "the store holds at most {} usage plans",
                        self.inner.options.max_usage_plans
                    )));
                }
                let record = validate::build_usage_plan(plan)?;
                if self.plan(record.id()).await?.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "a usage plan with id {} already exists",
                        record.id()
                    )));
                }
                let mut tx = Tx::default();
                tx.op(
                    "hset",
                    self.inner.names.plans(),
                    record.id(),
                    &encode_plan(&record)?,
                );
                Ok((record, tx))
            }
        })
    }

    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.existing_plan(id)
    }

    async fn get_usage_plans(
        &self,
        key_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<UsagePlanRecord>, StoreError> {
        let (exists, records): (i64, Vec<Option<String>>) =
            self.read("plans", &[key_id.unwrap_or("")]).await?;
        if exists == 0 {
            return Err(not_found("API Key", key_id.unwrap_or("")));
        }
        let mut items = Vec::with_capacity(records.len());
        for json in records.into_iter().flatten() {
            let record = decode_plan(&json)?;
            items.push((record.id().to_owned(), record));
        }
        page_of(items, &page)
    }

    fn update_usage_plan(
        &self,
        plan: UsagePlanRecord,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.transact(move || {
            let record = plan.clone();
            async move {
                let id = record.id().to_owned();
                self.existing_plan(&id).await?;
                validate::check_usage_plan(&record)?;
                for key in self.members(self.inner.names.plan_keys(&id)).await? {
                    self.check_stages(&record, &key, |other, stage| {
                        format!(
                            "API key {key} is also in usage plan {other}, which applies to {stage}"
                        )
                    })
                    .await?;
                }
                let mut tx = Tx::default();
                tx.op(
                    "hset",
                    self.inner.names.plans(),
                    &id,
                    &encode_plan(&record)?,
                );
                Ok((record, tx))
            }
        })
    }

    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.transact(move || async move {
            self.existing_plan(id).await?;
            let names = &self.inner.names;
            let mut tx = Tx::default();
            tx.op("hdel", names.plans(), id, "");
            for key in self.members(names.plan_keys(id)).await? {
                self.del_assoc_ops(&mut tx, id, &key);
            }
            tx.op("del", names.plan_keys(id), "", "");
            Ok(((), tx))
        })
    }

    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
        key_type: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        self.transact(move || async move {
            if key_type != "API_KEY" {
                return Err(StoreError::BadRequest(format!(
                    "keyType must be API_KEY, got {key_type:?}"
                )));
            }
            let plan = self.existing_plan(plan_id).await?;
            let key = self.existing_key(key_id).await?;
            let names = &self.inner.names;
            let member: bool = self
                .conn()
                .sismember(names.plan_keys(plan_id), key_id)
                .await
                .map_err(backend)?;
            if member {
                return Err(StoreError::Conflict(format!(
                    "API key {key_id} is already in usage plan {plan_id}"
                )));
            }
            self.check_stages(&plan, key_id, |other, stage| {
                format!(
                    "API key {key_id} is already in usage plan {other}, which also applies to {stage}"
                )
            })
            .await?;
            let mut tx = Tx::default();
            tx.op("sadd", names.plan_keys(plan_id), key_id, "");
            tx.op("sadd", names.key_plans(key_id), plan_id, "");
            Ok((Self::plan_key(&key), tx))
        })
    }

    async fn get_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> Result<UsagePlanKey, StoreError> {
        let (exists, records): (i64, Vec<Option<String>>) =
            self.read("plan_keys", &[plan_id]).await?;
        if exists == 0 {
            return Err(not_found("Usage Plan", plan_id));
        }
        for json in records.into_iter().flatten() {
            let key = decode_key(&json)?;
            if key.id == key_id {
                return Ok(Self::plan_key(&key));
            }
        }
        Err(not_found("Usage Plan Key", key_id))
    }

    async fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        name_query: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<UsagePlanKey>, StoreError> {
        let (exists, records): (i64, Vec<Option<String>>) =
            self.read("plan_keys", &[plan_id]).await?;
        if exists == 0 {
            return Err(not_found("Usage Plan", plan_id));
        }
        let mut items = Vec::with_capacity(records.len());
        for json in records.into_iter().flatten() {
            let key = decode_key(&json)?;
            if name_query.is_none_or(|q| key.name.as_deref().is_some_and(|n| n.starts_with(q))) {
                items.push((key.id.clone(), Self::plan_key(&key)));
            }
        }
        page_of(items, &page)
    }

    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.transact(move || async move {
            self.get_usage_plan_key(plan_id, key_id).await?;
            let mut tx = Tx::default();
            self.del_assoc_ops(&mut tx, plan_id, key_id);
            Ok(((), tx))
        })
    }

    async fn update_usage(
        &self,
        counter: CounterRef,
        update: UsageUpdate,
    ) -> Result<UsageRecord, StoreError> {
        let (op, n) = match update {
            UsageUpdate::Extend(more) => (1, more.min(MAX_REMAINING * 16)),
            UsageUpdate::SetRemaining(n) => (2, n.min(MAX_REMAINING)),
            UsageUpdate::Reset => (3, 0),
            _ => {
                return Err(StoreError::BadRequest(
                    "unsupported usage update".to_owned(),
                ));
            }
        };
        let names = &self.inner.names;
        let reply = self
            .counter_call(
                &counter,
                "update",
                &[op, n],
                &[counter.plan_id.as_str(), names.counters_channel.as_str()],
            )
            .await?;
        let (day, used, remaining): (i64, i64, i64) = parse(reply)?;
        Ok(UsageRecord {
            day: date_of(day),
            used: to_u64(used),
            remaining: to_u64(remaining),
        })
    }

    async fn get_usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        if from > to {
            return Err(StoreError::BadRequest(
                "the start date is after the end date".to_owned(),
            ));
        }
        let names = &self.inner.names;
        let mut call = usage_script().call();
        call.key(names.counter(plan_id, key_id))
            .key(names.days(plan_id, key_id));
        let (counter, days): (BTreeMap<String, i64>, BTreeMap<i64, String>) =
            call.invoke(&mut self.conn()).await.map_err(backend)?;
        let (f, t) = (
            i64::from(from.to_julian_day()),
            i64::from(to.to_julian_day()),
        );
        let mut out: BTreeMap<i64, UsageRecord> = BTreeMap::new();
        for (day, record) in days.range(f..=t) {
            let (used, remaining) = record
                .split_once(':')
                .and_then(|(u, r)| Some((u.parse().ok()?, r.parse().ok()?)))
                .ok_or_else(|| StoreError::Backend("a malformed usage record".into()))?;
            out.insert(
                *day,
                UsageRecord {
                    day: date_of(*day),
                    used,
                    remaining,
                },
            );
        }
        let field = |name: &str| counter.get(name).copied().unwrap_or(0);
        if !counter.is_empty() && (f..=t).contains(&field("day")) {
            let (used, base, budget) = (field("used"), field("base"), field("bud"));
            out.insert(
                field("day"),
                UsageRecord {
                    day: date_of(field("day")),
                    used: to_u64(used - base),
                    remaining: to_u64(budget - used).min(MAX_REMAINING),
                },
            );
        }
        Ok(out.into_values().collect())
    }

    async fn usage_keys(&self, plan_id: &str) -> Result<Vec<String>, StoreError> {
        let names = &self.inner.names;
        let mut call = usage_keys_script().call();
        call.key(names.usage(plan_id))
            .arg(names.counter_prefix(plan_id))
            .arg(names.days_prefix(plan_id));
        let mut keys: Vec<String> = call.invoke(&mut self.conn()).await.map_err(backend)?;
        keys.sort();
        Ok(keys)
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let (version, keys, plans, assoc): (u64, Vec<String>, Vec<String>, Vec<String>) =
            self.read("snapshot", &[]).await?;
        let mut api_keys = keys
            .iter()
            .map(|json| decode_key(json))
            .collect::<Result<Vec<_>, _>>()?;
        api_keys.sort_by(|a, b| a.id.cmp(&b.id));
        let mut usage_plans = plans
            .chunks_exact(2)
            .map(|pair| decode_plan(&pair[1]))
            .collect::<Result<Vec<_>, _>>()?;
        usage_plans.sort_by(|a, b| a.id().cmp(b.id()));
        let mut key_plans: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in assoc.chunks_exact(2) {
            key_plans
                .entry(pair[1].clone())
                .or_default()
                .push(pair[0].clone());
        }
        for plans in key_plans.values_mut() {
            plans.sort();
        }
        Ok(Snapshot {
            api_keys,
            usage_plans,
            key_plans: key_plans.into_iter().collect(),
            version,
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    fn is_available(&self) -> bool {
        self.inner.connection.is_available()
    }
}
