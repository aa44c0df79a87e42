//! `redis-fleet`: many replicas in one process against one Redis.
//!
//! Each replica is its own [`Gateway`] built with `[store] kind = "redis"`:
//! its own connections, its own throttle leases and its own quota engine,
//! as separate processes would have. For each replica count the harness
//! drives, for a bounded time and with the same number of client tasks in
//! all (spread over the replicas):
//!
//! - `hot`: every request on one API key;
//! - `many-keys`: requests spread over `--keys` API keys;
//! - `quota`: one fresh API key whose plan allows `--quota-limit` requests
//!   a month, driven until that many are admitted (or the time bound),
//!   after which every replica shuts down (gives back what it holds); the
//!   row shows how many the fleet admitted against the limit.
//!
//! and prints, per row, decisions per second, Redis round trips per
//! decision (`INFO stats` `total_commands_processed`, delta), and Redis CPU
//! per decision (`INFO cpu` `used_cpu_sys + used_cpu_user`, delta, over the
//! decisions). Without `--redis-url` it starts a private `redis-server` on
//! a free port (so the server's figures are this run's alone) and stops it
//! at the end.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis::Gateway;
use portcullis::config::Config;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::UsagePlan;
use tower::{ServiceBuilder, ServiceExt};

use crate::Error;

/// Arguments of `redis-fleet`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The replica counts to simulate, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,3,10,30,100")]
    replicas: Vec<usize>,
    /// Client tasks in all, spread evenly over the replicas (at least one
    /// each).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per `hot` and `many-keys` measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// API keys of the `many-keys` workload.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// The monthly quota of the `quota` workload's key.
    #[arg(long, default_value_t = 10_000)]
    quota_limit: u64,
    /// The longest the `quota` workload runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    quota_seconds: f64,
    /// The Redis to use (its figures then include everyone else's
    /// traffic). Default: a private `redis-server` on a free port.
    #[arg(long)]
    redis_url: Option<String>,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// The plans: `open` (throttle and quota far above what a run reaches) for
/// `hot` and `many-keys`, `exact` (the quota under test) for `quota`.
fn config(url: &str, quota_limit: u64) -> Result<Config, Error> {
    Ok(Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        [store]
        kind = "redis"
        url = "{url}"
        key_prefix = "fleet"
        [[usage_plans]]
        id = "open"
        throttle = {{ rate_limit = 1000000000.0, burst_limit = 1000000000 }}
        quota = {{ limit = 1000000000000000, period = "MONTH" }}
        [[usage_plans]]
        id = "exact"
        throttle = {{ rate_limit = 1000000000.0, burst_limit = 1000000000 }}
        quota = {{ limit = {quota_limit}, period = "MONTH" }}
        "#
    ))?)
}

/// A private `redis-server`, stopped on drop.
struct PrivateRedis {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl PrivateRedis {
    fn start() -> Result<Self, Error> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("portcullis-fleet-{port}"));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting redis-server (is it installed?): {e}"))?;
        let mut redis = Self {
            child,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while info(&redis.url).is_err() {
            if started.elapsed() > Duration::from_secs(5) {
                return Err("the private redis-server did not answer within 5 s".into());
            }
            if let Some(status) = redis.child.try_wait()? {
                return Err(format!("the private redis-server exited: {status}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(redis)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `INFO` says: commands processed and CPU seconds so far.
#[derive(Clone, Copy, Debug)]
struct Stats {
    commands: u64,
    cpu_seconds: f64,
}

/// `INFO` over a plain connection (one command, counted in `commands`).
fn info(url: &str) -> Result<Stats, Error> {
    let address = url
        .strip_prefix("redis://")
        .ok_or("--redis-url must be redis://host:port")?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"INFO\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let length: usize = header
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("INFO answered {header:?}"))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body);
    let field = |name: &str| -> Result<&str, Error> {
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| format!("INFO has no {name}").into())
    };
    Ok(Stats {
        commands: field("total_commands_processed")?.parse()?,
        cpu_seconds: field("used_cpu_sys")?.parse::<f64>()?
            + field("used_cpu_user")?.parse::<f64>()?,
    })
}

/// One row of the table.
#[derive(Clone, Debug)]
struct Row {
    replicas: usize,
    workload: &'static str,
    decisions: u64,
    admitted: u64,
    seconds: f64,
    round_trips: u64,
    cpu_seconds: f64,
    /// The quota under test (`quota` rows only).
    limit: Option<u64>,
}

impl Row {
    fn print(&self) {
        // Lossy conversions: figures for a table.
        #[allow(clippy::cast_precision_loss)]
        let (decisions, round_trips) = (self.decisions as f64, self.round_trips as f64);
        let per_decision = |x: f64| if decisions > 0.0 { x / decisions } else { 0.0 };
        let exact = self
            .limit
            .map_or_else(String::new, |l| format!("{} of {l}", self.admitted));
        println!(
            "{}|{}|{:.0}|{:.4}|{:.2}|{}|{}",
            self.replicas,
            self.workload,
            decisions / self.seconds.max(f64::EPSILON),
            per_decision(round_trips),
            per_decision(self.cpu_seconds * 1e6),
            self.decisions,
            exact
        );
    }
}

pub(crate) fn run(args: &Args) -> Result<(), Error> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads);
    }
    let runtime = builder.enable_all().build()?;
    let private = match &args.redis_url {
        Some(_) => None,
        None => Some(PrivateRedis::start()?),
    };
    let url = args
        .redis_url
        .clone()
        .or_else(|| private.as_ref().map(|p| p.url.clone()))
        .ok_or("no Redis")?;
    let config = config(&url, args.quota_limit)?;
    let plan = |id: &str| -> Result<Arc<UsagePlan>, Error> {
        Ok(Arc::new(
            config
                .usage_plans
                .iter()
                .find(|p| p.id() == id)
                .ok_or("the plan is configured")?
                .clone(),
        ))
    };
    let (open, exact) = (plan("open")?, plan("exact")?);
    println!(
        "replicas|workload|decisions_per_second|redis_round_trips_per_decision|redis_cpu_us_per_decision|decisions|admitted_of_quota"
    );
    for (run, &replicas) in args.replicas.iter().enumerate() {
        let gateways = runtime.block_on(async {
            let mut gateways = Vec::with_capacity(replicas);
            for _ in 0..replicas.max(1) {
                gateways.push(Gateway::builder(config.clone()).build_async().await?);
            }
            Ok::<_, Error>(gateways)
        })?;
        let clients = args.clients.max(gateways.len());
        let duration = Duration::from_secs_f64(args.seconds);
        let hot = vec![context(&format!("hot-{run}"), &open)];
        let many: Vec<ApiKeyContext> = (0..args.keys.max(1))
            .map(|k| context(&format!("key-{run}-{k}"), &open))
            .collect();
        for (workload, keys) in [("hot", &hot), ("many-keys", &many)] {
            // A short warm-up (leases and blocks sized to the traffic).
            runtime.block_on(drive(&gateways, clients, keys, Bound::Time(duration / 4)))?;
            let before = info(&url)?;
            let (decisions, admitted, elapsed) =
                runtime.block_on(drive(&gateways, clients, keys, Bound::Time(duration)))?;
            let after = info(&url)?;
            Row {
                replicas,
                workload,
                decisions,
                admitted,
                seconds: elapsed.as_secs_f64(),
                round_trips: after.commands.saturating_sub(before.commands + 1),
                cpu_seconds: after.cpu_seconds - before.cpu_seconds,
                limit: None,
            }
            .print();
        }
        let quota = vec![context(&format!("exact-{run}"), &exact)];
        let before = info(&url)?;
        let (decisions, admitted, elapsed) = runtime.block_on(drive(
            &gateways,
            clients,
            &quota,
            Bound::Admitted(
                args.quota_limit,
                Duration::from_secs_f64(args.quota_seconds),
            ),
        ))?;
        runtime.block_on(async {
            for gateway in &gateways {
                gateway.shutdown().await?;
            }
            Ok::<_, Error>(())
        })?;
        let after = info(&url)?;
        Row {
            replicas,
            workload: "quota",
            decisions,
            admitted,
            seconds: elapsed.as_secs_f64(),
            round_trips: after.commands.saturating_sub(before.commands + 1),
            cpu_seconds: after.cpu_seconds - before.cpu_seconds,
            limit: Some(args.quota_limit),
        }
        .print();
    }
    drop(private);
    Ok(())
}

fn context(key: &str, plan: &Arc<UsagePlan>) -> ApiKeyContext {
    ApiKeyContext::new(key.to_owned()).with_usage_plan(Arc::clone(plan))
}

/// When a measurement stops.
#[derive(Clone, Copy, Debug)]
enum Bound {
    /// After this long.
    Time(Duration),
    /// Once this many requests were admitted, and some refused after that
    /// (so the quota is seen spent), or after the time, whichever is first.
    Admitted(u64, Duration),
}

/// Drives `clients` tasks over the replicas (task `i` on replica
/// `i % replicas`), each cycling through `keys` from its own offset:
/// (decisions, admitted, elapsed).
async fn drive(
    gateways: &[Gateway],
    clients: usize,
    keys: &[ApiKeyContext],
    bound: Bound,
) -> Result<(u64, u64, Duration), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let admitted_so_far = Arc::new(AtomicU64::new(0));
    let refused_after = Arc::new(AtomicU64::new(0));
    let keys: Arc<[ApiKeyContext]> = keys.into();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(clients);
    for task in 0..clients {
        let gateway = &gateways[task % gateways.len()];
        let service = ServiceBuilder::new()
            .layer(gateway.throttle_layer())
            .layer(gateway.quota_layer())
            .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
        let (stop, keys) = (Arc::clone(&stop), Arc::clone(&keys));
        let (admitted_so_far, refused_after) =
            (Arc::clone(&admitted_so_far), Arc::clone(&refused_after));
        handles.push(tokio::spawn(async move {
            let (mut admitted, mut refused) = (0u64, 0u64);
            let mut next = task.wrapping_mul(7919) % keys.len();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..16 {
                    let mut request = Request::new(());
                    request
                        .request_context_mut()
                        .set_api_key(keys[next].clone());
                    next = (next + 1) % keys.len();
                    match service.clone().oneshot(request).await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            admitted += 1;
                            admitted_so_far.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            refused += 1;
                            refused_after.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                tokio::task::yield_now().await;
            }
            (admitted, refused)
        }));
    }
    match bound {
        Bound::Time(duration) => tokio::time::sleep(duration).await,
        Bound::Admitted(limit, most) => {
            let mut refused_at_limit = None;
            while started.elapsed() < most {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if admitted_so_far.load(Ordering::Relaxed) < limit {
                    continue;
                }
                // Every request admitted; keep going for a moment so that
                // an over-admission would show.
                let refused = refused_after.load(Ordering::Relaxed);
                match refused_at_limit {
                    None => refused_at_limit = Some(refused),
                    Some(at) if refused >= at + 1000 => break,
                    Some(_) => {}
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut admitted, mut refused) = (0, 0);
    for handle in handles {
        let (a, r) = handle.await?;
        admitted += a;
        refused += r;
    }
    Ok((admitted + refused, admitted, started.elapsed()))
}
