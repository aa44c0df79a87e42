//! The circuit breaker seen from outside, with Redis killed under a quota
//! layer (a private `redis-server` behind a counting TCP proxy, so that
//! stopping it disturbs no other test and every connection the client opens
//! is counted):
//!
//! - decisions answer at once: hundreds of fail-open and fail-closed
//!   decisions open a handful of connections (the breaker's threshold and
//!   its probes), not one each, and all of them together take far less than
//!   one call's timeout each;
//! - the logs hold one line per change of state, not one per request, and
//!   the `metrics` counters count both the changes and every decision.
//!
//! This binary installs a global `tracing` subscriber and `metrics`
//! recorder, so it holds this one test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use portcullis_control_plane::{QuotaEngine, StoreOptions};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::{OnStoreError, QuotaLayer};
use portcullis_redis::{RedisConfig, RedisControlPlane};
use tower::{ServiceBuilder, ServiceExt};

/// Consecutive failures that open the circuit, and how often it probes.
const THRESHOLD: u32 = 3;
const PROBE: Duration = Duration::from_millis(200);
/// One call's deadline.
const TIMEOUT: Duration = Duration::from_millis(20);

/// Every `metrics` counter's total, by name and labels
/// (`name{k=v,...}`).
#[derive(Default)]
struct Counters(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

struct CountingRecorder(&'static Counters);

impl Recorder for CountingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let cell = self.0.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(cell)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// What the `tracing` subscriber wrote, at `info` and above.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The global subscriber and recorder, installed once.
fn observe() -> (&'static Counters, Captured) {
    static INSTALLED: OnceLock<(&'static Counters, Captured)> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let counters: &'static Counters = Box::leak(Box::default());
            metrics::set_global_recorder(CountingRecorder(counters)).expect("the only recorder");
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            (counters, captured)
        })
        .clone()
}

/// A TCP proxy to `127.0.0.1:upstream` that counts the connections it
/// accepts: every connection the client opens, whether or not the server
/// behind is up (when it is down, the accepted connection is closed).
struct CountingProxy {
    port: u16,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream: u16) -> CountingProxy {
        let (listener, address) = portcullis_test_support::serve::listener().await;
        let port = address.port();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        CountingProxy {
            port,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn call(
    layer: &QuotaLayer<QuotaEngine<RedisControlPlane>>,
    plan: &Arc<UsagePlan>,
    key: &str,
) -> StatusCode {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let mut request = Request::new(());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new(key).with_usage_plan(plan.clone()));
    service.oneshot(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_decisions_answer_at_once_and_log_once_per_change() {
    if support::single("breaker").is_none() {
        return;
    }
    let (counters, logs) = observe();
    let mut server = support::PrivateServer::start();
    let proxy = CountingProxy::start(server.port).await;
    let config = RedisConfig::single(format!("redis://127.0.0.1:{}", proxy.port))
        .key_prefix("breaker")
        .timeout(TIMEOUT)
        .circuit_breaker(THRESHOLD, PROBE);
    let store = RedisControlPlane::connect(&config, StoreOptions::default())
        .await
        .unwrap();
    let engine = QuotaEngine::new(store.clone());
    let open = QuotaLayer::with_store(engine.clone()).on_store_error(OnStoreError::Allow);
    let closed = QuotaLayer::with_store(engine.clone()).on_store_error(OnStoreError::Refuse);
    let plan = Arc::new(
        UsagePlan::new("p")
            .unwrap()
            .with_quota(QuotaSettings::new(1_000, QuotaPeriod::Day).unwrap()),
    );
    assert_eq!(call(&closed, &plan, "warm").await, StatusCode::OK);
    let lines_before = logs.lines().len();

    server.stop();
    let connections_before = proxy.accepted();
    let killed = Instant::now();
    // The first calls find Redis gone and open the circuit.
    let mut opening = 0;
    while store.is_available() {
        assert_eq!(
            call(&open, &plan, &format!("first{opening}")).await,
            StatusCode::OK
        );
        opening += 1;
        assert!(
            opening <= 20,
            "the circuit opens after {THRESHOLD} failed calls"
        );
    }
    let opened = killed.elapsed();
    // Then each decision on a key of its own, so each needs the store.
    const N: u64 = 300;
    let started = Instant::now();
    for i in 0..N {
        let key = format!("k{i}");
        if i % 2 == 0 {
            assert_eq!(
                call(&open, &plan, &key).await,
                StatusCode::OK,
                "fail-open serves"
            );
        } else {
            assert_eq!(
                call(&closed, &plan, &key).await,
                StatusCode::INTERNAL_SERVER_ERROR,
                "fail-closed refuses"
            );
        }
    }
    let took = started.elapsed();
    let connections = proxy.accepted() - connections_before;
    let down = killed.elapsed();
    assert!(!store.is_available(), "the circuit is open");

    server.restart();
    let restarted = Instant::now();
    let mut refused_after = 0;
    while call(&closed, &plan, "after").await != StatusCode::OK {
        refused_after += 1;
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "decided by Redis again once it is back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(call(&open, &plan, "after").await, StatusCode::OK);
    let recovered = restarted.elapsed();
    assert!(store.is_available());

    // Network: the threshold's failed calls, then one probe every PROBE
    // (and the change subscription's reconnects, one every 500 ms). One
    // per decision without the breaker.
    let down_ms = u64::try_from(down.as_millis()).unwrap();
    let probe_ms = u64::try_from(PROBE.as_millis()).unwrap();
    let bound = u64::from(THRESHOLD) + 2 * down_ms / probe_ms + down_ms / 500 + 4;
    // Time: a decision that waited for the deadline would take TIMEOUT.
    let budget = TIMEOUT * u32::try_from(N).unwrap() / 10;
    let lines: Vec<String> = logs.lines().split_off(lines_before);
    let count = |text: &str| lines.iter().filter(|l| l.contains(text)).count();
    println!(
        "Redis down for {down:?}: the circuit opened after {opening} decisions \
         ({opened:?}); then {N} decisions in {took:?} (budget {budget:?}); {connections} \
         connections opened in all (bound {bound}); decided by Redis again {recovered:?} after \
         it restarted; {} log lines:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(
        connections <= bound,
        "{connections} connections for {} decisions: the open circuit sends nothing",
        N + opening
    );
    assert!(took < budget, "{N} decisions took {took:?}");
    assert_eq!(
        count("redis unreachable"),
        1,
        "one line when the circuit opens"
    );
    assert_eq!(count("redis reachable again"), 1, "one when it closes");
    // Two quota layers here (fail-open and fail-closed), one line each.
    assert_eq!(
        count("quota store failing"),
        2,
        "one when a layer's store fails"
    );
    assert_eq!(
        count("quota store answering again"),
        2,
        "one when it answers"
    );
    // The change subscription logs each of its state changes once: lost,
    // failed (only if it tried again while Redis was still down), restored.
    for change in [
        "change subscription lost",
        "change subscription failed",
        "change subscription restored",
    ] {
        assert!(count(change) <= 1, "{change}: one line at most");
    }
    // Nothing else: a handful in all, not one per decision.
    assert!(lines.len() <= 9, "{} lines for {N} decisions", lines.len());
    assert_eq!(
        counters.get("portcullis_redis_circuit_changes_total{state=open}"),
        1
    );
    assert_eq!(
        counters.get("portcullis_redis_circuit_changes_total{state=closed}"),
        1
    );
    assert_eq!(
        counters.get("portcullis_quota_decisions_total{outcome=allowed,reason=STORE_ERROR}"),
        N / 2 + opening,
        "every fail-open decision counted"
    );
    assert_eq!(
        counters.get(
            "portcullis_quota_decisions_total{outcome=refused,reason=API_CONFIGURATION_ERROR}"
        ),
        N / 2 + refused_after,
        "every fail-closed refusal counted"
    );
}
