//! Shared state for Portcullis on Redis 7 and Redis Cluster: throttle and
//! quota counters, and the control plane (API keys, usage plans, usage
//! records, quota reservation).
//!
//! API Gateway enforces a usage plan across its whole fleet. Portcullis
//! replicas behind a load balancer do the same when their
//! [`ThrottleLayer`](portcullis_throttle::ThrottleLayer) uses
//! [`RedisThrottleStore`] instead of the in-memory store: every replica
//! takes tokens from the same buckets, decided atomically by a server-side
//! Lua script in one round trip. Their [`QuotaLayer`](portcullis_quota::QuotaLayer)
//! counts in [`RedisQuotaStore`] the same way, so a fleet admits exactly a
//! plan's quota, and GetUsage sees every replica's requests.
//!
//! ```no_run
//! use portcullis_redis::{RedisConfig, RedisThrottleStore};
//! use portcullis_throttle::ThrottleLayer;
//!
//! # async fn run() -> Result<(), redis::RedisError> {
//! let config = RedisConfig::single("redis://127.0.0.1:6379");
//! let store = RedisThrottleStore::connect(&config).await?;
//! let throttle = ThrottleLayer::new("a1b2c3d4e5", "prod").with_store(store);
//! # let _ = throttle;
//! # Ok(()) }
//! ```
//!
//! # The control plane, shared
//!
//! [`RedisControlPlane`] keeps the whole control plane in Redis: API keys,
//! usage plans, plan–key associations, usage records and quota counters
//! (`portcullis-control-plane`'s `ControlPlaneStore` and `QuotaReservation`).
//! Every replica's hot path still reads memory: a `KeyCache` snapshot that
//! follows the fleet's changes through pub/sub (within 1 s; milliseconds in
//! practice, see the type's docs), and a `QuotaEngine` that reserves quota in
//! blocks, one script call per block, so the fleet never admits more than
//! the quota.
//!
//! ```no_run
//! use std::sync::Arc;
//! use portcullis_api_key::ApiKeys;
//! use portcullis_control_plane::{
//!     ApiKeyUpdate, ControlPlaneStore, KeyCache, NewApiKey, QuotaEngine, StoreOptions,
//! };
//! use portcullis_quota::QuotaLayer;
//! use portcullis_redis::{RedisConfig, RedisControlPlane};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::single("redis://127.0.0.1:6379").key_prefix("shop");
//! let store = RedisControlPlane::connect(&config, StoreOptions::default()).await?;
//! let keys = ApiKeys::with_store(KeyCache::load(store.clone()).await?);
//! let _sync = keys.store().spawn_sync(); // reloads on every replica's changes
//! let engine = QuotaEngine::new(store.clone());
//! let _layers = (keys.layer("a1b2c3d4e5", "prod"), QuotaLayer::with_store(engine.clone()));
//!
//! // A key made here is accepted by every replica on this Redis.
//! let key = store.create_api_key(NewApiKey { enabled: true, ..NewApiKey::default() }).await?;
//! store.update_api_key(&key.id, ApiKeyUpdate::new().enabled(false)).await?;
//! assert!(!store.get_api_key(&key.id).await?.enabled);
//! engine.shutdown().await?; // reports what was admitted, gives the rest of the blocks back
//! # Ok(()) }
//! ```
//!
//! # Quota leases
//!
//! On [`RedisControlPlane`] a replica's `QuotaEngine` takes a lease (a
//! block) of a key's remaining quota in one script call and spends it in
//! memory; the next call reports it and takes the next. Leases are sized by
//! the key's request rate on the replica (about 100 ms of its traffic, 16 to
//! 1,000, never more than a quarter of what is left, so they shrink to 1 near
//! the end), and given back after 1 s unused, on shutdown, and when
//! UpdateUsage changes the counter on any replica (published on
//! `<prefix>:cp:counters`).
//!
//! - **Bounds:** the fleet never admits more than the quota. A replica killed
//!   while holding a lease costs at most that lease (under-admission).
//!   UpdateUsage's "set remaining to n" admits exactly `n` more than the
//!   `used` it answered once every replica has heard (milliseconds; within
//!   1 s). GetUsage counts admitted requests; it may lag by one flush period
//!   (1 s) of another replica's traffic.
//! - **Cost:** about 0.001 Redis round trips per request at steady state
//!   (measured in `tests/lease_faults.rs`).
//!
//! # Throttle leases
//!
//! [`LeasedThrottleStore`] does the same for token buckets: a replica takes
//! a lease of a few tokens per bucket in one script call (sized by its rate
//! for the bucket, 50 ms of it, at most a quarter of the bucket's level) and
//! spends it in memory, about 0.001 scripts per request on a hot key. The
//! fleet still admits at most `burst + rate·τ` in every window τ: Redis
//! counts leased tokens as taken until they are reported spent (then they
//! refill from the report) or given back, and a lease past its deadline as
//! spent at its deadline, so a killed replica costs at most its lease, as
//! under-admission. The argument is in the type's docs.
//!
//! [`RedisUsagePlanLayer`] goes one step further: it takes both layers and
//! decides a request's throttle buckets **and** its quota in one script, one
//! round trip (see its docs for what that costs on Cluster).
//!
//! # Why the `redis` crate
//!
//! `redis` (redis-rs) and `fred` are both well kept. `redis` was chosen for
//! `ConnectionManager`, which reconnects a
//! multiplexed connection in the background, and for a cluster client on the
//! same `ConnectionLike` trait, so one code path serves both deployments.
//! It is also what most of the ecosystem (and `tower`-based services) already
//! link.
//!
//! # Scripts, the first time
//!
//! [`RedisConfig::connect`] loads every script (`SCRIPT LOAD`, on every
//! master of a cluster) before the stores serve a request; each call is then
//! one `EVALSHA`, and a server that has forgotten a script (restarted,
//! flushed, failed over) gets the whole source in one `EVAL`, which loads
//! and runs it in one command. A request is therefore decided in one atomic
//! command however cold the server is: when its deadline passes and the
//! failure policy admits it, Redis still counts it. (`redis::Script`'s own
//! fallback, `SCRIPT LOAD` then `EVALSHA` again, took three round trips with
//! a deadline each; a first request that timed out between them was
//! admitted without being counted, and a fleet's first burst on a fresh
//! key could admit more than the quota.)
//!
//! # Failures
//!
//! Every call has a deadline ([`RedisConfig::timeout`], 20 ms by default, as
//! Envoy's global rate limit uses). A call that fails or times out is
//! counted in the `portcullis_redis_call_errors_total` metric, traced at `debug`,
//! and returned as a store error; the layer's policy then decides: fail-open
//! (API Gateway's documented behaviour when its usage-plan check fails,
//! the default) or fail-closed with a 5xx gateway response. Nothing panics.
//! The connection reconnects by itself once Redis answers again.
//!
//! A **circuit breaker** ([`RedisConfig::circuit_breaker`]) opens after 3
//! consecutive calls find Redis unreachable (refused or dropped
//! connections; not timeouts, since a slow server may still run the call):
//! calls then fail at once, and one probe every 250 ms closes it when Redis
//! is back. It logs one line per change of state and counts them in
//! `portcullis_redis_circuit_changes_total`.
//! [`RedisControlPlane::is_available`] reports it, for readiness probes, and
//! [`RedisConfig::lazy_connect`] lets a replica start while Redis is down.

mod config;
mod connection;
mod control_plane;
mod quota;
mod script;
mod scripts;
mod throttle;
mod throttle_lease;
mod usage_plan;

use std::time::Instant;

pub use config::{DEFAULT_FAILURE_THRESHOLD, DEFAULT_PROBE_INTERVAL, DEFAULT_TIMEOUT, RedisConfig};
pub use connection::RedisConnection;
pub use control_plane::{DEFAULT_POLL_INTERVAL, MIN_CONTROL_PLANE_TIMEOUT, RedisControlPlane};
pub use portcullis_core::future::ResponseFuture;
pub use quota::{ConsumeFuture, RedisQuotaError, RedisQuotaStore};
pub use throttle::{AcquireFuture, RedisThrottleStore};
pub use throttle_lease::{LeaseConfig, LeasedThrottleStore};
pub use usage_plan::{RedisUsagePlan, RedisUsagePlanLayer};

/// Which clock a store's Lua scripts read: Redis's own `TIME`, or the time
/// the caller passes from its [`Clock`](portcullis_core::clock::Clock). Set
/// with the stores' `script_clock(..)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScriptClock {
    /// Redis's own `TIME`, read inside the script: one clock for every
    /// replica, whatever their local clocks say.
    #[default]
    Redis,
    /// The time the layer passes, from its `Clock`. Use it when the
    /// replicas' clocks are trusted to agree, or in tests with a manual clock.
    Caller,
}

/// Appends `bytes` as lower-case hex, without allocating per byte.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

fn check_prefix(prefix: &str) -> Result<(), redis::RedisError> {
    if prefix.contains(['{', '}']) {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the key prefix must not contain `{` or `}`",
        )));
    }
    Ok(())
}

fn record_call(store: &'static str, started: Instant, error: Option<&impl std::fmt::Display>) {
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!("portcullis_redis_call_seconds", "store" => store).record(seconds);
    if let Some(error) = error {
        // Counted, and traced at debug only: the circuit breaker logs once
        // per change of state, not once per call.
        metrics::counter!("portcullis_redis_call_errors_total", "store" => store).increment(1);
        tracing::debug!(layer = "redis", store, outcome = "error", %error, "redis call failed");
    }
}
