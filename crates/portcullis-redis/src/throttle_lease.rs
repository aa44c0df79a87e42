//! Throttle leases: a replica takes a few tokens of a bucket from Redis in
//! one script call and spends them in memory.
//!
//! See [`LeasedThrottleStore`] for the design and the bounds it keeps.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use portcullis_throttle::ThrottleStore;
use portcullis_throttle::store::{Acquire, BucketCheck, Outcome, StoreError};

use crate::connection::{RedisConfig, RedisConnection};
use crate::script::Lua;
use crate::throttle::{AcquireFuture, COMMON, STATE, write_key};
use crate::{TimeSource, record_call};

/// The most buckets one request may touch (the layer sends at most three).
const MAX_BUCKETS: usize = 8;
/// Tries of the slow path before a request whose fresh tokens were all
/// taken by concurrent requests of the same replica is refused.
const ATTEMPTS: usize = 4;

const GEN_SHIFT: u32 = 40;
const TOKENS: u64 = (1 << GEN_SHIFT) - 1;

pub(crate) fn lease_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        format!(
            "{COMMON}\n{STATE}\n{}",
            include_str!("lua/throttle_lease.lua")
        )
    })
}

/// How [`LeasedThrottleStore`] sizes its leases and how long it keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseConfig {
    /// How much of this replica's traffic for a bucket one lease should
    /// serve: a lease asks for the replica's measured rate for the bucket
    /// times this (50 ms by default). Redis grants at most a quarter of the
    /// bucket's level (at least 1).
    pub lease_duration: Duration,
    /// How long a lease lives in Redis (250 ms by default). The replica
    /// stops spending it an eighth of this earlier, counted from when it
    /// sent the call; Redis counts whatever is still out at the deadline as
    /// spent then.
    pub lease_ttl: Duration,
    /// A lease not renewed within this is given back by the background task
    /// ([`LeasedThrottleStore::spawn_flusher`]; 100 ms by default), well
    /// before its ttl.
    pub give_back_after: Duration,
    /// The first lease of a bucket, before the replica's rate is known (4).
    pub initial_lease: u64,
    /// The largest lease asked for at once (1,000).
    pub max_lease: u64,
    /// How long a bucket that Redis refused is refused locally without
    /// asking again (at most its retry-after; 10 ms by default; zero asks
    /// Redis for every refused request).
    pub refusal_cache: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_millis(50),
            lease_ttl: Duration::from_millis(250),
            give_back_after: Duration::from_millis(100),
            initial_lease: 4,
            max_lease: 1000,
            refusal_cache: Duration::from_millis(10),
        }
    }
}

impl LeaseConfig {
    /// Sets [`lease_duration`](Self::lease_duration).
    #[must_use]
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// Sets [`lease_ttl`](Self::lease_ttl) (at least 8 ms).
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(8));
        self
    }

    /// Sets [`give_back_after`](Self::give_back_after).
    #[must_use]
    pub fn give_back_after(mut self, after: Duration) -> Self {
        self.give_back_after = after;
        self
    }

    /// Sets [`initial_lease`](Self::initial_lease) and
    /// [`max_lease`](Self::max_lease) (both at least 1).
    #[must_use]
    pub fn lease_sizes(mut self, initial: u64, max: u64) -> Self {
        self.max_lease = max.clamp(1, TOKENS);
        self.initial_lease = initial.clamp(1, self.max_lease);
        self
    }

    /// Sets [`refusal_cache`](Self::refusal_cache).
    #[must_use]
    pub fn refusal_cache(mut self, cache: Duration) -> Self {
        self.refusal_cache = cache;
        self
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One bucket's lease in this process.
struct Entry {
    /// `generation << 40 | tokens left to spend`. The slow path raises the
    /// generation whenever it reads the tokens for a report, so a token a
    /// request took before cannot be put back afterwards (it was reported
    /// spent).
    word: AtomicU64,
    /// The lease clock's time until which the tokens may be spent.
    deadline: AtomicU64,
    /// The parameters the lease was taken under.
    t: AtomicU64,
    cap: AtomicU64,
    /// The lease clock's time until which the bucket is refused locally.
    refused_until: AtomicU64,
    /// The lease clock's time at which that refused bucket has a token
    /// again, as Redis answered.
    retry_at: AtomicU64,
    /// The bucket's level (whole tokens, leases excluded) at the last call.
    level: AtomicU64,
    slow: tokio::sync::Mutex<Slow>,
}

struct Slow {
    /// This lease's id in Redis (`l:<replica>:<id>`).
    lease_id: u64,
    /// The tokens Redis records in this lease, as of the last answer.
    held: u64,
    /// When the lease was last granted or renewed.
    granted_at: Instant,
    /// This replica's rate for the bucket, tokens per second (0: unknown).
    rate: f64,
}

impl Entry {
    fn new(lease_id: u64) -> Self {
        Self {
            word: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            t: AtomicU64::new(0),
            cap: AtomicU64::new(0),
            refused_until: AtomicU64::new(0),
            retry_at: AtomicU64::new(0),
            level: AtomicU64::new(0),
            slow: tokio::sync::Mutex::new(Slow {
                lease_id,
                held: 0,
                granted_at: Instant::now(),
                rate: 0.0,
            }),
        }
    }

    /// Takes one token: the generation it was taken under, or `None`.
    #[inline]
    fn take(&self) -> Option<u64> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if word & TOKENS == 0 {
                return None;
            }
            match self.word.compare_exchange_weak(
                word,
                word - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(word >> GEN_SHIFT),
                Err(current) => word = current,
            }
        }
    }

    /// Puts back a token taken under `generation`, unless the slow path has
    /// since reported it spent (then it is lost: under-admission of one).
    fn put_back(&self, generation: u64) {
        let mut word = self.word.load(Ordering::Acquire);
        while word >> GEN_SHIFT == generation {
            match self.word.compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    /// Reads the tokens left and raises the generation; with `empty`, also
    /// takes them all (to give them back).
    fn snapshot(&self, empty: bool) -> u64 {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let generation = ((word >> GEN_SHIFT) + 1) & (u64::MAX >> GEN_SHIFT);
            let tokens = if empty { 0 } else { word & TOKENS };
            match self.word.compare_exchange_weak(
                word,
                generation << GEN_SHIFT | tokens,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return word & TOKENS,
                Err(current) => word = current,
            }
        }
    }

    fn add(&self, tokens: u64) {
        if tokens > 0 {
            self.word.fetch_add(tokens.min(TOKENS), Ordering::AcqRel);
        }
    }

    fn tokens(&self) -> u64 {
        self.word.load(Ordering::Acquire) & TOKENS
    }

    fn matches(&self, t: u64, cap: u64) -> bool {
        self.t.load(Ordering::Relaxed) == t && self.cap.load(Ordering::Relaxed) == cap
    }
}

struct Inner {
    connection: RedisConnection,
    prefix: String,
    time: TimeSource,
    config: LeaseConfig,
    /// This replica's id in lease fields.
    replica: String,
    next_lease: AtomicU64,
    /// The lease clock's origin (with [`TimeSource::Redis`]).
    epoch: Instant,
    /// The latest caller time seen (with [`TimeSource::Caller`]), for the
    /// background task.
    last_now: AtomicU64,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

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
/// With [`TimeSource::Redis`] (the default) the scripts read Redis's
/// `TIME` and the replica times its leases with its monotonic clock; with
/// [`TimeSource::Caller`] both use the time the layer passes.
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

/// One bucket of a request, owned, for the slow path.
struct Wanted {
    key: String,
    index: usize,
    t: u64,
    cap: u64,
}

/// What the slow path sends for one lease.
#[derive(Clone, Copy, Default)]
struct Op {
    spent: u64,
    returned: u64,
    kept: u64,
    want: u64,
}

/// What a lease call answered.
struct Answer {
    refused: Option<usize>,
    retry: u64,
    full: u64,
    /// Per bucket: (granted, lost, level).
    buckets: Vec<(u64, bool, u64)>,
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
                time: TimeSource::Redis,
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

    /// Where the scripts take the time from (default [`TimeSource::Redis`]).
    /// Call it before the store is cloned or used.
    #[must_use]
    pub fn time_source(self, time: TimeSource) -> Self {
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
    pub async fn shutdown(&self) -> Result<(), StoreError> {
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

impl Inner {
    /// The lease clock: Redis's clock is not readable here, so a monotonic
    /// clock of this process times the leases; with a caller's clock, that.
    fn clock(&self, now_unix_nanos: u64) -> u64 {
        match self.time {
            TimeSource::Redis => nanos(self.epoch.elapsed()),
            TimeSource::Caller => now_unix_nanos,
        }
    }

    fn all(&self) -> Vec<(String, Arc<Entry>)> {
        self.entries.read().map_or_else(
            |_| Vec::new(),
            |map| map.iter().map(|(k, e)| (k.clone(), e.clone())).collect(),
        )
    }

    fn entry(&self, key: &str) -> Arc<Entry> {
        if let Some(entry) = self.entries.read().ok().and_then(|m| m.get(key).cloned()) {
            return entry;
        }
        let lease_id = self.next_lease.fetch_add(1, Ordering::Relaxed);
        match self.entries.write() {
            Ok(mut map) => map
                .entry(key.to_owned())
                .or_insert_with(|| Arc::new(Entry::new(lease_id)))
                .clone(),
            // A poisoned map (a panic elsewhere): a lease of its own, not
            // shared with other requests.
            Err(_) => Arc::new(Entry::new(lease_id)),
        }
    }

    fn field(&self, lease_id: u64) -> String {
        format!("l:{}:{lease_id:x}", self.replica)
    }

    /// The synchronous path: one local token from each bucket's lease.
    /// `None` when a lease must be renewed (nothing is kept then).
    fn try_fast(
        &self,
        checks: &[BucketCheck<'_>],
        now: u64,
    ) -> Option<Result<Outcome, StoreError>> {
        if self.time == TimeSource::Caller {
            self.last_now.fetch_max(now, Ordering::Relaxed);
        }
        let clock = self.clock(now);
        let map = self.entries.read().ok()?;
        let mut taken: [(Option<&Entry>, u64); MAX_BUCKETS] = [(None, 0); MAX_BUCKETS];
        let mut key = String::with_capacity(self.prefix.len() + 96);
        let mut best = (0usize, u64::MAX, 0u64);
        let give_back = |taken: &[(Option<&Entry>, u64)]| {
            for (entry, generation) in taken {
                if let Some(entry) = entry {
                    entry.put_back(*generation);
                }
            }
        };
        for (i, check) in checks.iter().enumerate() {
            key.clear();
            write_key(&self.prefix, check, &mut key);
            let t = check.gcra.emission_interval_nanos();
            let cap = check.gcra.capacity_nanos();
            let Some(entry) = map.get(key.as_str()) else {
                give_back(&taken[..i]);
                return None;
            };
            if !entry.matches(t, cap) {
                give_back(&taken[..i]);
                return None;
            }
            let refused_until = entry.refused_until.load(Ordering::Relaxed);
            if clock < refused_until {
                give_back(&taken[..i]);
                let retry_at = entry.retry_at.load(Ordering::Relaxed);
                return Some(Ok(Outcome {
                    admitted: false,
                    bucket: i,
                    remaining: 0,
                    retry_after_nanos: retry_at.saturating_sub(clock),
                    full_after_nanos: cap,
                }));
            }
            if clock >= entry.deadline.load(Ordering::Acquire) {
                give_back(&taken[..i]);
                return None;
            }
            let Some(generation) = entry.take() else {
                give_back(&taken[..i]);
                return None;
            };
            taken[i] = (Some(entry), generation);
            let left = entry
                .tokens()
                .saturating_add(entry.level.load(Ordering::Relaxed));
            if left < best.1 {
                best = (i, left, t);
            }
        }
        Some(Ok(admitted(best, checks)))
    }

    /// Takes one token from each lease, all or none.
    fn take_all(&self, entries: &[Arc<Entry>], clock: u64) -> bool {
        let mut taken: Vec<(&Entry, u64)> = Vec::with_capacity(entries.len());
        for entry in entries {
            let live = clock < entry.deadline.load(Ordering::Acquire);
            match live.then(|| entry.take()).flatten() {
                Some(generation) => taken.push((entry, generation)),
                None => {
                    for (entry, generation) in taken {
                        entry.put_back(generation);
                    }
                    return false;
                }
            }
        }
        true
    }

    /// What to send for one lease: renew it (`need`) or only report it.
    fn op(&self, entry: &Entry, slow: &mut Slow, w: &Wanted, clock: u64, need: bool) -> Op {
        let stale = !entry.matches(w.t, w.cap) || clock >= entry.deadline.load(Ordering::Acquire);
        if stale {
            // Taken under other parameters, or past its local deadline:
            // given back whole, and a new one asked for.
            let left = entry.snapshot(true);
            entry.t.store(w.t, Ordering::Relaxed);
            entry.cap.store(w.cap, Ordering::Relaxed);
            return Op {
                spent: slow.held.saturating_sub(left),
                returned: left,
                kept: 0,
                want: self.want(slow, None),
            };
        }
        let left = entry.snapshot(false);
        let spent = slow.held.saturating_sub(left);
        if left == 0 || need {
            let elapsed = slow.granted_at.elapsed();
            Op {
                spent,
                returned: 0,
                kept: left,
                want: self.want(slow, Some((spent, elapsed))),
            }
        } else {
            Op {
                spent,
                returned: 0,
                kept: left,
                want: 0,
            }
        }
    }

    /// The next lease's size, learning the rate from the last one.
    fn want(&self, slow: &mut Slow, sample: Option<(u64, Duration)>) -> u64 {
        if let Some((spent, elapsed)) = sample
            && slow.held > 0
        {
            #[allow(clippy::cast_precision_loss)] // a rate needs no more than f64's 52 bits
            let rate = spent as f64 / elapsed.as_secs_f64().max(0.000_1);
            slow.rate = if slow.rate > 0.0 {
                (slow.rate + rate) / 2.0
            } else {
                rate
            };
        }
        let config = &self.config;
        if slow.rate <= 0.0 {
            return config.initial_lease;
        }
        // Saturating float-to-int: a huge rate is clamped below.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (slow.rate * config.lease_duration.as_secs_f64()).ceil() as u64;
        n.clamp(1, config.max_lease)
    }

    /// Forfeits a lease after a failed call: Redis may or may not have
    /// applied it, so its tokens are left to be counted spent at their
    /// deadline, and the lease gets a new id.
    fn forfeit(&self, entry: &Entry, slow: &mut Slow) {
        entry.snapshot(true);
        entry.deadline.store(0, Ordering::Release);
        slow.held = 0;
        slow.lease_id = self.next_lease.fetch_add(1, Ordering::Relaxed);
    }

    async fn call(
        &self,
        keys: &[&str],
        params: &[(u64, u64)],
        fields: &[String],
        ops: &[Op],
        now: u64,
    ) -> Result<Answer, StoreError> {
        let mut call = lease_script().call();
        for key in keys {
            call.key(*key);
        }
        match self.time {
            TimeSource::Redis => call.arg("r").arg(0).arg(0),
            TimeSource::Caller => call
                .arg("c")
                .arg(now / 1_000_000_000)
                .arg(now % 1_000_000_000),
        };
        call.arg(u64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(u64::MAX));
        for (((t, cap), field), op) in params.iter().zip(fields).zip(ops) {
            call.arg(*t)
                .arg(*cap)
                .arg(field.as_str())
                .arg(op.spent)
                .arg(op.returned)
                .arg(op.kept)
                .arg(op.want);
        }
        let mut connection = self.connection.clone();
        let started = Instant::now();
        let reply: Result<Vec<i64>, _> = call.invoke(&mut connection).await;
        record_call("throttle_lease", started, reply.as_ref().err());
        let reply = reply.map_err(StoreError::new)?;
        if reply.len() != 3 + 3 * keys.len() {
            return Err(StoreError::msg(
                "the lease script answered an unexpected shape",
            ));
        }
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Answer {
            refused: usize::try_from(reply[0])
                .ok()
                .and_then(|i| i.checked_sub(1)),
            retry: n(reply[1]),
            full: n(reply[2]),
            buckets: reply[3..]
                .chunks_exact(3)
                .map(|c| (n(c[0]), c[1] != 0, n(c[2])))
                .collect(),
        })
    }

    /// Gives one lease back whole (reporting what it spent).
    async fn give_back(&self, key: &str, entry: &Entry, slow: &mut Slow) -> Result<(), StoreError> {
        if slow.held == 0 {
            return Ok(());
        }
        let left = entry.snapshot(true);
        entry.deadline.store(0, Ordering::Release);
        let op = Op {
            spent: slow.held.saturating_sub(left),
            returned: left,
            kept: 0,
            want: 0,
        };
        let params = (
            entry.t.load(Ordering::Relaxed),
            entry.cap.load(Ordering::Relaxed),
        );
        let now = self.last_now.load(Ordering::Relaxed);
        match self
            .call(&[key], &[params], &[self.field(slow.lease_id)], &[op], now)
            .await
        {
            Ok(_) => {
                slow.held = 0;
                Ok(())
            }
            Err(error) => {
                self.forfeit(entry, slow);
                Err(error)
            }
        }
    }

    /// Gives back leases not renewed within `give_back_after`; with
    /// `idle_too`, also forgets buckets that held nothing for ten times that.
    async fn flush(&self, idle_too: bool) {
        let after = self.config.give_back_after;
        // A bucket whose deadline is 0 holds no lease: skipped.
        let candidates: Vec<(String, Arc<Entry>)> = match self.entries.read() {
            Ok(map) => map
                .iter()
                .filter(|(_, e)| idle_too || e.deadline.load(Ordering::Relaxed) != 0)
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            Err(_) => return,
        };
        let mut idle = Vec::new();
        for (key, entry) in candidates {
            let Ok(mut slow) = entry.slow.try_lock() else {
                continue;
            };
            if slow.held > 0
                && slow.granted_at.elapsed() >= after
                && let Err(error) = self.give_back(&key, &entry, &mut slow).await
            {
                tracing::debug!(%error, "throttle leases: giving a lease back failed");
            }
            if slow.held == 0 {
                // Nothing to spend (the tokens are 0 with nothing held, and
                // the slow path, which adds them, is locked out here).
                entry.deadline.store(0, Ordering::Release);
                if idle_too && slow.granted_at.elapsed() >= after * 10 {
                    idle.push(key);
                }
            }
        }
        if idle.is_empty() {
            return;
        }
        if let Ok(mut map) = self.entries.write() {
            for key in idle {
                // Only if nothing uses it now: held by the map alone.
                if map.get(&key).is_some_and(|e| Arc::strong_count(e) == 1) {
                    map.remove(&key);
                }
            }
        }
    }

    /// The slow path: renews the empty leases (reporting the others) in one
    /// call per slot group, then takes one token from each.
    async fn acquire_slow(&self, wanted: Vec<Wanted>, now: u64) -> Result<Outcome, StoreError> {
        // With a caller's clock, the latest time this replica has seen: the
        // tokens a report counts were spent at or before it.
        let now = match self.time {
            TimeSource::Redis => now,
            TimeSource::Caller => now.max(self.last_now.load(Ordering::Relaxed)),
        };
        let entries: Vec<Arc<Entry>> = wanted.iter().map(|w| self.entry(&w.key)).collect();
        // Locks in key order, once per distinct bucket.
        let mut order: Vec<usize> = (0..wanted.len()).collect();
        order.sort_by(|a, b| wanted[*a].key.cmp(&wanted[*b].key));
        order.dedup_by(|a, b| wanted[*a].key == wanted[*b].key);
        let mut guards = Vec::with_capacity(order.len());
        for &i in &order {
            guards.push((i, entries[i].slow.lock().await));
        }
        let cluster = self.connection.is_cluster();
        for _ in 0..ATTEMPTS {
            let clock = self.clock(now);
            if wanted
                .iter()
                .zip(&entries)
                .all(|(w, e)| e.matches(w.t, w.cap))
                && self.take_all(&entries, clock)
            {
                return Ok(self.outcome_admitted(&wanted, &entries));
            }
            // Cluster: the caller's buckets, then the shared ones.
            let groups: Vec<Vec<usize>> = if cluster {
                let (own, shared): (Vec<usize>, Vec<usize>) = guards
                    .iter()
                    .map(|(i, _)| *i)
                    .partition(|i| !wanted[*i].key.contains(":shared}:"));
                [own, shared]
                    .into_iter()
                    .filter(|g| !g.is_empty())
                    .collect()
            } else {
                vec![guards.iter().map(|(i, _)| *i).collect()]
            };
            for group in groups {
                let sent_at = self.clock(now);
                let mut ops = Vec::with_capacity(group.len());
                let mut fields = Vec::with_capacity(group.len());
                for &i in &group {
                    let slow = guards
                        .iter_mut()
                        .find(|(j, _)| *j == i)
                        .map(|(_, g)| &mut **g)
                        .ok_or_else(|| StoreError::msg("a bucket's lock went missing"))?;
                    let empty = entries[i].tokens() == 0;
                    ops.push(self.op(&entries[i], slow, &wanted[i], sent_at, empty));
                    fields.push(self.field(slow.lease_id));
                }
                let keys: Vec<&str> = group.iter().map(|&i| wanted[i].key.as_str()).collect();
                let params: Vec<(u64, u64)> = group
                    .iter()
                    .map(|&i| (wanted[i].t, wanted[i].cap))
                    .collect();
                let answer = self.call(&keys, &params, &fields, &ops, now).await;
                let deadline = sent_at.saturating_add(
                    nanos(self.config.lease_ttl) - nanos(self.config.lease_ttl) / 8,
                );
                let answer = match answer {
                    Ok(answer) => answer,
                    Err(error) => {
                        for &i in &group {
                            if let Some((_, slow)) = guards.iter_mut().find(|(j, _)| *j == i) {
                                self.forfeit(&entries[i], slow);
                            }
                        }
                        return Err(error);
                    }
                };
                for (k, &i) in group.iter().enumerate() {
                    let Some((_, slow)) = guards.iter_mut().find(|(j, _)| *j == i) else {
                        continue;
                    };
                    let (granted, lost, level) = answer.buckets[k];
                    let entry = &entries[i];
                    let op = ops[k];
                    if lost {
                        entry.snapshot(true);
                        slow.held = granted;
                    } else {
                        slow.held = op.kept + granted;
                    }
                    entry.level.store(level, Ordering::Relaxed);
                    if slow.held > 0 {
                        entry.deadline.store(deadline, Ordering::Release);
                    }
                    if op.want > 0 && granted > 0 {
                        slow.granted_at = Instant::now();
                    }
                    entry.add(granted);
                }
                if let Some(k) = answer.refused {
                    let i = group[k];
                    let cache = nanos(self.config.refusal_cache).min(answer.retry);
                    entries[i]
                        .retry_at
                        .store(sent_at.saturating_add(answer.retry), Ordering::Relaxed);
                    entries[i]
                        .refused_until
                        .store(sent_at.saturating_add(cache), Ordering::Relaxed);
                    return Ok(Outcome {
                        admitted: false,
                        bucket: wanted[i].index,
                        remaining: 0,
                        retry_after_nanos: answer.retry,
                        full_after_nanos: answer.full,
                    });
                }
            }
        }
        // Every try's tokens were taken by this replica's other requests
        // (which were admitted with them): refused, to try again at once.
        Ok(Outcome {
            admitted: false,
            bucket: wanted.first().map_or(0, |w| w.index),
            remaining: 0,
            retry_after_nanos: 0,
            full_after_nanos: 0,
        })
    }

    fn outcome_admitted(&self, wanted: &[Wanted], entries: &[Arc<Entry>]) -> Outcome {
        let mut best = (0usize, u64::MAX, 1u64, 0u64);
        for (w, entry) in wanted.iter().zip(entries) {
            let left = entry
                .tokens()
                .saturating_add(entry.level.load(Ordering::Relaxed));
            if left < best.1 {
                best = (w.index, left, w.t, w.cap);
            }
        }
        let remaining = u32::try_from(best.1).unwrap_or(u32::MAX);
        Outcome {
            admitted: true,
            bucket: best.0,
            remaining,
            retry_after_nanos: 0,
            full_after_nanos: best
                .3
                .saturating_sub(best.2.saturating_mul(u64::from(remaining))),
        }
    }
}

/// The admitted outcome of the fast path: the bucket with the fewest tokens
/// left (leased here plus the bucket's level at the last call).
fn admitted(best: (usize, u64, u64), checks: &[BucketCheck<'_>]) -> Outcome {
    let (bucket, left, t) = best;
    let remaining = u32::try_from(left).unwrap_or(u32::MAX);
    let cap = checks.get(bucket).map_or(0, |c| c.gcra.capacity_nanos());
    Outcome {
        admitted: true,
        bucket,
        remaining,
        retry_after_nanos: 0,
        full_after_nanos: cap.saturating_sub(t.saturating_mul(u64::from(remaining))),
    }
}

impl ThrottleStore for LeasedThrottleStore {
    type Future = AcquireFuture;

    fn acquire(&self, checks: &[BucketCheck<'_>], now_unix_nanos: u64) -> Acquire<Self::Future> {
        if checks.len() > MAX_BUCKETS {
            return Acquire::Ready(Err(StoreError::msg(format!(
                "{} buckets in one request; at most {MAX_BUCKETS}",
                checks.len()
            ))));
        }
        if let Some(result) = self.inner.try_fast(checks, now_unix_nanos) {
            return Acquire::Ready(result);
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
        Acquire::Pending(Box::pin(async move {
            inner.acquire_slow(wanted, now_unix_nanos).await
        }))
    }
}
