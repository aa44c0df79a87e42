//! Leases when Redis fails, and what the lean server side costs, on private
//! `redis-server`s and a private Redis Cluster (so that stopping one, or
//! reading its statistics, disturbs no other test):
//!
//! - Redis killed mid-load, one server or the cluster master holding the
//!   store's keys: fail-open serves at once (the circuit breaker),
//!   fail-closed refuses, blocks in hand keep serving exactly, nothing
//!   panics, and requests are counted again within 1 s of Redis serving
//!   again;
//! - a replica killed mid-load (on the shared server and cluster) loses at
//!   most its block: the fleet admits between `limit - max_block` and
//!   `limit`;
//! - a replica starts while Redis is down (`lazy_connect`) and joins when it
//!   comes up;
//! - at steady state, Redis round trips per request and Redis CPU per call,
//!   from `INFO commandstats`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::ffi::OsStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis_control_plane::{CounterRef, QuotaEngine, StoreOptions};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::store::QuotaStore;
use portcullis_quota::{Calendar, OnStoreError, QuotaLayer};
use portcullis_redis::{RedisConfig, RedisControlPlane, RedisQuotaStore};
use tower::{ServiceBuilder, ServiceExt};

/// A private server that keeps its data across a `kill -9` (append-only
/// file, fsync on every write), as a production Redis with persistence.
struct DurableServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl DurableServer {
    fn start(name: &str) -> DurableServer {
        let port = support::free_ports(1)[0];
        let dir = std::env::temp_dir().join(format!("portcullis-{name}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = DurableServer {
            port,
            dir,
            child: None,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        let args: [&OsStr; 6] = [
            OsStr::new("--appendonly"),
            OsStr::new("yes"),
            OsStr::new("--appendfsync"),
            OsStr::new("always"),
            OsStr::new("--dir"),
            self.dir.as_os_str(),
        ];
        self.child = Some(support::spawn_redis(self.port, &args).expect("redis-server starts"));
    }
}

impl Drop for DurableServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn plan(id: &str, limit: u64) -> Arc<UsagePlan> {
    Arc::new(
        UsagePlan::new(id)
            .unwrap()
            .with_quota(QuotaSettings::new(limit, QuotaPeriod::Day).unwrap()),
    )
}

/// One answer through `layer` for `key` in `plan`, and how long it took.
async fn call(
    layer: &QuotaLayer<QuotaEngine<RedisControlPlane>>,
    plan: &Arc<UsagePlan>,
    key: &str,
) -> (StatusCode, Duration) {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let mut request = Request::new(());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new(key).with_usage_plan(plan.clone()));
    let started = Instant::now();
    let status = service.oneshot(request).await.unwrap().status();
    (status, started.elapsed())
}

fn breaker_config(config: RedisConfig) -> RedisConfig {
    config
        .key_prefix("faults")
        .circuit_breaker(3, Duration::from_millis(100))
}

/// Redis for a fault test: one server or the master of a cluster that
/// holds the store's keys, killed and restarted with its data.
trait Faulty {
    fn kill_redis(&mut self);
    fn restart_redis(&mut self);
    /// Whether Redis itself serves again after a restart: at once for one
    /// server; for a cluster master, once it says `cluster_state:ok`
    /// (Redis keeps a restarted master failed for 2 s, its
    /// `CLUSTER_WRITABLE_DELAY`, whatever the client does).
    fn serving(&self) -> bool;
}

impl Faulty for DurableServer {
    fn kill_redis(&mut self) {
        self.kill();
    }

    fn restart_redis(&mut self) {
        self.restart();
    }

    fn serving(&self) -> bool {
        true
    }
}

/// A private durable cluster and the master that holds the store's keys
/// (every control-plane key shares the hash tag `{<prefix>:cp}`).
struct DurableCluster {
    cluster: support::PrivateCluster,
    owner: usize,
}

impl Faulty for DurableCluster {
    fn kill_redis(&mut self) {
        self.cluster.nodes[self.owner].stop();
    }

    fn restart_redis(&mut self) {
        self.cluster.nodes[self.owner].restart();
    }

    fn serving(&self) -> bool {
        support::cluster_ok(self.cluster.nodes[self.owner].port)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_load_policies_hold_and_blocks_in_hand_stay_exact() {
    if support::single("lease-faults").is_none() {
        return;
    }
    let mut server = DurableServer::start("lease-faults");
    let config = breaker_config(RedisConfig::single(server.url()));
    killed_mid_load("redis", &mut server, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_master_killed_mid_load_policies_hold_and_blocks_in_hand_stay_exact() {
    // Only where the cluster tests run; on a private cluster, so that
    // killing a master disturbs no other test.
    if support::cluster("lease-faults-cluster").is_none() {
        return;
    }
    let cluster = support::PrivateCluster::start_durable("lease-faults-cluster");
    let config = breaker_config(RedisConfig::cluster(cluster.urls()))
        .connect_timeout(Duration::from_millis(200));
    let owner = cluster.owner_of(&format!("{{{}:cp}}", config.prefix()));
    let mut redis = DurableCluster { cluster, owner };
    killed_mid_load("cluster", &mut redis, &config).await;
}

/// Redis killed under load: fail-open serves at once, fail-closed refuses,
/// the block in hand keeps serving exactly, nothing panics, and requests
/// are counted again within 1 s of Redis serving again.
async fn killed_mid_load(name: &str, redis: &mut impl Faulty, config: &RedisConfig) {
    let store = RedisControlPlane::connect(config, StoreOptions::default())
        .await
        .unwrap();
    let engine = QuotaEngine::new(store.clone());
    let _task = engine.spawn_flusher(Duration::from_millis(200));
    let open = QuotaLayer::with_store(engine.clone()).on_store_error(OnStoreError::Allow);
    let closed = QuotaLayer::with_store(engine.clone()).on_store_error(OnStoreError::Refuse);
    const SMALL: u64 = 40;
    let small = plan("small", SMALL);
    let big = plan("big", 1_000_000);

    // A block in hand for the small key, and traffic on the big one.
    assert_eq!(call(&closed, &small, "k").await.0, StatusCode::OK);
    for _ in 0..50 {
        assert_eq!(call(&closed, &big, "busy").await.0, StatusCode::OK);
    }
    assert!(store.is_available());

    // Load on the big key all along, through the fail-open layer.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let load = {
        let (open, big, stop, served) = (open.clone(), big.clone(), stop.clone(), served.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = call(&open, &big, "busy").await;
                assert_eq!(status, StatusCode::OK, "fail-open always serves");
                served.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    redis.kill_redis();
    let killed = Instant::now();
    // The small key's block keeps serving, exactly: fail-closed admits
    // what is left of it, then refuses (500), never 429 (it cannot know).
    let mut admitted_down = 0u64;
    let mut refused_down = 0u64;
    for _ in 0..60 {
        match call(&closed, &small, "k").await.0 {
            StatusCode::OK => admitted_down += 1,
            StatusCode::INTERNAL_SERVER_ERROR => refused_down += 1,
            other => panic!("{name}: fail-closed while Redis is down answered {other}"),
        }
    }
    // A key with no block: fail-open serves at once, fail-closed refuses.
    let mut slowest_open = Duration::ZERO;
    for _ in 0..50 {
        let (status, took) = call(&open, &small, "fresh").await;
        assert_eq!(status, StatusCode::OK, "{name}: fail-open serves");
        slowest_open = slowest_open.max(took);
    }
    for _ in 0..10 {
        let (status, _) = call(&closed, &small, "fresh-closed").await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{name}: fail-closed refuses"
        );
    }
    assert!(
        !store.is_available(),
        "{name}: readiness says Redis is down"
    );
    let served_before = served.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let served_while_down = served.load(Ordering::Relaxed) - served_before;
    let down_for = killed.elapsed();

    redis.restart_redis();
    let restarted = Instant::now();
    // When Redis serves again (at once for one server), and when the layer
    // counts a request again: the bound is on the time between.
    let mut serving_at = None;
    let recovered = loop {
        if serving_at.is_none() && redis.serving() {
            serving_at = Some(restarted.elapsed());
        }
        if call(&closed, &small, "after").await.0 == StatusCode::OK {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "{name}: requests are counted again after Redis is back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The layer may count a request before this loop saw Redis say ok.
    let serving = serving_at.unwrap_or(recovered);
    let lag = recovered.saturating_sub(serving);
    assert!(store.is_available());
    stop.store(true, Ordering::Relaxed);
    load.await.expect("the load task never panicked");

    // Exactness: what the block served while Redis was down was counted
    // once it came back, and the key admits exactly its quota in all.
    let mut admitted_after = 0u64;
    loop {
        match call(&closed, &small, "k").await.0 {
            StatusCode::OK => admitted_after += 1,
            StatusCode::TOO_MANY_REQUESTS => break,
            other => panic!("{name}: after recovery answered {other}"),
        }
    }
    let total = 1 + admitted_down + admitted_after;
    println!(
        "{name}: Redis killed for {down_for:?}: the block in hand admitted {admitted_down} \
         (fail-closed refused {refused_down} after it); fail-open served {served_while_down} in \
         500 ms, slowest fresh-key answer {slowest_open:?}; Redis served again {serving:?} \
         after the restart, requests counted again {recovered:?} after it ({lag:?} after \
         Redis served); the key admitted {total} of {SMALL}"
    );
    assert!(
        admitted_down > 0,
        "{name}: the block in hand served while Redis was down"
    );
    assert_eq!(
        total, SMALL,
        "{name}: the key admitted exactly its quota in all"
    );
    // 1 s: the breaker probes every 100 ms here (250 ms by default), and
    // the connection reconnects within its 200 ms backoff; the rest is
    // slack for a loaded 2-core test machine.
    assert!(
        lag < Duration::from_secs(1),
        "{name}: counted again {lag:?} after Redis served again"
    );
    assert!(
        slowest_open < Duration::from_millis(50),
        "{name}: fail-open answers at once while the circuit is open: slowest {slowest_open:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starts_while_redis_is_down_and_joins_when_it_is_up() {
    if support::single("lease-lazy").is_none() {
        return;
    }
    let port = support::free_ports(1)[0];
    let config =
        breaker_config(RedisConfig::single(format!("redis://127.0.0.1:{port}"))).lazy_connect(true);
    let started = Instant::now();
    let store = RedisControlPlane::connect(&config, StoreOptions::default())
        .await
        .expect("starts while Redis is down");
    let start_took = started.elapsed();
    assert!(!store.is_available());
    let engine = QuotaEngine::new(store.clone());
    let open = QuotaLayer::with_store(engine.clone()).on_store_error(OnStoreError::Allow);
    let closed = QuotaLayer::with_store(engine.clone()).on_store_error(OnStoreError::Refuse);
    let small = plan("small", 5);
    let (status, took) = call(&open, &small, "k").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "fail-open serves while Redis is down"
    );
    assert!(took < Duration::from_millis(50), "at once: {took:?}");
    assert_eq!(
        call(&closed, &small, "k").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let mut server = support::spawn_redis(port, &[]).expect("redis-server starts");
    let up = Instant::now();
    while !store.is_available() {
        assert!(
            up.elapsed() < Duration::from_secs(2),
            "connects once Redis is up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let joined = up.elapsed();
    let mut admitted = 0;
    while call(&closed, &small, "k").await.0 == StatusCode::OK {
        admitted += 1;
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(admitted, 5, "once up, the quota is counted exactly");
    println!(
        "started in {start_took:?} with Redis down; fail-open answered in {took:?}; joined \
         {joined:?} after Redis came up"
    );
}

fn counter(key: &str, limit: u64) -> CounterRef {
    let day = time::OffsetDateTime::now_utc().date();
    CounterRef {
        plan_id: "steady".into(),
        key_id: key.into(),
        quota: QuotaSettings::new(limit, QuotaPeriod::Day).unwrap(),
        window: Calendar::new().window_of_date(QuotaPeriod::Day, day),
        day,
        initial_window: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steady_state_round_trips_per_request_and_redis_cpu_per_call() {
    if support::single("lease-steady").is_none() {
        return;
    }
    let server = support::PrivateServer::start();
    let config = RedisConfig::single(server.url()).timeout(Duration::from_secs(5));

    // Leases: 3 replicas, 48 clients, one key each 16 clients share per
    // replica... all on one key, as the fleet test.
    let mut engines = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = RedisControlPlane::connect(&config, StoreOptions::default())
            .await
            .unwrap();
        let engine = QuotaEngine::new(store);
        tasks.push(engine.spawn_flusher(Duration::from_secs(1)));
        engines.push(engine);
    }
    let c = counter("steady-key", 1_000_000_000);
    let stop = Arc::new(AtomicBool::new(false));
    let decided = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..48 {
        let (engine, c) = (engines[i % 3].clone(), c.clone());
        let (stop, decided) = (stop.clone(), decided.clone());
        clients.spawn(async move {
            let request = c.as_request();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    let decision = engine.consume(&request).resolve().await;
                    assert!(decision.unwrap().admitted);
                    decided.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    // Warm up (rates learned, blocks sized), then measure 2 s.
    tokio::time::sleep(Duration::from_millis(700)).await;
    support::reset_stats(server.port);
    let before = decided.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (calls, usec) = support::command_stats(server.port, "evalsha");
    let (eval_calls, _) = support::command_stats(server.port, "eval");
    let decisions = decided.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = clients.join_next().await {
        joined.unwrap();
    }
    let calls = calls + eval_calls;
    #[allow(clippy::cast_precision_loss)]
    let (per_request, usec_per_call, usec_per_decision) = (
        calls as f64 / decisions as f64,
        usec as f64 / calls.max(1) as f64,
        usec as f64 / decisions as f64,
    );

    // Without leases: RedisQuotaStore decides every request in Redis.
    let quota = RedisQuotaStore::connect(&config).await.unwrap();
    let q = counter("per-request", 1_000_000_000);
    let request = q.as_request();
    for _ in 0..200 {
        quota.consume(&request).resolve().await.unwrap();
    }
    support::reset_stats(server.port);
    const PER_REQUEST: u64 = 2000;
    for _ in 0..PER_REQUEST {
        quota.consume(&request).resolve().await.unwrap();
    }
    let (quota_calls, quota_usec) = support::command_stats(server.port, "evalsha");
    #[allow(clippy::cast_precision_loss)]
    let quota_usec_per_call = quota_usec as f64 / quota_calls.max(1) as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "leases, 3 replicas x 16 clients on one key: {decisions} decisions in 2 s, {calls} Redis \
         calls: {per_request:.5} round trips per request, {usec_per_call:.2} µs of Redis CPU per \
         call, {usec_per_decision:.4} µs per decision; without leases (RedisQuotaStore): \
         {quota_calls} calls for {PER_REQUEST} requests, {quota_usec_per_call:.2} µs per call; \
         load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(decisions > 0 && calls > 0, "the load ran and reached Redis");
    assert!(
        per_request <= 0.05,
        "at most 0.05 Redis round trips per request at steady state: {per_request}"
    );
}

/// `clients` tasks admitting on `engine` until stopped, each pausing 1 ms
/// every 20 decisions; what they admitted is added to `admitted`.
fn clients(
    engine: &QuotaEngine<RedisControlPlane>,
    counter: &CounterRef,
    clients: usize,
    stop: &Arc<AtomicBool>,
    admitted: &Arc<AtomicU64>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (engine, counter) = (engine.clone(), counter.clone());
        let (stop, admitted) = (stop.clone(), admitted.clone());
        tasks.spawn(async move {
            let request = counter.as_request();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    let decision = engine.consume(&request).resolve().await;
                    if decision.expect("the store answers").admitted {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_load_loses_at_most_its_block() {
    for (name, config) in support::backends("lease-killed-mid-load") {
        // Blocks of at most 64: what a crash may cost the key.
        const MAX_BLOCK: u64 = 64;
        const QUOTA: u64 = 3_000;
        let engine_config = portcullis_control_plane::EngineConfig {
            max_block: MAX_BLOCK,
            ..portcullis_control_plane::EngineConfig::default()
        };
        let c = counter("killed-mid-load", QUOTA);
        let start = || async {
            let store = support::connect_control_plane(&config).await;
            let engine = QuotaEngine::with_config(store, engine_config);
            let task = engine.spawn_flusher(Duration::from_millis(200));
            (engine, task)
        };
        let (a, a_task) = start().await;
        let (b, b_task) = start().await;
        let stop = Arc::new(AtomicBool::new(false));
        let (by_a, by_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut a_clients = clients(&a, &c, 8, &stop, &by_a);
        let mut b_clients = clients(&b, &c, 8, &stop, &by_b);
        let deadline = Instant::now() + Duration::from_secs(20);
        while by_a.load(Ordering::Relaxed) < QUOTA / 4 {
            assert!(Instant::now() < deadline, "{name}: A admits under load");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // A dies mid-load, as a crash leaves it: its clients and background
        // task stop wherever they are (a call to Redis may be in flight),
        // nothing is given back.
        a_clients.abort_all();
        while a_clients.join_next().await.is_some() {}
        a_task.abort();
        drop(a);
        let admitted_a = by_a.load(Ordering::Relaxed);
        // B's clients run on until the quota is spent, then B alone admits
        // what it can.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let before = by_b.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if by_b.load(Ordering::Relaxed) == before {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: B spends the quota");
        }
        stop.store(true, Ordering::Relaxed);
        while let Some(joined) = b_clients.join_next().await {
            joined.expect("B's clients never panic");
        }
        let request = c.as_request();
        let mut drained = 0;
        while b
            .consume(&request)
            .resolve()
            .await
            .expect("the store answers")
            .admitted
        {
            drained += 1;
        }
        b_task.abort();
        let total = admitted_a + by_b.load(Ordering::Relaxed) + drained;
        println!(
            "{name}: A admitted {admitted_a} and was killed mid-load; the fleet admitted {total} \
             of {QUOTA}: {} under (blocks of at most {MAX_BLOCK})",
            QUOTA - total.min(QUOTA)
        );
        assert!(total <= QUOTA, "{name}: never over the quota: {total}");
        assert!(
            total >= QUOTA - MAX_BLOCK,
            "{name}: at most A's block lost: {total} of {QUOTA}"
        );
    }
}
