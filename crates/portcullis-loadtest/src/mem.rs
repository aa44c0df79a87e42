//! `mem`: resident memory after distinct keys have gone through the
//! throttle and quota layers (built by the facade, in memory), and after the
//! throttle's idle interval, when its full buckets are dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use portcullis::config::Config;
use portcullis::throttle::InMemoryStore;
use portcullis::{Gateway, GatewayThrottleStore};
use portcullis_core::context::ApiKeyContext;
use tower::{ServiceBuilder, ServiceExt};

use crate::Error;

/// Arguments of `mem`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many distinct keys go through the layers.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
}

/// The plan's throttle: one request takes one of 10 tokens, and a token
/// comes back every 10 s, so a key's bucket is full (idle, droppable) 10 s
/// after its request.
const RATE: f64 = 0.1;
const BURST: u32 = 10;

pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The facade's in-process throttle buckets (the `memory` store this
/// measurement builds).
fn memory_buckets(store: &GatewayThrottleStore) -> Result<&InMemoryStore, Error> {
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
        .block_on(measure(args.keys))
}

async fn measure(keys: u64) -> Result<(), Error> {
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
    let gateway = Gateway::builder(config).build()?;
    let throttle = gateway.throttle_layer();
    let quota = gateway.quota_layer();
    let service = ServiceBuilder::new()
        .layer(throttle.clone())
        .layer(quota.clone())
        .service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        });

    let before = resident_bytes().ok_or("/proc/self/statm is not readable")?;
    let started = Instant::now();
    for i in 0..keys {
        let mut request = Request::new(String::new());
        request
            .extensions_mut()
            .insert(ApiKeyContext::new(format!("k{i:09}")).with_usage_plan(Arc::clone(&plan)));
        let response = service.clone().oneshot(request).await?;
        if response.status() != StatusCode::OK {
            return Err(format!("key {i} was refused: {}", response.status()).into());
        }
    }
    let elapsed = started.elapsed();
    let after = resident_bytes().unwrap_or(before);
    let buckets = memory_buckets(throttle.store_ref())?;
    let throttle_keys = buckets.len();
    let quota_keys = quota.store().tracked_keys();

    let idle = Duration::from_secs_f64(1.0 / RATE) + Duration::from_secs(1);
    tokio::time::sleep(idle).await;
    let now = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos())?;
    let dropped = buckets.sweep(now);
    let after_idle = resident_bytes().unwrap_or(after);

    let per_key = |bytes: u64| bytes.saturating_sub(before) as f64 / keys as f64;
    println!("keys|{keys}");
    println!("seconds_to_insert|{:.2}", elapsed.as_secs_f64());
    println!("rss_before_mib|{:.1}", before as f64 / 1048576.0);
    println!("rss_after_keys_mib|{:.1}", after as f64 / 1048576.0);
    println!("bytes_per_key_after_keys|{:.0}", per_key(after));
    println!("throttle_buckets_after_keys|{throttle_keys}");
    println!("quota_counters_after_keys|{quota_keys}");
    println!("idle_seconds|{}", idle.as_secs());
    println!("throttle_buckets_dropped_by_sweep|{dropped}");
    println!("throttle_buckets_after_idle|{}", buckets.len());
    println!("quota_counters_after_idle|{}", quota.store().tracked_keys());
    println!("rss_after_idle_mib|{:.1}", after_idle as f64 / 1048576.0);
    println!("bytes_per_key_after_idle|{:.0}", per_key(after_idle));
    Ok(())
}
