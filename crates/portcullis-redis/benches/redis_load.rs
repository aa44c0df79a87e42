//! Decisions per second through one local Redis from 64 concurrent tasks,
//! with p50 and p99 latency, beside the in-memory store and a naive
//! client-side read-modify-write (GET then SET: two round trips, and not
//! atomic), in one run.
//!
//! `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p portcullis-redis --bench redis_load`
//! (optionally `-- SECONDS`, default 3 per variant).

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{MemoryStore, QuotaRequest, QuotaStore};
use portcullis_redis::{RedisConfig, RedisQuotaStore, RedisThrottleStore};
use portcullis_throttle::store::{Acquire, BucketCheck, BucketKey, CallerKey, KeySource, Level};
use portcullis_throttle::{Gcra, InMemoryStore, ThrottleStore};
use redis::AsyncCommands;

const TASKS: usize = 64;

#[derive(Clone, Copy, Debug)]
enum Variant {
    MemoryThrottleQuota,
    RedisThrottleQuota,
    NaiveGetSet,
}

struct Stores {
    redis_throttle: RedisThrottleStore,
    redis_quota: RedisQuotaStore,
    memory_throttle: InMemoryStore,
    memory_quota: MemoryStore,
    naive: redis::aio::MultiplexedConnection,
}

async fn one(stores: &Stores, variant: Variant, task: usize, gcra: Gcra, quota: QuotaSettings) {
    let key = format!("bench-key-{task}");
    let check = [BucketCheck {
        key: BucketKey {
            level: Level::Key,
            stage: None,
            method: None,
            caller: Some(CallerKey {
                source: KeySource::ApiKey,
                value: key.as_bytes(),
            }),
        },
        gcra,
    }];
    let now = time::OffsetDateTime::now_utc();
    let nanos = u64::try_from(now.unix_timestamp_nanos()).unwrap_or(0);
    let request = QuotaRequest {
        plan_id: "bench",
        key_id: &key,
        quota,
        window: Calendar::new().window(QuotaPeriod::Month, now),
        day: now.date(),
        initial_window: None,
    };
    match variant {
        Variant::MemoryThrottleQuota => {
            if let Acquire::Ready(r) = stores.memory_throttle.acquire(&check, nanos) {
                r.expect("memory decides");
            }
            let _ = stores.memory_quota.try_consume_now(&request);
        }
        Variant::RedisThrottleQuota => {
            match stores.redis_throttle.acquire(&check, nanos) {
                Acquire::Ready(r) => r.map(|_| ()).expect("decides"),
                Acquire::Pending(f) => f.await.map(|_| ()).expect("decides"),
            }
            stores.redis_quota.consume(&request).await.expect("decides");
        }
        Variant::NaiveGetSet => {
            let mut c = stores.naive.clone();
            let k = format!("naive:{key}");
            let v: Option<u64> = c.get(&k).await.expect("get");
            let _: () = c.set(&k, v.unwrap_or(0) + 1).await.expect("set");
        }
    }
}

async fn run(stores: Arc<Stores>, variant: Variant, seconds: u64) -> (f64, Duration, Duration) {
    let gcra = Gcra::new(&ThrottleSettings::new(1e9, 1_000_000).expect("valid"));
    let quota = QuotaSettings::new(1 << 40, QuotaPeriod::Month).expect("valid");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let stores = stores.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                one(&stores, variant, task, gcra, quota).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let p = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize];
    (all.len() as f64 / elapsed, p(0.5), p(0.99))
}

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("skipped: set REDIS_URL (bash scripts/test.sh starts Redis) to run this bench");
        return;
    };
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let config = RedisConfig::single(url.clone())
        .timeout(Duration::from_secs(2))
        .key_prefix(format!("bench:{}", std::process::id()));
    let stores = Arc::new(Stores {
        redis_throttle: RedisThrottleStore::connect(&config)
            .await
            .expect("connects"),
        redis_quota: RedisQuotaStore::connect(&config).await.expect("connects"),
        memory_throttle: InMemoryStore::new(),
        memory_quota: MemoryStore::new(),
        naive: redis::Client::open(url)
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("connects"),
    });
    println!("| variant ({TASKS} tasks, {seconds} s) | decisions/s | p50 | p99 |");
    println!("|---|---|---|---|");
    for variant in [
        Variant::MemoryThrottleQuota,
        Variant::RedisThrottleQuota,
        Variant::NaiveGetSet,
    ] {
        let (rate, p50, p99) = run(stores.clone(), variant, seconds).await;
        println!("| {variant:?} | {rate:.0} | {p50:?} | {p99:?} |");
    }
}
