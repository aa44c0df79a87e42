//! Faults: a Redis server stopped in the middle of load, then restarted.
//!
//! The test runs its own `redis-server` on a free loopback port (so that
//! stopping it disturbs no other test), installed by `scripts/test.sh`.

mod support;

use std::convert::Infallible;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::{OnStoreError, QuotaLayer};
use portcullis_redis::{RedisConfig, RedisQuotaStore, RedisThrottleStore};
use portcullis_throttle::ThrottleLayer;
use tower::{ServiceBuilder, ServiceExt};

struct Server {
    child: Option<Child>,
}

impl Server {
    fn start(port: u16) -> Server {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let server = Server { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

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
        .extensions_mut()
        .insert(ApiKeyContext::new("key").with_usage_plan(plan.clone()));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_under_load() {
    // Only where the Redis tests run: the same gate as the others.
    if support::single("faults").is_none() {
        return;
    }
    let port = free_port();
    let mut server = Server::start(port);
    let config = RedisConfig::single(format!("redis://127.0.0.1:{port}"))
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
        .layer(ThrottleLayer::new("a1", "prod").store(throttle.clone()))
        .layer(QuotaLayer::with_store(quota.clone()))
        .service(inner());
    let closed = ServiceBuilder::new()
        .layer(
            ThrottleLayer::new("a1", "prod")
                .store(throttle.clone())
                .fail_open(false),
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
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let response = open
            .clone()
            .oneshot(request(&plan))
            .await
            .expect("infallible");
        slowest = slowest.max(started.elapsed());
        assert_eq!(response.status(), StatusCode::OK, "fail-open serves");

        let started = Instant::now();
        let response = closed
            .clone()
            .oneshot(request(&plan))
            .await
            .expect("infallible");
        slowest = slowest.max(started.elapsed());
        assert!(
            response.status().is_server_error(),
            "fail-closed answers 5xx, got {}",
            response.status()
        );
    }
    // Two calls of 20 ms each at most, plus scheduling on a busy machine.
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");

    // Restarted: the stores reconnect by themselves.
    let _server = Server::start(port);
    let restarted = Instant::now();
    let recovered = loop {
        let response = closed
            .clone()
            .oneshot(request(&plan))
            .await
            .expect("infallible");
        if response.status() == StatusCode::OK {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "no recovery within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        recovered < Duration::from_secs(1),
        "recovered in {recovered:?}"
    );
}
