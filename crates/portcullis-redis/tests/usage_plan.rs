//! `RedisUsagePlanLayer`: a key's throttle and quota decided in one script,
//! against real Redis and Redis Cluster.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis_core::clock::{ManualClock, SharedClock};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_redis::{
    RedisConfig, RedisQuotaStore, RedisThrottleStore, RedisUsagePlanLayer, ScriptClock,
};
use portcullis_throttle::ThrottleLayer;
use tower::{ServiceBuilder, ServiceExt};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn request(plan: &Arc<UsagePlan>, key: &str, path: &str) -> Request<()> {
    let mut request = Request::get(path).body(()).expect("valid request");
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new(key).with_usage_plan(plan.clone()));
    request
}

fn kind<B>(response: &Response<B>) -> Option<String> {
    response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
}

async fn ok(_: Request<()>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn settings(rate: f64, burst: u32) -> ThrottleSettings {
    ThrottleSettings::new(rate, burst).expect("valid")
}

/// The throttle layer of the tests, on any store: a stage limit on
/// `/pets/GET` and an account limit, so requests touch up to three buckets.
fn throttle_layer(clock: &SharedClock) -> ThrottleLayer {
    ThrottleLayer::new("a1", "prod")
        .clock(clock.clone())
        .stage_limit(
            "/pets/GET".parse().expect("valid selector"),
            settings(4.0, 6),
        )
        .account_limit(settings(12.0, 14))
}

async fn redis_layer(
    config: &RedisConfig,
    clock: &SharedClock,
    throttle: ThrottleLayer,
) -> RedisUsagePlanLayer {
    let throttle = throttle.with_store(
        RedisThrottleStore::connect(config)
            .await
            .expect("connects")
            .script_clock(ScriptClock::Caller),
    );
    let quota = QuotaLayer::with_store(RedisQuotaStore::connect(config).await.expect("connects"))
        .clock(clock.clone());
    RedisUsagePlanLayer::new(throttle, quota)
}

#[tokio::test]
async fn one_script_decides_as_the_two_layers_in_memory() {
    for (name, config) in support::backends("usage-plan-conformance") {
        let config = config.timeout(Duration::from_secs(2));
        let start = 1_900_000_000;
        let memory_clock = Arc::new(ManualClock::at_unix(start));
        let memory_shared: SharedClock = memory_clock.clone();
        let redis_clock = Arc::new(ManualClock::at_unix(start));
        let redis_shared: SharedClock = redis_clock.clone();
        let memory = ServiceBuilder::new()
            .layer(throttle_layer(&memory_shared))
            .layer(QuotaLayer::new().clock(memory_shared.clone()))
            .service_fn(ok);
        let redis = ServiceBuilder::new()
            .layer(redis_layer(&config, &redis_shared, throttle_layer(&redis_shared)).await)
            .service_fn(ok);
        let plans = [
            Arc::new(
                UsagePlan::new("small")
                    .expect("valid")
                    .with_throttle(settings(2.0, 3))
                    .with_quota(QuotaSettings::with_offset(9, QuotaPeriod::Day, 1).expect("valid")),
            ),
            Arc::new(
                UsagePlan::new("big")
                    .expect("valid")
                    .with_throttle(settings(5.0, 5))
                    .with_quota(QuotaSettings::new(25, QuotaPeriod::Week).expect("valid")),
            ),
            // Quota without throttle, and throttle without quota.
            Arc::new(
                UsagePlan::new("quota-only")
                    .expect("valid")
                    .with_quota(QuotaSettings::new(6, QuotaPeriod::Month).expect("valid")),
            ),
            Arc::new(
                UsagePlan::new("throttle-only")
                    .expect("valid")
                    .with_throttle(settings(1.0, 2)),
            ),
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut seen = std::collections::BTreeMap::new();
        for step in 0..600 {
            let advance = match rng.below(40) {
                0 => Duration::from_secs(86_400),
                n => Duration::from_millis(rng.below(250) * (n % 3)),
            };
            memory_clock.advance(advance);
            redis_clock.advance(advance);
            let plan = &plans[rng.below(4) as usize];
            let key = format!("k{}", rng.below(3));
            let path = if rng.below(2) == 0 { "/pets" } else { "/other" };
            let a = memory
                .clone()
                .oneshot(request(plan, &key, path))
                .await
                .expect("infallible");
            let b = redis
                .clone()
                .oneshot(request(plan, &key, path))
                .await
                .expect("infallible");
            assert_eq!(
                (a.status(), kind(&a)),
                (b.status(), kind(&b)),
                "{name}: step {step}, plan {}, key {key}, path {path}",
                plan.id()
            );
            *seen.entry((a.status(), kind(&a))).or_insert(0) += 1;
        }
        // The workload exercised admissions, throttling and quota refusals.
        let statuses: Vec<_> = seen.keys().cloned().collect();
        assert!(seen.len() >= 3, "{name}: only {statuses:?}");
        eprintln!("{name}: {seen:?}");
    }
}

/// The rate-limit headers of a response (every convention) and
/// `Retry-After`, for comparing two stacks.
fn rate_limit_headers<B>(response: &Response<B>) -> Vec<(String, String)> {
    let mut headers: Vec<_> = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().contains("ratelimit") || *name == "retry-after")
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    headers.sort();
    headers
}

#[tokio::test]
async fn one_set_of_rate_limit_headers_describes_throttle_and_quota() {
    for (name, config) in support::backends("usage-plan-headers") {
        let config = config.timeout(Duration::from_secs(2));
        let start = 1_900_000_000;
        let memory_clock: SharedClock = Arc::new(ManualClock::at_unix(start));
        let redis_clock: SharedClock = Arc::new(ManualClock::at_unix(start));
        let throttle = |clock: &SharedClock| {
            ThrottleLayer::new("a1", "prod")
                .clock(clock.clone())
                .rate_limit_headers_on_success(true)
        };
        let memory = ServiceBuilder::new()
            .layer(throttle(&memory_clock))
            .layer(
                QuotaLayer::new()
                    .clock(memory_clock.clone())
                    .rate_limit_headers_on_success(true),
            )
            .service_fn(ok);
        let quota =
            QuotaLayer::with_store(RedisQuotaStore::connect(&config).await.expect("connects"))
                .clock(redis_clock.clone())
                .rate_limit_headers_on_success(true);
        let throttle = throttle(&redis_clock).with_store(
            RedisThrottleStore::connect(&config)
                .await
                .expect("connects")
                .script_clock(ScriptClock::Caller),
        );
        let redis = ServiceBuilder::new()
            .layer(RedisUsagePlanLayer::new(throttle, quota))
            .service_fn(ok);
        // A burst of 10 and a quota of 2: two admitted, then the quota's 429.
        let plan = Arc::new(
            UsagePlan::new("headers")
                .expect("valid")
                .with_throttle(settings(5.0, 10))
                .with_quota(QuotaSettings::new(2, QuotaPeriod::Day).expect("valid")),
        );
        for step in 0..3 {
            let a = memory
                .clone()
                .oneshot(request(&plan, "k", "/pets"))
                .await
                .expect("infallible");
            let b = redis
                .clone()
                .oneshot(request(&plan, "k", "/pets"))
                .await
                .expect("infallible");
            assert_eq!(a.status(), b.status(), "{name}: step {step}");
            let expected = rate_limit_headers(&a);
            assert_eq!(expected, rate_limit_headers(&b), "{name}: step {step}");
            // The in-memory stack names both policies, so the comparison
            // checks the merge.
            let policy = a.headers()["ratelimit-policy"].to_str().unwrap_or_default();
            assert!(
                policy.contains("\"key\"") && policy.contains("\"quota\""),
                "{name}: step {step}: {policy}"
            );
        }
    }
}

/// A TCP proxy in front of a Redis server that counts the commands clients
/// send through it: a client that sends one command per request makes one
/// round trip per request. (Redis's own statistics count the commands a
/// script runs too, so they cannot tell.)
struct CountingProxy {
    port: u16,
    commands: Arc<std::sync::atomic::AtomicU64>,
}

/// The length of the first whole RESP command (an array of bulk strings) in
/// `buf`, or `None` if it is not all there yet.
fn command_len(buf: &[u8]) -> Option<usize> {
    let number = |at: usize| -> Option<(usize, usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    };
    assert_eq!(*buf.first()?, b'*', "a client sends RESP arrays");
    let (count, mut at) = number(0)?;
    for _ in 0..count {
        assert_eq!(*buf.get(at)?, b'$', "of bulk strings");
        let (len, next) = number(at)?;
        at = next + len + 2;
        if buf.len() < at {
            return None;
        }
    }
    Some(at)
}

impl CountingProxy {
    async fn start(upstream: u16) -> CountingProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (listener, address) = portcullis_test_support::serve::listener().await;
        let port = address.port();
        let commands = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = commands.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    let mut chunk = [0u8; 16 * 1024];
                    while let Ok(n) = client_read.read(&mut chunk).await {
                        if n == 0 || server_write.write_all(&chunk[..n]).await.is_err() {
                            break;
                        }
                        pending.extend_from_slice(&chunk[..n]);
                        while let Some(len) = command_len(&pending) {
                            counter.fetch_add(1, Ordering::Relaxed);
                            pending.drain(..len);
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        CountingProxy { port, commands }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn count(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }
}

/// `INFO commandstats` of a private server: EVALSHA calls.
async fn evalsha_calls(connection: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Counts the commands clients send through the proxy, and the EVALSHA
/// calls the server runs, for `n` requests through `service`, and checks
/// their statuses.
async fn commands_for<S, B>(
    service: &S,
    (proxy, counter): (&CountingProxy, &mut redis::aio::MultiplexedConnection),
    plan: &Arc<UsagePlan>,
    key: &str,
    n: u64,
    expect: StatusCode,
) -> (u64, u64)
where
    S: tower::Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let before = (proxy.count(), evalsha_calls(counter).await);
    for i in 0..n {
        let response = service
            .clone()
            .oneshot(request(plan, key, "/pets"))
            .await
            .expect("infallible");
        assert_eq!(
            response.status(),
            expect,
            "plan {}, request {i}: {:?} {:?}",
            plan.id(),
            kind(&response),
            response.headers()
        );
    }
    let after = (proxy.count(), evalsha_calls(counter).await);
    (after.0 - before.0, after.1 - before.1)
}

#[tokio::test]
async fn one_round_trip_per_decision_on_a_single_server() {
    if support::single("round-trips").is_none() {
        return;
    }
    let server = support::PrivateServer::start();
    let proxy = CountingProxy::start(server.port).await;
    let config = RedisConfig::single(proxy.url()).timeout(Duration::from_secs(2));
    let mut counter = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let clock: SharedClock = Arc::new(ManualClock::at_unix(1_900_000_000));
    // Three buckets (key, stage /pets/GET, account) and a quota.
    let roomy = Arc::new(
        UsagePlan::new("roomy")
            .expect("valid")
            .with_throttle(settings(1_000.0, 1_000))
            .with_quota(QuotaSettings::new(1_000_000, QuotaPeriod::Day).expect("valid")),
    );
    let throttle = || {
        ThrottleLayer::new("a1", "prod")
            .clock(clock.clone())
            .stage_limit(
                "/pets/GET".parse().expect("valid"),
                settings(1_000.0, 1_000),
            )
            .account_limit(settings(1_000.0, 1_000))
    };
    let combined = ServiceBuilder::new()
        .layer(redis_layer(&config, &clock, throttle()).await)
        .service_fn(ok);
    // The first request loads the script and lists the key: not counted.
    let first = combined
        .clone()
        .oneshot(request(&roomy, "warm", "/pets"))
        .await
        .expect("infallible");
    assert_eq!(first.status(), StatusCode::OK);
    let (commands, evalsha) = commands_for(
        &combined,
        (&proxy, &mut counter),
        &roomy,
        "warm",
        200,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (commands, evalsha),
        (200, 200),
        "admitted: one EVALSHA each"
    );

    // Refusals cost one call too: the throttle's and the quota's.
    let tight = Arc::new(
        UsagePlan::new("tight")
            .expect("valid")
            .with_throttle(settings(0.001, 2))
            .with_quota(QuotaSettings::new(1_000, QuotaPeriod::Day).expect("valid")),
    );
    let _ = commands_for(
        &combined,
        (&proxy, &mut counter),
        &tight,
        "t",
        2,
        StatusCode::OK,
    )
    .await;
    let throttled = commands_for(
        &combined,
        (&proxy, &mut counter),
        &tight,
        "t",
        50,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(throttled, (50, 50), "throttled: one EVALSHA each");
    let spent = Arc::new(
        UsagePlan::new("spent")
            .expect("valid")
            .with_throttle(settings(1_000.0, 1_000))
            .with_quota(QuotaSettings::new(1, QuotaPeriod::Day).expect("valid")),
    );
    let _ = commands_for(
        &combined,
        (&proxy, &mut counter),
        &spent,
        "s",
        1,
        StatusCode::OK,
    )
    .await;
    let refused = commands_for(
        &combined,
        (&proxy, &mut counter),
        &spent,
        "s",
        50,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(refused, (50, 50), "over quota: one EVALSHA each");

    // The same plan through the two layers, each on its Redis store: two.
    let two_layers = ServiceBuilder::new()
        .layer(
            throttle().with_store(
                RedisThrottleStore::connect(&config)
                    .await
                    .expect("connects")
                    .script_clock(ScriptClock::Caller),
            ),
        )
        .layer(
            QuotaLayer::with_store(RedisQuotaStore::connect(&config).await.expect("connects"))
                .clock(clock.clone()),
        )
        .service_fn(ok);
    let _ = commands_for(
        &two_layers,
        (&proxy, &mut counter),
        &roomy,
        "two",
        1,
        StatusCode::OK,
    )
    .await;
    let separate = commands_for(
        &two_layers,
        (&proxy, &mut counter),
        &roomy,
        "two",
        200,
        StatusCode::OK,
    )
    .await;
    assert_eq!(separate, (400, 400), "two layers: two EVALSHA each");
}

#[tokio::test]
async fn a_fleet_admits_exactly_the_quota_through_one_script() {
    for (name, config) in support::backends("usage-plan-fleet") {
        let plan = Arc::new(
            UsagePlan::new("fleet")
                .expect("valid")
                .with_throttle(settings(100_000.0, 100_000))
                .with_quota(QuotaSettings::new(2_000, QuotaPeriod::Day).expect("valid")),
        );
        let admitted = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _instance in 0..4 {
            // Four gateway instances, each with its own connections.
            let config = config.clone().timeout(Duration::from_secs(2));
            let throttle = ThrottleLayer::new("a1", "prod").with_store(
                RedisThrottleStore::connect(&config)
                    .await
                    .expect("connects"),
            );
            let quota =
                QuotaLayer::with_store(RedisQuotaStore::connect(&config).await.expect("connects"));
            let service = ServiceBuilder::new()
                .layer(RedisUsagePlanLayer::new(throttle, quota))
                .service_fn(ok);
            for _caller in 0..16 {
                let service = service.clone();
                let plan = plan.clone();
                let admitted = admitted.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..50 {
                        let response = service
                            .clone()
                            .oneshot(request(&plan, "shared-key", "/pets"))
                            .await
                            .expect("infallible");
                        if response.status() == StatusCode::OK {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
        }
        for task in tasks {
            task.await.expect("no task panics");
        }
        // 64 callers x 50 requests = 3,200 attempts against a quota of 2,000.
        assert_eq!(admitted.load(Ordering::Relaxed), 2_000, "{name}");
    }
}
