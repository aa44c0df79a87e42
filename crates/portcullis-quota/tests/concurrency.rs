//! Exactness under concurrency: never more than the limit admitted, and a
//! refused request never counts.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis_core::clock::{Clock, ManualClock};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::store::{InMemoryQuotaStore, QuotaRequest, QuotaStore};
use portcullis_quota::{Calendar, QuotaLayer};
use time::macros::{date, datetime};
use tower::{ServiceBuilder, ServiceExt};

/// The scenario through the layer: 64 tasks share 20,000 attempts
/// against a limit of 10,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_twenty_thousand_attempts_exactly_ten_thousand_admitted() {
    const TASKS: u64 = 64;
    const ATTEMPTS: u64 = 20_000;
    const LIMIT: u64 = 10_000;
    let attempts = Arc::new(AtomicU64::new(0));

    let plan = Arc::new(
        UsagePlan::new("p")
            .unwrap()
            .with_quota(QuotaSettings::new(LIMIT, QuotaPeriod::Day).unwrap()),
    );
    let clock = ManualClock::at(datetime!(2026-11-23 12:00 UTC));
    let layer = QuotaLayer::new().clock(clock.clone());
    let usage = layer.usage_api();
    let served = Arc::new(AtomicU64::new(0));
    let inner_served = served.clone();
    let service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |_: Request<()>| {
            inner_served.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, Infallible>(Response::new(())) }
        });

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let service = service.clone();
        let context = ApiKeyContext::new("hot-key").with_usage_plan(plan.clone());
        let attempts = attempts.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0u64, 0u64);
            while attempts.fetch_add(1, Ordering::Relaxed) < ATTEMPTS {
                let mut request = Request::new(());
                request.request_context_mut().set_api_key(context.clone());
                match service.clone().oneshot(request).await.unwrap().status() {
                    StatusCode::OK => ok += 1,
                    StatusCode::TOO_MANY_REQUESTS => refused += 1,
                    other => panic!("unexpected {other}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let (o, r) = task.await.unwrap();
        ok += o;
        refused += r;
    }
    assert_eq!(ok, LIMIT);
    assert_eq!(refused, ATTEMPTS - LIMIT);
    assert_eq!(served.load(Ordering::Relaxed), LIMIT);

    // The usage record agrees: refused requests did not count.
    let report = usage
        .get_usage(
            &plan,
            Some("hot-key"),
            date!(2026 - 11 - 23),
            date!(2026 - 11 - 23),
        )
        .await
        .unwrap();
    assert_eq!(report.items["hot-key"], vec![[LIMIT, 0]]);
}

/// The heavier reading at the store: 64 threads make 20,000 attempts each
/// (1,280,000 in all) against a limit of 10,000.
#[test]
fn sixty_four_threads_twenty_thousand_attempts_each_exactly_ten_thousand_admitted() {
    const THREADS: usize = 64;
    const ATTEMPTS: u64 = 20_000;
    const LIMIT: u64 = 10_000;

    let store = InMemoryQuotaStore::new();
    let quota = QuotaSettings::new(LIMIT, QuotaPeriod::Month).unwrap();
    let day = date!(2026 - 11 - 23);
    let window = Calendar::new().window_of_date(QuotaPeriod::Month, day);
    let admitted = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let request = QuotaRequest {
                    plan_id: "p",
                    key_id: "k",
                    quota,
                    window,
                    day,
                    initial_window: None,
                };
                let mut mine = 0;
                for _ in 0..ATTEMPTS {
                    if store
                        .consume(&request)
                        .ready()
                        .copied()
                        .unwrap()
                        .unwrap()
                        .admitted
                    {
                        mine += 1;
                    }
                }
                admitted.fetch_add(mine, Ordering::Relaxed);
            });
        }
    });
    assert_eq!(admitted.load(Ordering::Relaxed), LIMIT);
    let records = ready_now(store.usage("p", "k", day, day));
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].used, records[0].remaining), (LIMIT, 0));
}

/// Threads hammer one key while the day changes under them. With a weekly
/// quota the period does not change, so exactly the limit is admitted in
/// total, and the two days' usage records add up to it.
#[test]
fn a_day_change_under_contention_loses_nothing() {
    const THREADS: usize = 8;
    const ATTEMPTS: u64 = 20_000;
    const LIMIT: u64 = 50_000;

    let store = InMemoryQuotaStore::new();
    let quota = QuotaSettings::new(LIMIT, QuotaPeriod::Week).unwrap();
    let clock = ManualClock::at(datetime!(2026-11-24 23:59:59 UTC));
    let admitted = Arc::new(AtomicU64::new(0));
    let calendar = Calendar::new();
    let moved = AtomicBool::new(false);

    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let (store, clock, admitted, moved) = (&store, &clock, &admitted, &moved);
            scope.spawn(move || {
                for _ in 0..ATTEMPTS {
                    if admitted.load(Ordering::Relaxed) >= LIMIT / 2
                        && !moved.swap(true, Ordering::AcqRel)
                    {
                        clock.advance(Duration::from_secs(1)); // 2026-11-25 00:00
                    }
                    let seconds = i64::try_from(clock.now_unix_seconds()).unwrap();
                    let (window, day) = calendar.window_at_unix(QuotaPeriod::Week, seconds);
                    let request = QuotaRequest {
                        plan_id: "p",
                        key_id: "k",
                        quota,
                        window,
                        day,
                        initial_window: None,
                    };
                    let decision = store.consume(&request).ready().copied().unwrap().unwrap();
                    if decision.admitted {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });

    let admitted = admitted.load(Ordering::Relaxed);
    assert_eq!(admitted, LIMIT, "every attempt beyond the limit is refused");
    let records = ready_now(store.usage("p", "k", date!(2026 - 11 - 24), date!(2026 - 11 - 25)));
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records[0].used >= LIMIT / 2 && records[1].used > 0,
        "{records:?}"
    );
    assert_eq!(
        records.iter().map(|r| r.used).sum::<u64>(),
        LIMIT,
        "{records:?}"
    );
    assert_eq!(records[0].remaining, LIMIT - records[0].used);
    assert_eq!(records[1].remaining, 0);
}

/// Polls a future that is ready at once (the memory store's).
fn ready_now<T>(future: impl std::future::Future<Output = Result<T, Infallible>>) -> T {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output.unwrap_or_else(|e| match e {}),
        std::task::Poll::Pending => panic!("the memory store never waits"),
    }
}
