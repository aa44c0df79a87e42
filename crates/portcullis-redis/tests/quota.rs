//! The Redis quota store against real Redis and Redis Cluster.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::store::{InMemoryQuotaStore, QuotaRequest, QuotaStore, UsageUpdate};
use portcullis_quota::{Calendar, QuotaLayer};
use portcullis_redis::RedisQuotaStore;
use time::Date;
use time::macros::date;
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

async fn consume<St: QuotaStore>(store: &St, request: &QuotaRequest<'_>) -> (bool, u64) {
    let decision = store.consume(request).resolve().await.expect("decides");
    (decision.admitted, decision.remaining)
}

#[tokio::test]
async fn redis_counts_exactly_as_the_in_memory_store() {
    for (name, config) in support::backends("quota-conformance") {
        let redis = RedisQuotaStore::connect(&config.timeout(Duration::from_secs(2)))
            .await
            .expect("connects")
            .retention_days(10);
        let memory = InMemoryQuotaStore::with_retention_days(10);
        let calendar = Calendar::new();
        let quotas = [
            QuotaSettings::with_offset(5, QuotaPeriod::Day, 2).expect("valid"),
            QuotaSettings::new(12, QuotaPeriod::Week).expect("valid"),
            QuotaSettings::with_offset(20, QuotaPeriod::Month, 3).expect("valid"),
        ];
        let keys = ["alpha", "beta", "gamma"];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut day = date!(2028 - 02 - 20);
        let first = day;
        let mut admitted = 0;
        for step in 0..700 {
            if rng.below(12) == 0 {
                day = day.next_day().expect("in range");
            }
            let key = keys[rng.below(3) as usize];
            let mut quota = quotas[rng.below(3) as usize];
            // A plan's limit changes at run time now and then.
            if step > 400 && key == "beta" {
                quota = QuotaSettings::new(15, quota.period()).expect("valid");
            }
            let plan = format!("plan-{}", quota.period());
            let request = QuotaRequest {
                plan_id: &plan,
                key_id: key,
                quota,
                window: calendar.window_of_date(quota.period(), day),
                day,
                initial_window: None,
            };
            match rng.below(20) {
                0 => {
                    let update = match rng.below(3) {
                        0 => UsageUpdate::Extend(rng.below(4)),
                        1 => UsageUpdate::SetRemaining(rng.below(6)),
                        _ => UsageUpdate::Reset,
                    };
                    let expected = memory.update(&request, update).await.expect("memory");
                    let actual = redis.update(&request, update).await.expect("redis");
                    assert_eq!(actual, expected, "{name}: step {step} {update:?}");
                }
                _ => {
                    let expected = consume(&memory, &request).await;
                    let actual = consume(&redis, &request).await;
                    assert_eq!(actual, expected, "{name}: step {step} {key} {day}");
                    admitted += usize::from(expected.0);
                }
            }
        }
        assert!(admitted > 100, "{name}: the workload admitted {admitted}");
        // The usage records agree too, per plan and key.
        for quota in quotas {
            let plan = format!("plan-{}", quota.period());
            assert_eq!(
                redis.keys(&plan).await.expect("redis"),
                memory.keys(&plan).await.expect("memory"),
                "{name}: keys of {plan}"
            );
            for key in keys {
                let expected = memory.usage(&plan, key, first, day).await.expect("memory");
                let actual = redis.usage(&plan, key, first, day).await.expect("redis");
                assert_eq!(actual, expected, "{name}: usage of {plan}/{key}");
            }
        }
    }
}

fn request_for(plan: &Arc<UsagePlan>, key: &str) -> Request<()> {
    let mut request = Request::new(());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new(key).with_usage_plan(plan.clone()));
    request
}

#[tokio::test]
async fn a_fleet_of_four_admits_exactly_the_quota() {
    for (name, config) in support::backends("quota-fleet") {
        let plan = Arc::new(
            UsagePlan::new("fleet")
                .expect("valid")
                .with_quota(QuotaSettings::new(10_000, QuotaPeriod::Month).expect("valid")),
        );
        let admitted = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _instance in 0..4 {
            // Four gateway instances, each with its own connection and store.
            let store = RedisQuotaStore::connect(&config.clone().timeout(Duration::from_secs(5)))
                .await
                .expect("connects");
            let service = ServiceBuilder::new()
                .layer(QuotaLayer::with_store(store))
                .service_fn(|_: Request<()>| async {
                    Ok::<_, Infallible>(Response::new(String::new()))
                });
            for _caller in 0..16 {
                let service = service.clone();
                let plan = plan.clone();
                let admitted = admitted.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..(20_000 / 64) {
                        let response = service
                            .clone()
                            .oneshot(request_for(&plan, "everyone"))
                            .await
                            .expect("infallible");
                        match response.status() {
                            StatusCode::OK => {
                                admitted.fetch_add(1, Ordering::Relaxed);
                            }
                            StatusCode::TOO_MANY_REQUESTS => {}
                            other => panic!("unexpected {other}"),
                        }
                    }
                }));
            }
        }
        for task in tasks {
            task.await.expect("no task panics");
        }
        // 64 callers x 312 = 19,968 attempts against a quota of 10,000.
        assert_eq!(admitted.load(Ordering::Relaxed), 10_000, "{name}");
    }
}

#[tokio::test]
async fn usage_records_survive_for_get_usage() {
    for (name, config) in support::backends("quota-usage") {
        // A deadline past the default 20 ms: this test is about what is
        // stored, and a busy machine (the other tests of this file run
        // beside it) can hold a reply longer than that.
        let store = RedisQuotaStore::connect(&config.timeout(Duration::from_secs(2)))
            .await
            .expect("connects");
        let quota = QuotaSettings::new(10, QuotaPeriod::Day).expect("valid");
        let calendar = Calendar::new();
        let days: [Date; 2] = [date!(2026 - 11 - 23), date!(2026 - 11 - 24)];
        for (uses, day) in [3, 4].into_iter().zip(days) {
            let request = QuotaRequest {
                plan_id: "p",
                key_id: "k",
                quota,
                window: calendar.window_of_date(QuotaPeriod::Day, day),
                day,
                initial_window: None,
            };
            for _ in 0..uses {
                assert!(consume(&store, &request).await.0, "{name}");
            }
        }
        let records = store
            .usage("p", "k", days[0], days[1])
            .await
            .expect("reads");
        let pairs: Vec<(u64, u64)> = records.iter().map(|r| (r.used, r.remaining)).collect();
        assert_eq!(pairs, vec![(3, 7), (4, 6)], "{name}");
        assert_eq!(store.keys("p").await.expect("reads"), vec!["k".to_owned()]);
    }
}

#[tokio::test]
async fn passes_the_quota_crates_conformance_suite() {
    for (name, config) in support::backends("quota-suite") {
        let made = AtomicUsize::new(0);
        portcullis_quota::conformance::check_store(|| {
            // A fresh, empty store each time: its own key prefix.
            let n = made.fetch_add(1, Ordering::Relaxed);
            let config = config
                .clone()
                .timeout(Duration::from_secs(2))
                .key_prefix(format!("{}:{n}", config.prefix()));
            async move { RedisQuotaStore::connect(&config).await.expect("connects") }
        })
        .await;
        eprintln!("{name}: the conformance suite passed");
    }
}

/// The suite warm as well as cold: every store of the run above connects
/// afresh and writes under a fresh prefix (the first call is the very first
/// one that store makes); here every store shares one connection that has
/// already served other keys, as a long-running replica's does.
#[tokio::test]
async fn passes_the_conformance_suite_on_a_warm_connection() {
    for (name, config) in support::backends("quota-suite-warm") {
        let config = config.timeout(Duration::from_secs(2));
        let connection = config.connect().await.expect("connects");
        let warm = RedisQuotaStore::new(connection.clone(), format!("{}:warm-up", config.prefix()));
        let daily = QuotaSettings::new(5, QuotaPeriod::Day).expect("valid");
        let monday = date!(2026 - 11 - 23);
        let request = first_call_request("warm-up", daily, monday);
        assert!(
            consume(&warm, &request).await.0,
            "{name}: the warm-up counts"
        );
        let made = AtomicUsize::new(0);
        portcullis_quota::conformance::check_store(|| {
            let n = made.fetch_add(1, Ordering::Relaxed);
            let store =
                RedisQuotaStore::new(connection.clone(), format!("{}:{n}", config.prefix()));
            async move { store }
        })
        .await;
        eprintln!("{name}: the conformance suite passed on a warm connection");
    }
}

fn first_call_request(key: &str, quota: QuotaSettings, day: Date) -> QuotaRequest<'_> {
    QuotaRequest {
        plan_id: "first-calls",
        key_id: key,
        quota,
        window: Calendar::new().window_of_date(quota.period(), day),
        day,
        initial_window: None,
    }
}

/// `CALLS` consumes of one key at once, each its own task: exactly `limit`
/// admitted, each with its own remaining count (limit-1 down to 0), and the
/// usage record says `limit` used.
async fn together<St>(store: &St, key: &str, limit: u64, day: Date, label: &str)
where
    St: QuotaStore,
    St::Error: std::fmt::Debug,
{
    const CALLS: u64 = 64;
    let quota = QuotaSettings::new(limit, QuotaPeriod::Day).expect("valid");
    let request = first_call_request(key, quota, day);
    let tasks: Vec<_> = (0..CALLS)
        .map(|_| tokio::spawn(store.consume(&request).resolve()))
        .collect();
    let mut remaining = Vec::new();
    for task in tasks {
        let decision = task.await.expect("no task panics").expect("decides");
        if decision.admitted {
            remaining.push(decision.remaining);
        }
    }
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..limit).collect::<Vec<_>>(),
        "{label}: {CALLS} calls at once on {day}"
    );
    let usage = store
        .usage("first-calls", key, day, day)
        .await
        .expect("reads");
    let used: Vec<(u64, u64)> = usage.iter().map(|r| (r.used, r.remaining)).collect();
    assert_eq!(used, vec![(limit, 0)], "{label}: the usage record on {day}");
}

/// A key's very first calls arrive together, on a store that has just
/// connected (cold: its first calls ever, a fresh prefix), then on the same
/// store for a new key (warm), then for the first key's next period: each
/// time exactly the limit is admitted. The in-memory store runs the same
/// check, so the check itself is the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_calls_together_count_exactly_cold_and_warm() {
    let monday = date!(2026 - 11 - 23);
    let tuesday = date!(2026 - 11 - 24);
    let memory = InMemoryQuotaStore::new();
    together(&memory, "first", 40, monday, "memory, cold key").await;
    together(&memory, "first", 40, tuesday, "memory, new period").await;
    for (name, config) in support::backends("quota-first-calls") {
        let config = config.timeout(Duration::from_secs(2));
        let store = RedisQuotaStore::connect(&config).await.expect("connects");
        together(&store, "first", 40, monday, &format!("{name}, cold store")).await;
        together(&store, "second", 40, monday, &format!("{name}, warm store")).await;
        together(&store, "first", 40, tuesday, &format!("{name}, new period")).await;
        let mut keys = store.keys("first-calls").await.expect("reads");
        keys.sort_unstable();
        assert_eq!(keys, ["first", "second"], "{name}: both keys listed once");
    }
}
