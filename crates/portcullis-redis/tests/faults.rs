//! Faults: a Redis server stopped in the middle of load, then restarted.
//!
//! The test runs its own `redis-server` on a free loopback port (so that
//! stopping it disturbs no other test), installed by `scripts/test.sh`.

mod support;

use std::convert::Infallible;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::{OnStoreError, QuotaLayer};
use portcullis_redis::{RedisConfig, RedisQuotaStore, RedisThrottleStore};
use portcullis_throttle::ThrottleLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

fn plan() -> Arc<UsagePlan> {
    Arc::new(
        UsagePlan::new("faults")
            .expect("valid")
            .with_throttle(ThrottleSettings::new(10_000.0, 10_000).expect("valid"))
            .with_quota(QuotaSettings::new(1_000_000, QuotaPeriod::Day).expect("valid")),
    )
}

fn request(plan: &Arc<UsagePlan>) -> Request<()> {
    let mut request = Request::new(());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new("key").with_usage_plan(plan.clone()));
    request
}

/// One answer from `service`, and how long it took.
async fn timed<S, B>(service: &S, plan: &Arc<UsagePlan>) -> (StatusCode, Duration)
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible> + Clone,
{
    let started = Instant::now();
    let response = service
        .clone()
        .oneshot(request(plan))
        .await
        .expect("infallible");
    (response.status(), started.elapsed())
}

/// 20 requests through each of `open` and `closed` while Redis (or the
/// key's node) is down. Fail-open must serve every one; returns the slowest
/// answer of either and how many fail-closed answered 5xx.
async fn while_down<O, C, B1, B2>(open: &O, closed: &C, plan: &Arc<UsagePlan>) -> (Duration, usize)
where
    O: Service<Request<()>, Response = Response<B1>, Error = Infallible> + Clone,
    C: Service<Request<()>, Response = Response<B2>, Error = Infallible> + Clone,
{
    let mut slowest = Duration::ZERO;
    let mut refused = 0;
    for _ in 0..20 {
        let (status, took) = timed(open, plan).await;
        slowest = slowest.max(took);
        assert_eq!(status, StatusCode::OK, "fail-open serves");
        let (status, took) = timed(closed, plan).await;
        slowest = slowest.max(took);
        if status.is_server_error() {
            refused += 1;
        }
    }
    (slowest, refused)
}

/// Polls `service` every 10 ms until it admits a request, calling `each`
/// before every attempt; fails after `limit`. Returns the time taken.
async fn until_admitted<S, B>(
    service: &S,
    plan: &Arc<UsagePlan>,
    limit: Duration,
    mut each: impl FnMut(Duration),
) -> Duration
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible> + Clone,
{
    let started = Instant::now();
    loop {
        each(started.elapsed());
        if timed(service, plan).await.0 == StatusCode::OK {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "no recovery within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_under_load() {
    // Only where the Redis tests run: the same gate as the others.
    if support::single("faults").is_none() {
        return;
    }
    let mut server = support::PrivateServer::start();
    let config = RedisConfig::single(server.url())
        .timeout(Duration::from_millis(20))
        .connect_timeout(Duration::from_millis(200));
    let throttle = RedisThrottleStore::connect(&config)
        .await
        .expect("connects");
    let quota = RedisQuotaStore::connect(&config).await.expect("connects");
    let inner = || {
        tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        })
    };
    // Fail-open, API Gateway's behaviour, and fail-closed.
    let open = ServiceBuilder::new()
        .layer(ThrottleLayer::new("a1", "prod").with_store(throttle.clone()))
        .layer(QuotaLayer::with_store(quota.clone()))
        .service(inner());
    let closed = ServiceBuilder::new()
        .layer(
            ThrottleLayer::new("a1", "prod")
                .with_store(throttle.clone())
                .on_store_error(OnStoreError::Refuse),
        )
        .layer(QuotaLayer::with_store(quota.clone()).on_store_error(OnStoreError::Refuse))
        .service(inner());
    let plan = plan();

    for _ in 0..20 {
        let response = open
            .clone()
            .oneshot(request(&plan))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }

    server.stop();
    // With Redis gone, every request is answered within the deadline, by
    // the configured policy.
    let (slowest, refused) = while_down(&open, &closed, &plan).await;
    assert_eq!(refused, 20, "fail-closed answers 5xx while Redis is down");
    // Two calls of 20 ms each at most, plus scheduling on a busy machine.
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");

    // Restarted: the stores reconnect by themselves.
    server.restart();
    let recovered = until_admitted(&closed, &plan, Duration::from_secs(5), |_| {}).await;
    assert!(
        recovered < Duration::from_secs(1),
        "recovered in {recovered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_stopped_and_restarted_under_load() {
    // Only where the cluster tests run. The test makes a private 3-master
    // cluster on free ports, so stopping a node disturbs no other test.
    if support::cluster("cluster-faults").is_none() {
        return;
    }
    // Started on new ports until its nodes start and it forms: the ports
    // are chosen free, then released before the servers bind them, and
    // another test may take one in between.
    let mut cluster = support::PrivateCluster::start("cluster-faults");
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    let addresses = cluster.addresses();
    let config = RedisConfig::cluster(addresses.iter().map(|a| format!("redis://{a}")))
        .timeout(Duration::from_millis(20))
        .connect_timeout(Duration::from_millis(200));
    let inner = || {
        tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        })
    };
    let open = ServiceBuilder::new()
        .layer(usage_plan_layer(&config, true).await)
        .service(inner());
    let closed = ServiceBuilder::new()
        .layer(usage_plan_layer(&config, false).await)
        .service(inner());
    let plan = plan();
    for _ in 0..20 {
        let response = closed
            .clone()
            .oneshot(request(&plan))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }

    // Stop the node that holds the key's slot (the key's hash tag is
    // `apikey:<hex of "key">`, whatever the prefix): find it by asking each
    // node whether it serves the slot.
    let slot_of = |port: u16| -> Option<u16> {
        let out = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "cluster",
                "keyslot",
                "{apikey:6b6579}",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let slot = slot_of(ports[0]).expect("a slot");
    let slots = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &ports[0].to_string(),
            "cluster",
            "slots",
        ])
        .output()
        .expect("redis-cli runs");
    let slots = String::from_utf8_lossy(&slots.stdout).into_owned();
    let owner = ports
        .iter()
        .position(|&port| owns(&slots, port, slot))
        .expect("a node owns the slot");
    cluster.nodes[owner].stop();

    // Down: every request is answered within the deadline, by the policy.
    let (slowest, refused) = while_down(&open, &closed, &plan).await;
    assert_eq!(
        refused, 20,
        "fail-closed answers 5xx while the key's node is down"
    );
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");

    // Restarted from its own nodes.conf: it rejoins, and the layer recovers
    // by itself. Redis keeps a restarted cluster master in `cluster_state:fail`
    // for CLUSTER_WRITABLE_DELAY (2,000 ms, cluster.c) before it serves its
    // slots again, whatever the client does; what is ours is the time from
    // the node saying `cluster_state:ok` to the layer's first admitted request.
    let owner_port = cluster.nodes[owner].port;
    cluster.nodes[owner].restart();
    let mut writable_at = None;
    let recovered = until_admitted(&closed, &plan, Duration::from_secs(10), |elapsed| {
        if writable_at.is_none() && support::cluster_ok(owner_port) {
            writable_at = Some(elapsed);
        }
    })
    .await;
    // The layer may be admitted before this loop saw the node say ok.
    let writable = writable_at.unwrap_or(recovered);
    let lag = recovered.saturating_sub(writable);
    eprintln!(
        "cluster node restarted: node ok after {writable:?}, layer recovered after {recovered:?} \
         ({lag:?} after the node), slowest answer while down {slowest:?}"
    );
    assert!(
        lag < Duration::from_secs(1),
        "the layer recovered {lag:?} after the node was ok again"
    );
    assert!(
        recovered < Duration::from_secs(5),
        "recovered in {recovered:?}"
    );
    drop(cluster);
}

/// Whether `CLUSTER SLOTS` output (redis-cli's flat rendering: start, end,
/// ip, port, id, ... per range) gives `slot` to the node on `port`.
fn owns(slots: &str, port: u16, slot: u16) -> bool {
    let lines: Vec<&str> = slots.lines().map(str::trim).collect();
    let mut i = 0;
    while i + 3 < lines.len() {
        if let (Ok(start), Ok(end)) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>())
            && lines[i + 2] == "127.0.0.1"
            && lines[i + 3].parse::<u16>().ok() == Some(port)
            && (start..=end).contains(&slot)
        {
            return true;
        }
        i += 1;
    }
    false
}

async fn usage_plan_layer(
    config: &RedisConfig,
    open: bool,
) -> portcullis_redis::RedisUsagePlanLayer {
    let throttle = ThrottleLayer::new("a1", "prod")
        .with_store(RedisThrottleStore::connect(config).await.expect("connects"))
        .on_store_error(if open {
            OnStoreError::Allow
        } else {
            OnStoreError::Refuse
        });
    let quota = QuotaLayer::with_store(RedisQuotaStore::connect(config).await.expect("connects"))
        .on_store_error(if open {
            OnStoreError::Allow
        } else {
            OnStoreError::Refuse
        });
    portcullis_redis::RedisUsagePlanLayer::new(throttle, quota)
}
