//! Throttle leases on Redis and Redis Cluster: replicas
//! (`LeasedThrottleStore`s, each on its own connection) spend leased tokens
//! in memory, and the fleet still admits at most `burst + rate·τ` in every
//! window of length τ.
//!
//! The exactness tests drive the stores with the caller's clock
//! (`ScriptClock::Caller`, the clock the scripts then use too) in phases:
//! every request of a phase is decided at the phase's time, so each
//! admission has an exact time and every window can be counted. The clock
//! never runs slower than real time, so keys expire no earlier than the
//! scripts expect.
//!
//! - many tasks on 3 replicas: no window exceeds the bound, and the fleet
//!   admits close to it;
//! - a replica dropped while holding a lease (a kill: no give-back) costs at
//!   most that lease;
//! - at steady state on a hot key: Redis scripts per request, and Redis CPU
//!   per call of each throttle script (`INFO commandstats`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_redis::{
    LeaseConfig, LeasedThrottleStore, RedisConfig, RedisThrottleStore, ScriptClock,
};
use portcullis_throttle::store::{
    Answer, BucketCheck, BucketKey, CallerKey, CallerKeySource, Level, Outcome,
};
use portcullis_throttle::{Gcra, ThrottleStore};

const S: u64 = 1_000_000_000;

async fn decide<St: ThrottleStore>(store: &St, checks: &[BucketCheck<'_>], now: u64) -> Outcome {
    match store.acquire(checks, now) {
        Answer::Ready(result) => result.expect("the store decides"),
        Answer::Pending(future) => future.await.expect("the store decides"),
    }
}

fn key_check(caller: &[u8], gcra: Gcra) -> BucketCheck<'_> {
    BucketCheck {
        key: BucketKey {
            level: Level::Key,
            stage: None,
            method: None,
            caller: Some(CallerKey {
                source: CallerKeySource::ApiKey,
                value: caller,
            }),
        },
        gcra,
    }
}

fn account_check(gcra: Gcra) -> BucketCheck<'static> {
    BucketCheck {
        key: BucketKey {
            level: Level::Account,
            stage: None,
            method: None,
            caller: None,
        },
        gcra,
    }
}

async fn replica(config: &RedisConfig) -> LeasedThrottleStore {
    LeasedThrottleStore::connect(&config.clone().timeout(Duration::from_secs(5)))
        .await
        .expect("connects")
        .script_clock(ScriptClock::Caller)
}

/// A phase clock: each phase's time is at least `step` after the last, and
/// never behind real time since the start.
struct PhaseClock {
    origin: u64,
    started: Instant,
    last: u64,
}

impl PhaseClock {
    fn new() -> Self {
        Self {
            origin: 1_900_000_000 * S,
            started: Instant::now(),
            last: 0,
        }
    }

    fn next(&mut self, step: u64) -> u64 {
        let real = self.origin + u64::try_from(self.started.elapsed().as_nanos()).unwrap();
        self.last = (self.last + step).max(real);
        self.last
    }
}

/// Checks every window between two phases against `burst + rate·τ`
/// (`t` ns per token): answers the worst excess (≤ 0 when the bound holds).
fn worst_window(phases: &[(u64, u64)], burst: u64, t: u64) -> i64 {
    let mut worst = i64::MIN;
    for i in 0..phases.len() {
        let mut admitted = 0;
        for j in i..phases.len() {
            admitted += phases[j].1;
            let tau = phases[j].0 - phases[i].0;
            let bound = burst + tau / t;
            worst = worst.max(i64::try_from(admitted).unwrap() - i64::try_from(bound).unwrap());
        }
    }
    worst
}

/// One phase: `tasks` requests per replica at `now`, concurrently, on the
/// key bucket (and the account's when `account` is given). Answers how many
/// were admitted.
async fn phase(
    replicas: &[Arc<LeasedThrottleStore>],
    tasks: usize,
    now: u64,
    key: Gcra,
    account: Option<Gcra>,
) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    for store in replicas {
        for _ in 0..tasks {
            let store = store.clone();
            set.spawn(async move {
                let mut checks = vec![key_check(b"hot-key", key)];
                if let Some(account) = account {
                    checks.push(account_check(account));
                }
                u64::from(decide(&*store, &checks, now).await.admitted)
            });
        }
    }
    let mut admitted = 0;
    while let Some(one) = set.join_next().await {
        admitted += one.expect("no task panics");
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leasing_fleet_never_admits_more_than_burst_plus_rate_times_t() {
    for (name, config) in support::backends("tleases-exact") {
        // 400 tokens a second, a burst of 40; each request also takes a token
        // from the account's bucket (2,000/s, burst 100), all or nothing.
        let key = Gcra::from_parts(S / 400, NonZeroU32::new(40).unwrap());
        let account = Gcra::from_parts(S / 2_000, NonZeroU32::new(100).unwrap());
        let mut replicas = Vec::new();
        for _ in 0..3 {
            replicas.push(Arc::new(replica(&config).await));
        }
        let mut clock = PhaseClock::new();
        let mut phases = Vec::new();
        // 300 phases of at least 5 ms: 8 tasks per replica per phase (24
        // requests for the 2 tokens a phase refills).
        for _ in 0..300 {
            let now = clock.next(5_000_000);
            let admitted = phase(&replicas, 8, now, key, Some(account)).await;
            phases.push((now, admitted));
        }
        let total: u64 = phases.iter().map(|p| p.1).sum();
        let span = phases.last().unwrap().0 - phases[0].0;
        let ceiling = 40 + span / key.emission_interval_nanos();
        let worst = worst_window(&phases, 40, key.emission_interval_nanos());
        println!(
            "{name}: {total} admitted over {:.3} s of the phase clock; the bound for the whole run \
             is {ceiling} ({:.1}%); worst window excess {worst}",
            span as f64 / S as f64,
            100.0 * total as f64 / ceiling as f64
        );
        assert!(
            worst <= 0,
            "{name}: a window exceeded burst + rate·τ by {worst}"
        );
        // Under-admission is bounded by the leases out at a time (a quarter
        // of the level each, near zero here): the fleet gets close.
        assert!(
            total * 100 >= ceiling * 85,
            "{name}: {total} admitted of a possible {ceiling}"
        );
        for store in &replicas {
            store.shutdown().await.expect("gives back");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_holding_a_lease_loses_at_most_that_lease() {
    for (name, config) in support::backends("tleases-kill") {
        // A burst of 2,000 that (practically) never refills: the fleet can
        // admit exactly 2,000, less what the dead replica held.
        let key = Gcra::from_parts(1_000 * S, NonZeroU32::new(2_000).unwrap());
        let victim = Arc::new(replica(&config).await);
        let mut survivors = Vec::new();
        for _ in 0..2 {
            survivors.push(Arc::new(replica(&config).await));
        }
        let mut clock = PhaseClock::new();
        let mut admitted = 0;
        let all: Vec<Arc<LeasedThrottleStore>> = std::iter::once(victim.clone())
            .chain(survivors.iter().cloned())
            .collect();
        for _ in 0..20 {
            let now = clock.next(1_000_000);
            admitted += phase(&all, 8, now, key, None).await;
        }
        // Killed: dropped without a give-back, whatever it held.
        let lost = victim.leased_tokens();
        drop(all);
        drop(Arc::into_inner(victim).expect("the last handle"));
        assert!(lost > 0, "{name}: the victim held a lease when it died");
        // The others go on past the victim's lease deadline (250 ms), then
        // give back theirs, and the fleet drains what is left.
        let mut refused_phases = 0;
        while refused_phases < 3 {
            let now = clock.next(20_000_000);
            let got = phase(&survivors, 8, now, key, None).await;
            admitted += got;
            if got == 0 {
                refused_phases += 1;
                for store in &survivors {
                    store.shutdown().await.expect("gives back");
                }
            } else {
                refused_phases = 0;
            }
        }
        println!("{name}: the victim died holding {lost}; the fleet admitted {admitted} of 2000");
        assert!(
            admitted + lost <= 2_000,
            "{name}: {admitted} admitted with {lost} lost: over-admission"
        );
        // Requests that lost their token to a concurrent report (a race on
        // one replica) cost one each: allow a few.
        assert!(
            admitted + lost + 8 >= 2_000,
            "{name}: {admitted} admitted, {lost} lost: more than the lease went missing"
        );
    }
}

/// Redis CPU per `EVALSHA` of `n` calls made by `call`.
async fn usec_per_call<F, Fut>(port: u16, n: u64, mut call: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    support::reset_stats(port);
    for _ in 0..n {
        call().await;
    }
    let (calls, usec) = support::command_stats(port, "evalsha");
    assert!(calls >= n, "{calls} EVALSHA for {n} calls");
    usec as f64 / calls as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steady_state_scripts_per_request_and_redis_cpu_per_call() {
    if support::single("tleases-steady").is_none() {
        return;
    }
    let server = support::PrivateServer::start();
    let config = RedisConfig::single(server.url()).timeout(Duration::from_secs(5));
    // A hot key that admits everything: 1,000,000 a second, burst 100,000.
    let key = Gcra::from_parts(1_000, NonZeroU32::new(100_000).unwrap());
    let mut replicas = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = Arc::new(
            LeasedThrottleStore::connect(&config)
                .await
                .unwrap()
                .lease_config(LeaseConfig::default()),
        );
        tasks.push(store.spawn_flusher(Duration::from_millis(25)));
        replicas.push(store);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let decided = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..48 {
        let store = replicas[i % 3].clone();
        let (stop, decided) = (stop.clone(), decided.clone());
        clients.spawn(async move {
            let checks = [key_check(b"steady-key", key)];
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    assert!(decide(&*store, &checks, 0).await.admitted);
                    decided.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    // Warm up (rates learned, leases sized), then measure 2 s.
    tokio::time::sleep(Duration::from_millis(700)).await;
    support::reset_stats(server.port);
    let before = decided.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (calls, usec) = support::command_stats(server.port, "evalsha");
    let decisions = decided.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = clients.join_next().await {
        joined.unwrap();
    }
    let per_request = calls as f64 / decisions as f64;
    let lease_usec = usec as f64 / calls.max(1) as f64;

    // Per call, sequentially, in the same run: an empty script (the floor
    // of any EVALSHA), the non-leased decision, and a lease renewal.
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let empty: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 1")
        .query_async(&mut connection)
        .await
        .unwrap();
    let floor = usec_per_call(server.port, 2_000, || {
        let mut connection = connection.clone();
        let empty = empty.clone();
        async move {
            let _: i64 = redis::cmd("EVALSHA")
                .arg(&empty)
                .arg(1)
                .arg("floor-key")
                .arg("r")
                .query_async(&mut connection)
                .await
                .unwrap();
        }
    })
    .await;
    let plain = RedisThrottleStore::connect(&config).await.unwrap();
    let acquire = usec_per_call(server.port, 2_000, || {
        let plain = &plain;
        async move {
            let checks = [key_check(b"plain-key", key)];
            assert!(decide(plain, &checks, 0).await.admitted);
        }
    })
    .await;
    // Leases of one token: every request renews.
    let single = LeasedThrottleStore::connect(&config)
        .await
        .unwrap()
        .lease_config(LeaseConfig::default().lease_sizes(1, 1));
    let renew = usec_per_call(server.port, 2_000, || {
        let single = &single;
        async move {
            let checks = [key_check(b"renew-key", key)];
            assert!(decide(single, &checks, 0).await.admitted);
        }
    })
    .await;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "leases, 3 replicas x 16 clients on one key: {decisions} decisions in 2 s, {calls} \
         scripts: {per_request:.5} per request, {lease_usec:.2} µs of Redis CPU per lease call; \
         per call (sequential): empty script {floor:.2} µs, throttle_acquire {acquire:.2} µs \
         ({:.2}x the empty script), lease renewal {renew:.2} µs ({:.2}x); load average {}",
        acquire / floor,
        renew / floor,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(decisions > 0 && calls > 0, "the load ran and reached Redis");
    assert!(
        per_request <= 0.05,
        "at most 0.05 scripts per request at steady state: {per_request}"
    );
}
