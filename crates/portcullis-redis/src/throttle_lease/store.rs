//! [`LeasedThrottleStore`]: the public store and its `ThrottleStore` impl.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use portcullis_throttle::ThrottleStore;
use portcullis_throttle::store::{Answer, BucketCheck, Outcome, ThrottleStoreError};

use crate::ScriptClock;
use crate::config::RedisConfig;
use crate::connection::RedisConnection;
use crate::throttle::{AcquireFuture, check_bucket_count, write_key};

use super::config::LeaseConfig;
use super::entry::TOKENS;
use super::slow_path::Wanted;
use super::state::Inner;

/// Throttle buckets on Redis, spent from leases: the hot path decides in
/// memory, and a replica asks Redis about a bucket about once per lease,
/// not once per request. It keeps the fleet-wide bound of
/// [`RedisThrottleStore`](crate::RedisThrottleStore) exactly.
///
/// # The design
///
/// Per bucket, Redis holds one hash: the **debt** of tokens spent (the GCRA
/// TAT, decaying at the refill rate) and the tokens **outstanding** in each
/// replica's lease (`l:<replica>:<lease>`: its tokens and deadline), which do not
/// decay. The bucket's level is `burst − debt/t − outstanding` (tokens).
///
/// - A lease of `n` needs a level of at least 1, and is granted
///   `min(n, max(1, level / 4))` tokens, added to the replica's outstanding.
///   A replica asks for its own rate for the bucket times
///   [`LeaseConfig::lease_duration`] (1 to `max_lease`; `initial_lease` before the rate is known).
/// - A report of `s` spent moves `s` from outstanding to the debt, starting
///   at report time (they were spent earlier, so this is conservative); a
///   give-back of `r` removes `r` from outstanding.
/// - A lease whose deadline passed is counted as all spent, at its
///   deadline; the replica stops spending it at its send time plus
///   ⅞ of the ttl, before Redis's deadline (sent later, with the same ttl).
/// - A request is all or nothing across its buckets: it takes one local
///   token from each bucket's lease; if any lease is empty (or expired, or
///   taken under other parameters), the empty ones are renewed and the
///   others reported in **one** script call (on Cluster, one per slot:
///   the caller's buckets, then the shared ones); if a bucket refuses, no
///   lease is granted in that call and the request's local tokens go back.
/// - A refusal is remembered locally for at most
///   [`LeaseConfig::refusal_cache`] (never past its retry-after), so a
///   throttled key does not send every refused request to Redis.
/// - [`RedisThrottleStore`](crate::RedisThrottleStore) and
///   [`RedisUsagePlanLayer`](crate::RedisUsagePlanLayer) read the same
///   hashes and count leased tokens as taken, so replicas of both kinds
///   can share buckets.
///
/// # The bound, exactly
///
/// In any window `[W, W + τ]` the fleet admits at most `burst + rate·τ`.
/// Every admitted request spends a token of a lease (held at `W`, or
/// granted in the window) before that lease's deadline, so
///
/// ```text
/// admitted ≤ out(W) + granted − returned
/// ```
///
/// where `out(W)` is what leases held at `W`. Grants take level; the level
/// rises only by refill (at most `rate·τ`: the debt decays at the rate and
/// never below zero) and by give-backs (`returned`); reports and expiries
/// move tokens from outstanding to the debt and leave it unchanged. So
/// `granted ≤ level(W) + rate·τ + returned`, and
///
/// ```text
/// admitted ≤ out(W) + burst − debt(W)/t − out(W) + rate·τ ≤ burst + rate·τ.
/// ```
///
/// Under constant settings the debt never exceeds a whole bucket (a grant
/// needs a level ≥ 1), so the cap on the debt
/// ([`Gcra::decide`](portcullis_throttle::Gcra::decide)) never applies.
///
/// # Under-admission, bounded
///
/// Leasing can only admit less:
///
/// - a replica killed while holding a lease loses what it had not spent:
///   at most that lease (≤ [`LeaseConfig::max_lease`], ≤ a quarter of the
///   level when granted), refilled from the lease's deadline on;
/// - a bucket refuses while other replicas hold outstanding tokens: at
///   most the sum of their leases, each at most a quarter of the level at
///   its grant, and each given back within
///   [`LeaseConfig::give_back_after`] of going unused (or counted spent at
///   its deadline, [`LeaseConfig::lease_ttl`]);
/// - tokens spent are counted from their report, not their spending: at
///   most one lease's tokens per replica refill up to
///   `lease_duration` late;
/// - a call that fails or times out forfeits the leases it touched (the
///   replica cannot know if Redis applied it): they are counted spent at
///   their deadline.
///
/// # Clocks
///
/// With [`ScriptClock::Redis`] (the default) the scripts read Redis's
/// `TIME` and the replica times its leases with its monotonic clock; with
/// [`ScriptClock::Caller`] both use the time the layer passes.
///
/// # Background task
///
/// [`spawn_flusher`](Self::spawn_flusher) gives back leases not renewed
/// within [`LeaseConfig::give_back_after`] and forgets idle buckets;
/// [`shutdown`](Self::shutdown) gives every lease back.
#[derive(Clone)]
pub struct LeasedThrottleStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for LeasedThrottleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeasedThrottleStore")
            .field("connection", &self.inner.connection)
            .field("prefix", &self.inner.prefix)
            .field("time", &self.inner.time)
            .field("config", &self.inner.config)
            .field("replica", &self.inner.replica)
            .finish_non_exhaustive()
    }
}

impl LeasedThrottleStore {
    /// Connects with `config` and the default [`LeaseConfig`].
    ///
    /// # Errors
    ///
    /// As [`RedisConfig::connect`], and a key prefix must not contain `{` or
    /// `}` (they would break the hash tags).
    pub async fn connect(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        crate::check_prefix(config.prefix())?;
        Ok(Self::new(config.connect().await?, config.prefix()))
    }

    /// A store on an established connection, writing keys under `prefix`.
    /// Each store is one replica: its leases are its own.
    pub fn new(connection: RedisConnection, prefix: impl Into<String>) -> Self {
        let random = std::collections::hash_map::RandomState::new();
        let mut hasher = random.build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        Self {
            inner: Arc::new(Inner {
                connection,
                prefix: prefix.into(),
                time: ScriptClock::Redis,
                config: LeaseConfig::default(),
                replica: format!("{:016x}", hasher.finish()),
                next_lease: AtomicU64::new(1),
                epoch: Instant::now(),
                last_now: AtomicU64::new(0),
                entries: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                change(&mut inner);
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(shared) => {
                // Already shared: a copy with its own leases (another replica).
                let mut inner = Inner {
                    connection: shared.connection.clone(),
                    prefix: shared.prefix.clone(),
                    time: shared.time,
                    config: shared.config,
                    replica: format!("{}-1", shared.replica),
                    next_lease: AtomicU64::new(1),
                    epoch: shared.epoch,
                    last_now: AtomicU64::new(0),
                    entries: RwLock::new(HashMap::new()),
                };
                change(&mut inner);
                Self {
                    inner: Arc::new(inner),
                }
            }
        }
    }

    /// Where the scripts take the time from (default [`ScriptClock::Redis`]).
    /// Call it before the store is cloned or used.
    #[must_use]
    pub fn script_clock(self, time: ScriptClock) -> Self {
        self.rebuild(|inner| inner.time = time)
    }

    /// How leases are sized and kept. Call it before the store is cloned or
    /// used.
    #[must_use]
    pub fn lease_config(self, config: LeaseConfig) -> Self {
        let config = LeaseConfig {
            lease_ttl: config.lease_ttl.max(Duration::from_millis(8)),
            max_lease: config.max_lease.clamp(1, TOKENS),
            initial_lease: config
                .initial_lease
                .clamp(1, config.max_lease.clamp(1, TOKENS)),
            ..config
        };
        self.rebuild(|inner| inner.config = config)
    }

    /// This replica's id in Redis's lease fields.
    #[must_use]
    pub fn replica_id(&self) -> &str {
        &self.inner.replica
    }

    /// How many buckets the store tracks in memory.
    #[must_use]
    pub fn tracked_buckets(&self) -> usize {
        self.inner.entries.read().map_or(0, |map| map.len())
    }

    /// Tokens this replica holds in leases now (unspent), over all buckets.
    #[must_use]
    pub fn leased_tokens(&self) -> u64 {
        self.inner
            .entries
            .read()
            .map_or(0, |map| map.values().map(|e| e.tokens()).sum())
    }

    /// Gives every lease back (reporting what each spent); call it before
    /// the process exits. Counting goes on afterwards.
    ///
    /// # Errors
    ///
    /// The first failed call; the leases it touched are forfeited (counted
    /// spent at their deadline).
    pub async fn shutdown(&self) -> Result<(), ThrottleStoreError> {
        let mut first = Ok(());
        for (key, entry) in self.inner.all() {
            let mut slow = entry.slow.lock().await;
            if let Err(error) = self.inner.give_back(&key, &entry, &mut slow).await {
                first = first.and(Err(error));
            }
        }
        first
    }

    /// Spawns the background task: every `period` (25 ms is a good choice)
    /// it gives back leases not renewed within
    /// [`LeaseConfig::give_back_after`], and forgets buckets that hold
    /// nothing. The task ends when the last clone of the store is dropped.
    pub fn spawn_flusher(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut tick: u64 = 0;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                // Idle buckets are looked for every 40th tick; the others
                // visit only the buckets that may hold a lease.
                inner.flush(tick.is_multiple_of(40)).await;
                tick = tick.wrapping_add(1);
            }
        })
    }
}

impl ThrottleStore for LeasedThrottleStore {
    type Future = AcquireFuture;

    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future> {
        if let Err(error) = check_bucket_count(checks) {
            return Answer::Ready(Err(error));
        }
        if let Some(result) = self.inner.try_fast(checks, now_unix_nanos) {
            return Answer::Ready(result);
        }
        let wanted: Vec<Wanted> = checks
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let mut key = String::with_capacity(self.inner.prefix.len() + 96);
                write_key(&self.inner.prefix, check, &mut key);
                Wanted {
                    key,
                    index,
                    t: check.gcra.emission_interval_nanos(),
                    cap: check.gcra.capacity_nanos(),
                }
            })
            .collect();
        let inner = self.inner.clone();
        Answer::Pending(Box::pin(async move {
            inner.acquire_slow(wanted, now_unix_nanos).await
        }))
    }
}
