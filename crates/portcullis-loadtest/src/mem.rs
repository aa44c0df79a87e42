//! `mem`: resident memory per key after distinct keys have gone through the
//! throttle and quota layers, after the throttle's idle interval (when its
//! full buckets are dropped), and after the quota's retention (when counters
//! that carry nothing are dropped).
//!
//! Each store is measured on its own and together, one variant per process
//! (resident memory is the process's), so `scripts/bench.sh` runs
//! `mem --stores throttle`, `quota`, `both` and `facade` one after the other:
//!
//! - `throttle`: `ThrottleLayer` with its in-memory store;
//! - `quota`: `QuotaLayer` with portcullis-quota's `InMemoryQuotaStore`;
//! - `both`: the two layers stacked, each with its in-memory store;
//! - `facade`: the layers the facade builds from `[store] kind = "memory"`
//!   (the throttle's in-memory store, and the quota through the control
//!   plane's `QuotaEngine` on its in-memory store).
//!
//! Besides what each store holds at the end of the insert, the quota's
//! live counters are sampled every 4,096 keys for their peak
//! (`quota_counters_peak`): the allocator keeps what freed entries held, so
//! the resident figure after the keys follows the peak, not the end.
//!
//! For the facade, the control plane's durable counters are also printed
//! (`store_counters_*`): the quota counts on them in place (no engine
//! entry) on the in-memory store.
//!
//! Time is a manual clock, moved forward instead of slept through, except
//! for the facade's quota engine, whose blocks expire in real time: the
//! measurement waits a `block_ttl` and flushes it, twice (2.2 s), so the
//! idle figure is after it has given its blocks back and dropped their
//! entries (the first flush does both; the second finds nothing left).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis::config::Config;
use portcullis::control_plane::EngineConfig;
use portcullis::quota::QuotaLayer;
use portcullis::quota::store::InMemoryQuotaStore;
use portcullis::throttle::{InMemoryThrottleStore, ThrottleLayer};
use portcullis::{Gateway, GatewayThrottleStore};
use portcullis_core::clock::{Clock, ManualClock, SharedClock};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::UsagePlan;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::Error;

/// Which stores to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Stores {
    /// The throttle layer alone, in memory.
    Throttle,
    /// The quota layer alone, with portcullis-quota's in-memory store.
    Quota,
    /// The throttle and quota layers, each with its in-memory store.
    Both,
    /// The throttle and quota layers as the facade builds them in memory.
    Facade,
}

/// Arguments of `mem`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many distinct keys go through the layers.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Which stores to measure (one per process: resident memory is the
    /// process's).
    #[arg(long, value_enum, default_value_t = Stores::Facade)]
    stores: Stores,
}

/// The plan's throttle: one request takes one of 10 tokens, and a token
/// comes back every 10 s, so a key's bucket is full (idle, droppable) 10 s
/// after its request.
const RATE: f64 = 0.1;
const BURST: u32 = 10;
/// 2026-12-01 00:00 UTC: the start of a month.
const START_UNIX: u64 = 1_795_996_800;

pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The facade's in-process throttle buckets (the `memory` store this
/// measurement builds).
fn memory_buckets(store: &GatewayThrottleStore) -> Result<&InMemoryThrottleStore, Error> {
    match store {
        GatewayThrottleStore::Memory(buckets) => Ok(buckets),
        #[allow(unreachable_patterns)]
        _ => Err("the memory measurement needs the facade's in-process throttle store".into()),
    }
}

pub(crate) fn run(args: &Args) -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(measure(args.keys, args.stores))
}

type Respond = fn(Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>>;

fn ok(_: Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>> {
    std::future::ready(Ok(Response::new(String::new())))
}

/// What a variant measures: how many entries each store holds, and how to
/// drop what is idle at the clock's time.
struct Probe {
    throttle: Option<InMemoryThrottleStore>,
    quota: Option<QuotaCounters>,
}

enum QuotaCounters {
    Memory(InMemoryQuotaStore),
    Facade(portcullis::GatewayQuotaStore),
}

impl QuotaCounters {
    /// The quota store's in-memory counters: for the facade, the quota
    /// engine's entries (a key's while it holds a block), which counting in
    /// place does without.
    fn tracked_keys(&self) -> usize {
        match self {
            QuotaCounters::Memory(store) => store.tracked_keys(),
            QuotaCounters::Facade(engine) => engine.tracked_keys(),
        }
    }

    /// The facade's durable counters, in the control plane's store (one a
    /// key for the period).
    fn store_counters(&self) -> Option<usize> {
        match self {
            QuotaCounters::Memory(_) => None,
            QuotaCounters::Facade(engine) => match engine.store() {
                portcullis::GatewayStore::Local(store) => Some(store.quota_counters()),
                #[allow(unreachable_patterns)]
                _ => None,
            },
        }
    }
}

/// How often [`drive`] samples the quota's live counters for their peak.
const PEAK_SAMPLE: u64 = 4096;

/// Sends one request for each of `keys` distinct keys; answers the
/// seconds it took and the most quota counters `probe` held at once
/// (sampled every [`PEAK_SAMPLE`] keys).
async fn drive<S, B>(
    service: S,
    plan: &Arc<UsagePlan>,
    keys: u64,
    probe: &Probe,
) -> Result<(f64, usize), Error>
where
    S: Service<Request<String>, Response = Response<B>> + Clone,
    S::Error: Into<Error>,
{
    let started = Instant::now();
    let mut peak = 0;
    for i in 0..keys {
        if i % PEAK_SAMPLE == 0 {
            peak = peak.max(probe.quota.as_ref().map_or(0, QuotaCounters::tracked_keys));
        }
        let mut request = Request::new(String::new());
        request
            .request_context_mut()
            .set_api_key(ApiKeyContext::new(format!("k{i:09}")).with_usage_plan(Arc::clone(plan)));
        let response = service.clone().oneshot(request).await.map_err(Into::into)?;
        if response.status() != StatusCode::OK {
            return Err(format!("key {i} was refused: {}", response.status()).into());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak.max(probe.quota.as_ref().map_or(0, QuotaCounters::tracked_keys));
    Ok((seconds, peak))
}

async fn measure(keys: u64, stores: Stores) -> Result<(), Error> {
    let config = Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        [[usage_plans]]
        id = "plan"
        throttle = {{ rate_limit = {RATE}, burst_limit = {BURST} }}
        quota = {{ limit = 1000000000, period = "MONTH" }}
        "#
    ))?;
    let plan = Arc::new(
        config
            .usage_plans
            .first()
            .ok_or("the configuration has a plan")?
            .clone(),
    );
    let clock = ManualClock::at_unix(START_UNIX);
    let shared: SharedClock = Arc::new(clock.clone());
    let throttle = ThrottleLayer::new("a1b2c3d4e5", "prod").clock(shared.clone());
    let quota = QuotaLayer::new().clock(shared.clone());
    let bare = ServiceBuilder::new().service_fn(ok as Respond);

    let before = resident_bytes().ok_or("/proc/self/statm is not readable")?;
    let ((seconds, peak), probe) = match stores {
        Stores::Throttle => {
            let service = ServiceBuilder::new().layer(throttle.clone()).service(bare);
            let probe = Probe {
                throttle: Some(throttle.store().clone()),
                quota: None,
            };
            (drive(service, &plan, keys, &probe).await?, probe)
        }
        Stores::Quota => {
            let service = ServiceBuilder::new().layer(quota.clone()).service(bare);
            let probe = Probe {
                throttle: None,
                quota: Some(QuotaCounters::Memory(quota.store().as_ref().clone())),
            };
            (drive(service, &plan, keys, &probe).await?, probe)
        }
        Stores::Both => {
            let service = ServiceBuilder::new()
                .layer(throttle.clone())
                .layer(quota.clone())
                .service(bare);
            let probe = Probe {
                throttle: Some(throttle.store().clone()),
                quota: Some(QuotaCounters::Memory(quota.store().as_ref().clone())),
            };
            (drive(service, &plan, keys, &probe).await?, probe)
        }
        Stores::Facade => {
            let gateway = Gateway::builder(config).clock(shared.clone()).build()?;
            let throttle = gateway.throttle_layer();
            let quota = gateway.quota_layer();
            let service = ServiceBuilder::new()
                .layer(throttle.clone())
                .layer(quota.clone())
                .service(bare);
            let probe = Probe {
                throttle: Some(memory_buckets(throttle.store())?.clone()),
                quota: Some(QuotaCounters::Facade(quota.store().as_ref().clone())),
            };
            (drive(service, &plan, keys, &probe).await?, probe)
        }
    };
    let after = resident_bytes().unwrap_or(before);
    let per_key = |bytes: u64| bytes.saturating_sub(before) as f64 / keys as f64;
    let count = |probe: &Probe| {
        (
            probe
                .throttle
                .as_ref()
                .map_or(0, InMemoryThrottleStore::len),
            probe.quota.as_ref().map_or(0, QuotaCounters::tracked_keys),
        )
    };
    let (throttle_keys, quota_keys) = count(&probe);
    println!("stores|{stores:?}");
    println!("keys|{keys}");
    println!("seconds_to_insert|{seconds:.2}");
    println!("rss_before_mib|{:.1}", before as f64 / 1048576.0);
    println!("rss_after_keys_mib|{:.1}", after as f64 / 1048576.0);
    println!("bytes_per_key_after_keys|{:.0}", per_key(after));
    println!("throttle_buckets_after_keys|{throttle_keys}");
    println!("quota_counters_after_keys|{quota_keys}");
    println!("quota_counters_peak|{peak}");
    if let Some(counters) = probe.quota.as_ref().and_then(QuotaCounters::store_counters) {
        println!("store_counters_after_keys|{counters}");
    }

    // The throttle's idle interval: every bucket is full again.
    let idle = Duration::from_secs_f64(1.0 / RATE) + Duration::from_secs(1);
    clock.advance(idle);
    let dropped = probe
        .throttle
        .as_ref()
        .map_or(0, |store| store.sweep(clock.now_unix_nanos()));
    if let Some(QuotaCounters::Facade(engine)) = &probe.quota {
        // The engine's blocks expire in real time (`block_ttl`): the first
        // flush after it gives them back and drops their entries; the
        // second is the figure's check that nothing was left. The durable
        // counters stay (in the control plane's store, for the period).
        let ttl = EngineConfig::default().block_ttl + Duration::from_millis(100);
        for _ in 0..2 {
            tokio::time::sleep(ttl).await;
            engine.flush().await?;
        }
    }
    let after_idle = resident_bytes().unwrap_or(after);
    let (throttle_keys, quota_keys) = count(&probe);
    println!("idle_seconds|{}", idle.as_secs());
    println!("throttle_buckets_dropped_by_sweep|{dropped}");
    println!("throttle_buckets_after_idle|{throttle_keys}");
    println!("quota_counters_after_idle|{quota_keys}");
    if let Some(counters) = probe.quota.as_ref().and_then(QuotaCounters::store_counters) {
        println!("store_counters_after_idle|{counters}");
    }
    println!("rss_after_idle_mib|{:.1}", after_idle as f64 / 1048576.0);
    println!("bytes_per_key_after_idle|{:.0}", per_key(after_idle));

    // Past the quota's retention (90 days) and its period: a counter then
    // carries nothing a new one would not, and `prune` may drop it.
    if let Some(QuotaCounters::Memory(store)) = &probe.quota {
        clock.advance(Duration::from_secs(100 * 86_400));
        let today = time::OffsetDateTime::from_unix_timestamp(i64::try_from(
            clock.now_unix_nanos() / 1_000_000_000,
        )?)?
        .date();
        store.prune(today);
        let after_retention = resident_bytes().unwrap_or(after_idle);
        println!("quota_counters_after_retention|{}", store.tracked_keys());
        println!(
            "rss_after_retention_mib|{:.1}",
            after_retention as f64 / 1048576.0
        );
        println!(
            "bytes_per_key_after_retention|{:.0}",
            per_key(after_retention)
        );
    }
    Ok(())
}
