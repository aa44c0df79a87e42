//! The cost of the quota layer per request.
//!
//! - `single/*`: one thread. `bare` is the inner service alone; `layer/*` is the
//!   same service behind `QuotaLayer` with the in-memory store; the overhead
//!   per admitted request is the difference. `store/*` is the store alone.
//! - `contention/*`: 64 tokio tasks on the runtime's worker threads, all on
//!   one key (the worst case: one atomic word) or each on its own key; time
//!   per request, all tasks together.
//! - `rejected`: a request past the quota (the 429 is rendered).
//!
//! Run: `cargo bench -p portcullis-quota --bench quota`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use portcullis_core::clock::{Clock, ManualClock, SystemClock};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::store::{InMemoryQuotaStore, QuotaRequest, QuotaStore};
use portcullis_quota::{Calendar, QuotaLayer};
use portcullis_test_support::Bare;
use tower::{Layer, Service, ServiceExt};

fn plan(limit: u64, period: QuotaPeriod) -> Arc<UsagePlan> {
    Arc::new(
        UsagePlan::new("bench")
            .expect("valid id")
            .with_quota(QuotaSettings::new(limit, period).expect("valid quota")),
    )
}

fn request(context: &ApiKeyContext) -> Request<()> {
    let mut request = Request::new(());
    request.request_context_mut().set_api_key(context.clone());
    request
}

/// Calls a service whose future is ready at once, and returns the status.
fn call_now<S, B>(service: &mut S, request: Request<()>) -> u16
where
    S: Service<Request<()>, Response = Response<B>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = std::pin::pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response.status().as_u16(),
        _ => 0,
    }
}

fn single(c: &mut Criterion) {
    let mut group = c.benchmark_group("single");
    let unlimited = plan(u64::MAX >> 20, QuotaPeriod::Month);
    let context = ApiKeyContext::new("key-1").with_usage_plan(unlimited.clone());

    group.bench_function("bare", |b| {
        let mut service = Bare;
        b.iter_batched(
            || request(&context),
            |r| black_box(call_now(&mut service, r)),
            BatchSize::SmallInput,
        );
    });
    for (name, clock) in [
        (
            "manual_clock",
            Arc::new(ManualClock::at_unix(1_795_000_000)) as Arc<dyn Clock>,
        ),
        ("system_clock", Arc::new(SystemClock)),
    ] {
        for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
            let context = ApiKeyContext::new("key-1").with_usage_plan(plan(u64::MAX >> 20, period));
            let mut service = QuotaLayer::new().clock(clock.clone()).layer(Bare);
            group.bench_function(format!("layer/{name}/{period}"), |b| {
                b.iter_batched(
                    || request(&context),
                    |r| black_box(call_now(&mut service, r)),
                    BatchSize::SmallInput,
                );
            });
        }
    }

    let store = InMemoryQuotaStore::new();
    let calendar = Calendar::new();
    for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
        let quota = QuotaSettings::new(u64::MAX >> 20, period).expect("valid quota");
        group.bench_function(format!("store/{period}"), |b| {
            b.iter(|| {
                let (window, day) = calendar.window_at_unix(period, black_box(1_795_000_000));
                let request = QuotaRequest {
                    plan_id: "bench",
                    key_id: "key-1",
                    quota,
                    window,
                    day,
                    initial_window: None,
                };
                black_box(store.consume(&request))
            });
        });
    }

    let exhausted = plan(1, QuotaPeriod::Day);
    let context = ApiKeyContext::new("key-1").with_usage_plan(exhausted);
    let mut service = QuotaLayer::new()
        .clock(ManualClock::at_unix(1_795_000_000))
        .layer(Bare);
    call_now(&mut service, request(&context));
    group.bench_function("rejected", |b| {
        b.iter_batched(
            || request(&context),
            |r| {
                let status = call_now(&mut service, r);
                assert_eq!(status, 429);
                status
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn contention(c: &mut Criterion) {
    const TASKS: usize = 64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("contention");
    let unlimited = plan(u64::MAX >> 20, QuotaPeriod::Day);
    for shared_key in [true, false] {
        let name = if shared_key {
            "64_tasks_one_key"
        } else {
            "64_tasks_own_keys"
        };
        let service = QuotaLayer::new()
            .clock(ManualClock::at_unix(1_795_000_000))
            .layer(Bare);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(TASKS as u64);
                runtime.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|task| {
                            let service = service.clone();
                            let key = if shared_key {
                                "hot".to_owned()
                            } else {
                                format!("key-{task}")
                            };
                            let context =
                                ApiKeyContext::new(key).with_usage_plan(unlimited.clone());
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let response = service
                                        .clone()
                                        .oneshot(request(&context))
                                        .await
                                        .expect("infallible");
                                    black_box(response.status());
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                    start
                        .elapsed()
                        .div_f64((per_task * TASKS as u64) as f64 / iters as f64)
                })
            });
        });
    }
    let service = tower::ServiceBuilder::new().service(Bare);
    group.bench_function("64_tasks_bare", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS as u64);
            runtime.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let service = service.clone();
                        let context = ApiKeyContext::new("hot").with_usage_plan(unlimited.clone());
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let response = service
                                    .clone()
                                    .oneshot(request(&context))
                                    .await
                                    .expect("infallible");
                                black_box(response.status());
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
                start
                    .elapsed()
                    .div_f64((per_task * TASKS as u64) as f64 / iters as f64)
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = single, contention
}
criterion_main!(benches);
