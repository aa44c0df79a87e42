//! A key's very first requests, many at once, on replicas that have just
//! connected to a Redis that has never seen the stores: exactly the quota is
//! admitted, on one server and on Cluster, with one replica and with three.
//!
//! Each run gets a private server or cluster, as fresh as one just started
//! (no scripts loaded, no keys). The first burst is made slower than the
//! call deadline on purpose, by `CLIENT PAUSE` on every node: the calls time
//! out, the layer fails open (API Gateway's behaviour) and admits them, and
//! Redis runs them once the pause ends. A fail-open admission is only exact
//! if Redis then counts the request: these tests fail if a timed-out first
//! call can be admitted without being counted (as when its script had to be
//! loaded first, after a `NOSCRIPT`, in further round trips).

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_redis::{RedisConfig, RedisQuotaStore, RedisThrottleStore, RedisUsagePlanLayer};
use portcullis_throttle::ThrottleLayer;
use tower::{ServiceBuilder, ServiceExt};

const QUOTA: usize = 600;
const REQUESTS: usize = 1_500;
const CALLERS: usize = 64;
/// The call deadline: far above a call's latency on a busy machine, far
/// below the pause.
const DEADLINE: Duration = Duration::from_secs(1);
/// How long the first burst is held: about three deadlines, so every
/// caller's first few requests time out.
const PAUSE_MS: u64 = 3_000;

async fn ok(_: Request<()>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn pause(ports: &[u16]) {
    for port in ports {
        let status = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["client", "pause", &PAUSE_MS.to_string(), "ALL"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "CLIENT PAUSE on port {port}");
    }
}

/// `replicas` gateway instances, each with its own connections (as separate
/// processes would have), connected now; then `CALLERS` callers send
/// `REQUESTS` requests for one fresh key, spread over the replicas, while
/// the nodes on `ports` hold the first burst. Returns (admitted, timed out
/// and admitted by the fail-open policy).
async fn cold_burst(config: &RedisConfig, ports: &[u16], replicas: usize) -> (usize, usize) {
    let config = config.clone().timeout(DEADLINE);
    let plan = Arc::new(
        UsagePlan::new("cold")
            .expect("valid")
            .with_throttle(ThrottleSettings::new(100_000.0, 100_000).expect("valid"))
            .with_quota(QuotaSettings::new(QUOTA as u64, QuotaPeriod::Day).expect("valid")),
    );
    let mut services = Vec::new();
    for _ in 0..replicas {
        let throttle = ThrottleLayer::new("a1", "prod").with_store(
            RedisThrottleStore::connect(&config)
                .await
                .expect("connects"),
        );
        let quota =
            QuotaLayer::with_store(RedisQuotaStore::connect(&config).await.expect("connects"));
        services.push(
            ServiceBuilder::new()
                .layer(RedisUsagePlanLayer::new(throttle, quota))
                .service_fn(ok),
        );
    }
    pause(ports);
    let next = Arc::new(AtomicUsize::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    let slow = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let service = services[caller % replicas].clone();
        let (plan, next, admitted, slow) =
            (plan.clone(), next.clone(), admitted.clone(), slow.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                let mut request = Request::get("/flights").body(()).expect("valid request");
                request
                    .request_context_mut()
                    .set_api_key(ApiKeyContext::new("first-seen").with_usage_plan(plan.clone()));
                let started = std::time::Instant::now();
                let response = service.clone().oneshot(request).await.expect("infallible");
                match response.status() {
                    StatusCode::OK => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        if started.elapsed() >= DEADLINE {
                            slow.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    StatusCode::TOO_MANY_REQUESTS => {}
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("no caller panics");
    }
    (
        admitted.load(Ordering::Relaxed),
        slow.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_requests_together_on_a_fresh_server_admit_exactly_the_quota() {
    // Only where the Redis tests run: the same gate as the others.
    if support::single("cold-start").is_none() {
        return;
    }
    for replicas in [1, 3] {
        let server = support::PrivateServer::start();
        let config = RedisConfig::single(server.url());
        let (admitted, timed_out) = cold_burst(&config, &[server.port], replicas).await;
        eprintln!(
            "single server, {replicas} replica(s): admitted {admitted}, {timed_out} after a timeout"
        );
        assert!(timed_out > 0, "the pause made the first burst time out");
        assert_eq!(admitted, QUOTA, "single server, {replicas} replica(s)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_requests_together_on_a_fresh_cluster_admit_exactly_the_quota() {
    // Only where the cluster tests run: the same gate as the others.
    if support::cluster("cold-start").is_none() {
        return;
    }
    for replicas in [1, 3] {
        let cluster = support::PrivateCluster::start("cold-start");
        let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
        let config = RedisConfig::cluster(cluster.urls());
        let (admitted, timed_out) = cold_burst(&config, &ports, replicas).await;
        eprintln!(
            "cluster, {replicas} replica(s): admitted {admitted}, {timed_out} after a timeout"
        );
        assert!(timed_out > 0, "the pause made the first burst time out");
        assert_eq!(admitted, QUOTA, "cluster, {replicas} replica(s)");
    }
}
