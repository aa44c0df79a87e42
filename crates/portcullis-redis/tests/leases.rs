//! Quota leases on Redis: replicas (`QuotaEngine`s, each on its own
//! `RedisControlPlane` connection) spend blocks of a key's quota locally.
//! These tests check that a fleet stays exact when the quota changes under
//! it and when a replica dies, on a single server and on Cluster:
//!
//! - UpdateUsage made on one replica reaches the blocks another holds within
//!   1 s, and the period then admits exactly what the update set;
//! - a plan's quota lowered on one replica is obeyed by the other within 1 s;
//! - a replica dropped without shutting down loses at most its block
//!   (under-admission, never over);
//! - 3 replicas and 64 clients admit exactly a quota of 10,000, cold and warm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_control_plane::{
    ApiKeyUpdate, ControlPlaneStore, CounterRef, NewApiKey, NewUsagePlan, QuotaEngine,
};
use portcullis_core::plan::{ApiStage, QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::Calendar;
use portcullis_quota::store::{QuotaRequest, QuotaStore, UsageUpdate};
use portcullis_redis::{RedisConfig, RedisControlPlane};

use support::{Replica, connect_control_plane as connect, fresh};

/// The background task's period: flushes, expiry and following changes.
const FLUSH: Duration = Duration::from_millis(200);

fn counter(key: &str, limit: u64) -> CounterRef {
    let day = time::OffsetDateTime::now_utc().date();
    let quota = QuotaSettings::new(limit, QuotaPeriod::Day).unwrap();
    CounterRef {
        plan_id: "gold".into(),
        key_id: key.into(),
        quota,
        window: Calendar::new().window_of_date(QuotaPeriod::Day, day),
        day,
        initial_window: None,
    }
}

/// One replica's quota engine, with its background task running.
struct Engine {
    store: RedisControlPlane,
    engine: QuotaEngine<RedisControlPlane>,
    _task: tokio::task::JoinHandle<()>,
}

impl Engine {
    async fn start(config: &RedisConfig) -> Engine {
        let store = connect(config).await;
        let engine = QuotaEngine::new(store.clone());
        let task = engine.spawn_flusher(FLUSH);
        Engine {
            store,
            engine,
            _task: task,
        }
    }
}

async fn admit(engine: &QuotaEngine<RedisControlPlane>, request: &QuotaRequest<'_>) -> bool {
    let decision = engine.consume(request).resolve().await;
    decision.expect("the store answers").admitted
}

/// Clients admitting on one replica until told to stop, each pausing 1 ms
/// every 20 requests (so the replica's background task gets to run).
struct Load {
    stop: Arc<AtomicBool>,
    admitted: Arc<AtomicU64>,
    /// When the last admission happened, in µs since `started`.
    last_admit_us: Arc<AtomicU64>,
    started: Instant,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    fn start(
        engine: &QuotaEngine<RedisControlPlane>,
        counter: &CounterRef,
        clients: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let admitted = Arc::new(AtomicU64::new(0));
        let last_admit_us = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let (engine, counter) = (engine.clone(), counter.clone());
            let (stop, admitted, last) = (stop.clone(), admitted.clone(), last_admit_us.clone());
            tasks.spawn(async move {
                let request = counter.as_request();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..20 {
                        if admit(&engine, &request).await {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            let at = u64::try_from(started.elapsed().as_micros()).unwrap();
                            last.fetch_max(at, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
        }
        Load {
            stop,
            admitted,
            last_admit_us,
            started,
            tasks,
        }
    }

    fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    async fn until_admitted(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.admitted() < n {
            assert!(Instant::now() < deadline, "the load admitted {n} in 30 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// When the last admission happened.
    fn last_admission(&self) -> Instant {
        self.started + Duration::from_micros(self.last_admit_us.load(Ordering::Relaxed))
    }

    async fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(joined) = self.tasks.join_next().await {
            joined.unwrap();
        }
        self.admitted()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn update_usage_on_one_replica_reaches_the_blocks_another_holds_within_a_second() {
    for (name, config) in support::backends("lease-update") {
        let config = fresh(&config);
        let a = Engine::start(&config).await;
        let b = Engine::start(&config).await;

        // Set remaining while B spends blocks under load: the period then
        // admits exactly what was set more than the `used` UpdateUsage
        // answered, whatever B held and spent before it heard.
        const SET: u64 = 3000;
        let c = counter("k-set", 1_000_000);
        let load = Load::start(&b.engine, &c, 8);
        load.until_admitted(2000).await;
        let record = a
            .engine
            .update(&c.as_request(), UsageUpdate::SetRemaining(SET))
            .await
            .unwrap();
        assert_eq!(record.remaining, SET, "{name}");
        // Until B refuses: the 3,000 last well under a second at this load.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let quiet = load.last_admission().elapsed() > Duration::from_millis(300);
            if quiet && load.admitted() > 2000 {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: B stops admitting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let total = load.stop().await;
        b.engine.shutdown().await.unwrap();
        let today = c.day;
        let usage = a
            .store
            .get_usage("gold", "k-set", today, today)
            .await
            .unwrap();
        assert_eq!(
            total,
            record.used + SET,
            "{name}: exactly {SET} admitted after the update's used {}",
            record.used
        );
        assert_eq!((usage[0].used, usage[0].remaining), (total, 0), "{name}");

        // Set remaining to 0 under load: B obeys within 1 s.
        let c = counter("k-zero", 1_000_000);
        let load = Load::start(&b.engine, &c, 8);
        load.until_admitted(2000).await;
        let changed = Instant::now();
        let record = a
            .engine
            .update(&c.as_request(), UsageUpdate::SetRemaining(0))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = load.last_admission().saturating_duration_since(changed);
        let total = load.stop().await;
        b.engine.shutdown().await.unwrap();
        let late = total - record.used;
        assert!(
            after < Duration::from_secs(1),
            "{name}: B admitted {after:?} after the update"
        );
        assert!(
            late <= 1000,
            "{name}: what B admitted before it heard is within its block (1,000 at most): {late}"
        );

        // Extend a spent quota on A: B, which was refusing, admits again
        // within 1 s.
        let c = counter("k-extend", 100);
        let load = Load::start(&b.engine, &c, 4);
        load.until_admitted(100).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let extended = Instant::now();
        a.engine
            .update(&c.as_request(), UsageUpdate::Extend(50))
            .await
            .unwrap();
        load.until_admitted(150).await;
        let extend_seen = extended.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let total = load.stop().await;
        assert_eq!(total, 150, "{name}: exactly the extension is admitted");
        assert!(extend_seen < Duration::from_secs(1), "{name}");
        println!(
            "{name}: SetRemaining({SET}) under load: {total_set} admitted = used {used} + {SET}; \
             SetRemaining(0): last admission {after:?} after it, {late} admitted from blocks in \
             hand; Extend(50) on a spent key: admitted again after {extend_seen:?}",
            total_set = usage[0].used,
            used = usage[0].used - SET,
        );
    }
}

fn gold(limit: u64) -> UsagePlan {
    UsagePlan::new("gold")
        .unwrap()
        .with_name("gold")
        .with_quota(QuotaSettings::new(limit, QuotaPeriod::Day).unwrap())
        .with_api_stage(ApiStage {
            api_id: "api1".into(),
            stage: "prod".into(),
            throttle: Default::default(),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_quota_lowered_on_one_replica_is_obeyed_by_the_other_within_a_second() {
    for (name, config) in support::backends("lease-plan") {
        let config = fresh(&config);
        let a = Replica::start(&config, FLUSH).await;
        let b = Arc::new(Replica::start(&config, FLUSH).await);
        a.store
            .create_usage_plan(NewUsagePlan {
                id: Some("gold".into()),
                plan: gold(1_000_000),
                tags: Default::default(),
            })
            .await
            .unwrap();
        let key = a.store.create_api_key(NewApiKey::default()).await.unwrap();
        a.store
            .create_usage_plan_key("gold", &key.id, "API_KEY")
            .await
            .unwrap();
        a.store
            .update_api_key(&key.id, ApiKeyUpdate::new().enabled(true))
            .await
            .unwrap();
        let value = key.value.clone().unwrap().expose().to_owned();
        let deadline = Instant::now() + Duration::from_secs(1);
        while b.call(&value).await != StatusCode::OK {
            assert!(Instant::now() < deadline, "{name}: B knows the key");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }

        // B under load through its layers.
        let stop = Arc::new(AtomicBool::new(false));
        let admitted = Arc::new(AtomicU64::new(1));
        let last = Arc::new(std::sync::Mutex::new(Instant::now()));
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (b, value) = (b.clone(), value.clone());
            let (stop, admitted, last) = (stop.clone(), admitted.clone(), last.clone());
            clients.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match b.call(&value).await {
                        StatusCode::OK => {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            *last.lock().unwrap() = Instant::now();
                        }
                        StatusCode::TOO_MANY_REQUESTS => {}
                        other => panic!("unexpected {other}"),
                    }
                    tokio::task::yield_now().await;
                }
            });
        }
        while admitted.load(Ordering::Relaxed) < 500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Lower the quota below what is already used: B refuses within 1 s.
        let mut record = a.store.get_usage_plan("gold").await.unwrap();
        record.plan = gold(100);
        let changed = Instant::now();
        a.store.update_usage_plan(record).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = last.lock().unwrap().saturating_duration_since(changed);
        stop.store(true, Ordering::Relaxed);
        while let Some(joined) = clients.join_next().await {
            joined.unwrap();
        }
        assert!(
            after < Duration::from_secs(1),
            "{name}: B admitted {after:?} after the quota was lowered"
        );
        assert_eq!(
            b.call(&value).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{name}"
        );
        assert_eq!(
            a.call(&value).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{name}"
        );
        a.engine.shutdown().await.unwrap();
        b.engine.shutdown().await.unwrap();
        println!(
            "{name}: quota lowered below use on A: B's last admission {after:?} after the change \
             ({} admitted in all)",
            admitted.load(Ordering::Relaxed)
        );
    }
}

async fn reserved(config: &RedisConfig, store: &RedisControlPlane, key: &str) -> u64 {
    let _ = store;
    let name = format!("{{{}:cp}}:ctr:4:gold:{key}", config.prefix());
    // A generous deadline: the default 20 ms fails on a loaded test machine.
    let mut connection = config
        .clone()
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let value: Option<u64> = redis::AsyncCommands::hget(&mut connection, name, "res")
        .await
        .unwrap();
    value.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_dropped_with_a_lease_loses_at_most_that_lease() {
    for (name, config) in support::backends("lease-kill") {
        let config = fresh(&config);
        const QUOTA: u64 = 1000;
        let c = counter("k-kill", QUOTA);
        let request = c.as_request();
        let b = Engine::start(&config).await;
        let held = {
            let a = Engine::start(&config).await;
            for _ in 0..10 {
                assert!(admit(&a.engine, &request).await);
            }
            let held = reserved(&config, &a.store, "k-kill").await;
            // Dropped as a crash would leave it: no shutdown, nothing given
            // back, its background task gone with it.
            a._task.abort();
            held
        };
        assert!(held > 10, "{name}: A held a block ({held} reserved)");
        let mut by_b = 0;
        loop {
            if admit(&b.engine, &request).await {
                by_b += 1;
            } else {
                break;
            }
        }
        let total = 10 + by_b;
        assert!(total <= QUOTA, "{name}: never over the quota: {total}");
        assert_eq!(
            by_b,
            QUOTA - held,
            "{name}: B admits exactly what A's block did not hold"
        );
        println!(
            "{name}: A admitted 10 from a block of {held} and died: the fleet admitted {total} of \
             {QUOTA}, {} under, within A's block",
            QUOTA - total
        );
    }
}

async fn fleet_run(replicas: &[Engine], c: &CounterRef, clients: usize) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..clients {
        let engine = replicas[i % replicas.len()].engine.clone();
        let c = c.clone();
        set.spawn(async move {
            let request = c.as_request();
            let mut admitted = 0u64;
            while admit(&engine, &request).await {
                admitted += 1;
                if admitted.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
            admitted
        });
    }
    let mut total = 0;
    while let Some(joined) = set.join_next().await {
        total += joined.unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_and_64_clients_admit_exactly_10000_cold_and_warm() {
    for (name, config) in support::backends("lease-fleet") {
        let config = fresh(&config);
        let mut replicas = Vec::new();
        for _ in 0..3 {
            replicas.push(Engine::start(&config).await);
        }
        const QUOTA: u64 = 10_000;
        let started = Instant::now();
        let cold = fleet_run(&replicas, &counter("k-cold", QUOTA), 64).await;
        let cold_time = started.elapsed();
        let started = Instant::now();
        let warm_counter = counter("k-warm", QUOTA);
        let warm = fleet_run(&replicas, &warm_counter, 64).await;
        let warm_time = started.elapsed();
        assert_eq!(cold, QUOTA, "{name}: cold, exactly the quota");
        assert_eq!(warm, QUOTA, "{name}: warm, exactly the quota");
        for replica in &replicas {
            replica.engine.shutdown().await.unwrap();
        }
        let today = warm_counter.day;
        let usage = replicas[0]
            .store
            .get_usage("gold", "k-warm", today, today)
            .await
            .unwrap();
        assert_eq!((usage[0].used, usage[0].remaining), (QUOTA, 0), "{name}");
        println!(
            "{name}: 3 replicas, 64 clients, quota {QUOTA}: {cold} admitted cold in {cold_time:?}, \
             {warm} warm in {warm_time:?}; GetUsage used {}",
            usage[0].used
        );
    }
}
