//! Decisions per second through one local Redis from 64 concurrent tasks,
//! with p50 and p99 latency, in one run:
//!
//! - the throttle and quota layers on the in-memory stores (the baseline);
//! - `RedisUsagePlanLayer`: throttle and quota in one script, one round trip;
//! - the throttle and quota layers each on its Redis store: two scripts, two
//!   round trips;
//! - a naive client-side read-modify-write (GET then SET: two round trips,
//!   and not atomic).
//!
//! Every decision is one request through the layers (one key bucket and one
//! quota counter per request, 64 keys).
//!
//! `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p portcullis-redis --bench redis_load`
//! (optionally `-- SECONDS`, default 3 per variant).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_redis::{RedisConfig, RedisQuotaStore, RedisThrottleStore, RedisUsagePlanLayer};
use portcullis_throttle::ThrottleLayer;
use redis::AsyncCommands;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

const TASKS: usize = 64;

type Svc = BoxCloneSyncService<Request<()>, StatusCode, Infallible>;

#[derive(Clone, Copy, Debug)]
enum Variant {
    MemoryLayers,
    RedisOneScript,
    RedisTwoLayers,
    NaiveGetSet,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::MemoryLayers => "in-memory throttle + quota layers",
            Variant::RedisOneScript => "Redis, `RedisUsagePlanLayer` (1 script, 1 round trip)",
            Variant::RedisTwoLayers => "Redis, throttle + quota layers (2 scripts, 2 round trips)",
            Variant::NaiveGetSet => "naive GET then SET (2 round trips, not atomic)",
        }
    }
}

fn boxed<S, B>(service: S) -> Svc
where
    S: tower::Service<Request<()>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_response(|r| r.status()))
}

async fn ok(_: Request<()>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

async fn run(
    service: Option<Svc>,
    naive: &redis::aio::MultiplexedConnection,
    plan: &Arc<UsagePlan>,
    seconds: u64,
) -> (f64, Duration, Duration) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let service = service.clone();
        let mut naive = naive.clone();
        let context = ApiKeyContext::new(format!("bench-key-{task}")).with_usage_plan(plan.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let naive_key = format!("naive:bench-key-{task}:{}", std::process::id());
            while Instant::now() < deadline {
                let t = Instant::now();
                match &service {
                    Some(service) => {
                        let mut request = Request::new(());
                        request.request_context_mut().set_api_key(context.clone());
                        let status = service.clone().oneshot(request).await.expect("infallible");
                        assert_eq!(status, StatusCode::OK, "every decision admits");
                    }
                    None => {
                        let v: Option<u64> = naive.get(&naive_key).await.expect("get");
                        let _: () = naive
                            .set(&naive_key, v.unwrap_or(0) + 1)
                            .await
                            .expect("set");
                    }
                }
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
    let plan = Arc::new(
        UsagePlan::new("bench")
            .expect("valid")
            .with_throttle(ThrottleSettings::new(1e9, 1_000_000).expect("valid"))
            .with_quota(QuotaSettings::new(1 << 40, QuotaPeriod::Month).expect("valid")),
    );
    let naive = redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let memory = boxed(
        ServiceBuilder::new()
            .layer(ThrottleLayer::new("a1", "prod"))
            .layer(QuotaLayer::new())
            .service_fn(ok),
    );
    let one_script = boxed(
        ServiceBuilder::new()
            .layer(RedisUsagePlanLayer::new(
                ThrottleLayer::new("a1", "prod").with_store(
                    RedisThrottleStore::connect(&config)
                        .await
                        .expect("connects"),
                ),
                QuotaLayer::with_store(RedisQuotaStore::connect(&config).await.expect("connects")),
            ))
            .service_fn(ok),
    );
    let two_layers = boxed(
        ServiceBuilder::new()
            .layer(
                ThrottleLayer::new("a1", "prod").with_store(
                    RedisThrottleStore::connect(&config)
                        .await
                        .expect("connects"),
                ),
            )
            .layer(QuotaLayer::with_store(
                RedisQuotaStore::connect(&config).await.expect("connects"),
            ))
            .service_fn(ok),
    );
    println!("| variant ({TASKS} tasks, {seconds} s each) | decisions/s | p50 | p99 |");
    println!("|---|---|---|---|");
    for (variant, service) in [
        (Variant::MemoryLayers, Some(memory)),
        (Variant::RedisOneScript, Some(one_script)),
        (Variant::RedisTwoLayers, Some(two_layers)),
        (Variant::NaiveGetSet, None),
    ] {
        let (rate, p50, p99) = run(service, &naive, &plan, seconds).await;
        println!(
            "| {} | {rate:.0} | {p50:.2?} | {p99:.2?} |",
            variant.label()
        );
    }
}
