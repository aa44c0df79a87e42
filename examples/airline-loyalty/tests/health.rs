//! Health and readiness on the ops listener (`--metrics-addr`), over real
//! HTTP: `/healthz` answers while the process does; `/readyz` says ready on
//! the embedded store, and on Redis follows a private `redis-server` killed
//! and restarted under the demo: fail-open stays ready (`degraded`, 200),
//! fail-closed steps out (503) and comes back.

mod support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use support::{API_KEY, Http, Server, copy_dir, required_env, start_with, try_loyalty};

/// The demo with its ops listener on a free port; its base URL.
fn start_with_ops(extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--metrics-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = start_with(&args);
    server.wait_for_output("health on http://", 0);
    let output = server.output_text();
    let url = output
        .lines()
        .find_map(|line| line.strip_prefix("metrics on "))
        .expect("the demo prints where its ops listener is")
        .trim()
        .trim_end_matches("/metrics")
        .to_owned();
    (server, url)
}

/// `GET url`: the status and the JSON body.
async fn probe(url: &str) -> (StatusCode, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client
        .get(url.parse().expect("a URL"))
        .await
        .expect("the ops listener answers");
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("a body")
        .to_bytes();
    (status, serde_json::from_slice(&body).expect("a JSON body"))
}

/// Polls `/readyz` every 20 ms until it answers `status` with `state`, for
/// `within` at most; how long that took.
async fn until_ready_is(ops: &str, status: StatusCode, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (got, body) = probe(&format!("{ops}/readyz")).await;
        if got == status && body["status"] == state {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/readyz still {got} {body} after {within:?} (waiting for {status} {state})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn healthz_and_readyz_on_the_embedded_store() {
    let (_server, ops) = start_with_ops(&[]);
    let (status, body) = probe(&format!("{ops}/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = probe(&format!("{ops}/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"], "reachable");
    assert_eq!(body["onStoreError"], "allow");
}

/// A private `redis-server` on a free port, killed when dropped.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on its port and waits until it accepts
    /// connections (5 s at most).
    fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server answers within 5 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills Redis under a demo configured by `config` (or the embedded one),
/// checks `/readyz` while it is down, restarts it and checks `/readyz`
/// comes back. Requests keep going to the API meanwhile, as a load
/// balancer's traffic would, so the store's failures are seen.
async fn readiness_follows_redis(config: Option<&Path>, down_status: StatusCode, down: &str) {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let mut args = vec!["--store", &url];
    let config_arg;
    if let Some(config) = config {
        config_arg = config.display().to_string();
        args.extend(["--config", &config_arg]);
    }
    let (server, ops) = start_with_ops(&args);
    let http = Http::new(&server.base);
    let policy = if config.is_some() { "refuse" } else { "allow" };

    let (status, body) = probe(&format!("{ops}/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["onStoreError"], policy);

    redis.kill();
    let traffic = async {
        loop {
            let _ = try_loyalty(&http, API_KEY).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let flipped = tokio::select! {
        took = until_ready_is(&ops, down_status, down, Duration::from_secs(5)) => took,
        () = traffic => unreachable!("the traffic loop never ends"),
    };
    let (_, body) = probe(&format!("{ops}/readyz")).await;
    assert_eq!(body["store"], "unreachable");
    let (status, _) = probe(&format!("{ops}/healthz")).await;
    assert_eq!(status, StatusCode::OK, "live while Redis is down");

    redis.restart();
    let back = tokio::select! {
        took = until_ready_is(&ops, StatusCode::OK, "ready", Duration::from_secs(5)) => took,
        () = async {
            loop {
                let _ = try_loyalty(&http, API_KEY).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } => unreachable!("the traffic loop never ends"),
    };
    println!(
        "on_store_error = {policy}: /readyz said {down} ({down_status}) {flipped:?} after Redis \
         was killed, ready {back:?} after it restarted"
    );
    drop(server);
}

#[tokio::test(flavor = "current_thread")]
async fn fail_open_stays_ready_while_redis_is_down() {
    // Where the Redis tests run (the machine has redis-server).
    if required_env("REDIS_URL", "`source scripts/services.d/10-redis.sh`").is_none() {
        return;
    }
    readiness_follows_redis(None, StatusCode::OK, "degraded").await;
}

#[tokio::test(flavor = "current_thread")]
async fn fail_closed_is_not_ready_while_redis_is_down() {
    if required_env("REDIS_URL", "`source scripts/services.d/10-redis.sh`").is_none() {
        return;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let folder = tempfile::tempdir().expect("a temp dir");
    copy_dir(&source, folder.path());
    let file = folder.path().join("gateway.toml");
    let mut text = std::fs::read_to_string(&file).expect("the configuration reads");
    text.push_str("\n[quota]\non_store_error = \"refuse\"\n");
    std::fs::write(&file, text).expect("the configuration writes");
    readiness_follows_redis(Some(&file), StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
}
