//! The Redis throttle store against real Redis and Redis Cluster.
//!
//! The conformance test runs one random workload through the in-memory store
//! and through the Redis store on the same (caller) clock, and requires
//! identical decisions, request by request: the Redis store keeps exactly the
//! semantics the in-memory store's proptest proves against a token bucket.

mod support;

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis_core::clock::{ManualClock, SharedClock};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{MethodSelector, ThrottleSettings, UsagePlan};
use portcullis_redis::{RedisThrottleStore, ScriptClock};
use portcullis_throttle::store::{
    Answer, BucketCheck, BucketKey, CallerKey, CallerKeySource, Level, Outcome, StageId,
};
use portcullis_throttle::{Gcra, InMemoryThrottleStore, ThrottleLayer, ThrottleStore};
use tower::{ServiceBuilder, ServiceExt};

const S: u64 = 1_000_000_000;

async fn decide<St: ThrottleStore>(store: &St, checks: &[BucketCheck<'_>], now: u64) -> Outcome {
    match store.acquire(checks, now) {
        Answer::Ready(result) => result.expect("the store decides"),
        Answer::Pending(future) => future.await.expect("the store decides"),
    }
}

/// A small deterministic generator, so that a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn redis_decides_exactly_as_the_in_memory_store() {
    for (name, config) in support::backends("conformance") {
        let redis = RedisThrottleStore::connect(&config.timeout(Duration::from_secs(2)))
            .await
            .expect("connects")
            .script_clock(ScriptClock::Caller);
        let memory = InMemoryThrottleStore::new();
        let selector: MethodSelector = "/pets/GET".parse().expect("valid");
        let stage = StageId {
            api_id: "a1",
            stage: "prod",
        };
        let keys: Vec<Vec<u8>> = (0..4).map(|i| format!("key-{i}").into_bytes()).collect();
        let params = [
            Gcra::new(&ThrottleSettings::new(1.0, 2).expect("valid")),
            Gcra::new(&ThrottleSettings::new(0.5, 3).expect("valid")),
            Gcra::new(&ThrottleSettings::new(7.0, 5).expect("valid")),
            Gcra::from_parts(333_333_333, NonZeroU32::new(4).expect("non-zero")),
        ];
        let stage_gcra = Gcra::new(&ThrottleSettings::new(3.0, 6).expect("valid"));
        let account_gcra = Gcra::new(&ThrottleSettings::new(5.0, 8).expect("valid"));

        let mut rng = Rng(0x5eed_0000_0000_0001);
        let mut now = 1_800_000_000 * S;
        let mut admitted = 0;
        for step in 0..600 {
            now += rng.below(700_000_000);
            let who = rng.below(4) as usize;
            let caller = CallerKey {
                source: CallerKeySource::ApiKey,
                value: &keys[who],
            };
            let key_bucket = BucketCheck {
                key: BucketKey {
                    level: Level::Key,
                    stage: None,
                    method: None,
                    caller: Some(caller),
                },
                // Settings change at run time now and then.
                gcra: params[(who + usize::from(step > 300)) % params.len()],
            };
            let stage_bucket = BucketCheck {
                key: BucketKey {
                    level: Level::Stage,
                    stage: Some(stage),
                    method: Some(&selector),
                    caller: None,
                },
                gcra: stage_gcra,
            };
            let account_bucket = BucketCheck {
                key: BucketKey {
                    level: Level::Account,
                    stage: None,
                    method: None,
                    caller: None,
                },
                gcra: account_gcra,
            };
            let checks: Vec<BucketCheck<'_>> = match rng.below(3) {
                0 => vec![key_bucket],
                1 => vec![key_bucket, stage_bucket],
                _ => vec![key_bucket, stage_bucket, account_bucket],
            };
            let expected = decide(&memory, &checks, now).await;
            let actual = decide(&redis, &checks, now).await;
            assert_eq!(
                actual,
                expected,
                "{name}: step {step}, {} buckets",
                checks.len()
            );
            admitted += usize::from(expected.admitted);
        }
        // The workload exercised both answers.
        assert!(
            admitted > 100 && admitted < 550,
            "{name}: {admitted} admitted"
        );
    }
}

fn seed_plan() -> Arc<UsagePlan> {
    Arc::new(
        UsagePlan::new("loyalty-basic")
            .expect("valid")
            .with_throttle(ThrottleSettings::new(1.0, 2).expect("valid")),
    )
}

fn keyed(plan: &Arc<UsagePlan>, key: &str) -> Request<()> {
    let mut request = Request::new(());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new(key).with_usage_plan(plan.clone()));
    request
}

#[tokio::test]
async fn replicas_with_skewed_clocks_share_one_clock() {
    for (name, config) in support::backends("skew") {
        let plan = seed_plan();
        // Two replicas, each with its own connection, whose clocks differ by
        // two seconds. The script reads Redis's TIME, so neither replica's
        // clock refills the bucket early.
        let mut replicas = Vec::new();
        for offset in [0, 2] {
            let store = RedisThrottleStore::connect(&config)
                .await
                .expect("connects");
            let clock: SharedClock = Arc::new(ManualClock::at_unix(1_900_000_000 + offset));
            let service = ServiceBuilder::new()
                .layer(
                    ThrottleLayer::new("a1", "prod")
                        .with_store(store)
                        .clock(clock),
                )
                .service_fn(|_: Request<()>| async {
                    Ok::<_, Infallible>(Response::new(String::new()))
                });
            replicas.push(service);
        }
        // Alternating replicas: 0, 1, 1, 0.
        let mut statuses = Vec::new();
        for replica in [0, 1, 1, 0] {
            let response = replicas[replica]
                .clone()
                .oneshot(keyed(&plan, "k"))
                .await
                .expect("ok");
            statuses.push(response.status());
        }
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS
            ],
            "{name}"
        );
        // Real time refills the bucket: after a second, one more.
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let after = replicas[1]
            .clone()
            .oneshot(keyed(&plan, "k"))
            .await
            .expect("ok");
        assert_eq!(after.status(), StatusCode::OK, "{name}");
    }
}

#[tokio::test]
async fn a_fleet_admits_exactly_the_burst() {
    for (name, config) in support::backends("fleet") {
        // A bucket of 2,000 that refills one token every ~17 minutes: no
        // refill during the test, so exactly the burst is admitted.
        let plan = Arc::new(
            UsagePlan::new("fleet")
                .expect("valid")
                .with_throttle(ThrottleSettings::new(0.001, 2_000).expect("valid")),
        );
        let admitted = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _instance in 0..4 {
            // Four gateway instances, each with its own connection.
            let store =
                RedisThrottleStore::connect(&config.clone().timeout(Duration::from_secs(2)))
                    .await
                    .expect("connects");
            let service = ServiceBuilder::new()
                .layer(ThrottleLayer::new("a1", "prod").with_store(store))
                .service_fn(|_: Request<()>| async {
                    Ok::<_, Infallible>(Response::new(String::new()))
                });
            for _caller in 0..16 {
                let service = service.clone();
                let plan = plan.clone();
                let admitted = admitted.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..50 {
                        let response = service
                            .clone()
                            .oneshot(keyed(&plan, "shared-key"))
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
        // 64 callers x 50 requests = 3,200 attempts against a burst of 2,000.
        assert_eq!(admitted.load(Ordering::Relaxed), 2_000, "{name}");
    }
}
