//! `scale`: throttle + quota decisions per second (the facade's in-memory
//! layers, every request admitted) at 1, 2 and 64 concurrent tasks, each
//! task with its own key, and all tasks on one key.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis::Gateway;
use portcullis::config::Config;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use tower::{ServiceBuilder, ServiceExt};

use crate::Error;

/// Arguments of `scale`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// The task counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,64")]
    tasks: Vec<usize>,
}

pub(crate) fn run(args: &Args) -> Result<(), Error> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads);
    }
    let runtime = builder.enable_all().build()?;
    let config = Config::from_toml(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        [[usage_plans]]
        id = "unlimited"
        throttle = { rate_limit = 1000000000.0, burst_limit = 1000000000 }
        quota = { limit = 1000000000000000, period = "MONTH" }
        "#,
    )?;
    let plan = Arc::new(config.usage_plans.first().ok_or("a plan")?.clone());
    let gateway = Gateway::builder(config).build()?;
    println!("tasks|keys|decisions_per_second|refused");
    for &tasks in &args.tasks {
        for shared in [false, true] {
            let (count, refused, elapsed) = runtime.block_on(measure(
                &gateway,
                &plan,
                tasks,
                shared,
                Duration::from_secs_f64(args.seconds),
            ))?;
            let keys = if shared { "one shared" } else { "one per task" };
            println!(
                "{tasks}|{keys}|{:.0}|{refused}",
                count as f64 / elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}

async fn measure(
    gateway: &Gateway,
    plan: &Arc<portcullis_core::plan::UsagePlan>,
    tasks: usize,
    shared: bool,
    duration: Duration,
) -> Result<(u64, u64, Duration), Error> {
    let service = ServiceBuilder::new()
        .layer(gateway.throttle_layer())
        .layer(gateway.quota_layer())
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let service = service.clone();
        let stop = Arc::clone(&stop);
        let key = ApiKeyContext::new(if shared {
            "shared".to_owned()
        } else {
            format!("task-{task}")
        })
        .with_usage_plan(Arc::clone(plan));
        handles.push(tokio::spawn(async move {
            let (mut admitted, mut refused) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    let mut request = Request::new(());
                    request.request_context_mut().set_api_key(key.clone());
                    match service.clone().oneshot(request).await {
                        Ok(response) if response.status() == StatusCode::OK => admitted += 1,
                        _ => refused += 1,
                    }
                }
                tokio::task::yield_now().await;
            }
            (admitted, refused)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let (mut admitted, mut refused) = (0, 0);
    for handle in handles {
        let (a, r) = handle.await?;
        admitted += a;
        refused += r;
    }
    Ok((admitted, refused, started.elapsed()))
}
