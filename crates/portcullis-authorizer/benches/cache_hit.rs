//! Criterion: a cache hit through the layer (issue 10: at most 500 ns median).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

// The same per-thread CPU-time measurement as portcullis-iam's bench.
#[path = "support/workload.rs"]
mod workload;

use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use portcullis_test_support::cpu::ThreadCpuTime;
use tower::{Service, ServiceBuilder};
use workload::{layer, request};

/// Polls a future that is ready at once (the cache-hit path never waits).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the cache-hit path does not wait"),
    }
}

fn run<M: Measurement>(c: &mut Criterion<M>, clock: &str) {
    let mut service =
        ServiceBuilder::new()
            .layer(layer())
            .service_fn(|_request: Request<()>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            });
    // Fill the cache once; every call after is a hit.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let status = runtime
        .block_on(service.call(request()))
        .expect("infallible")
        .status();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ready(service.call(request())).expect("infallible").status(),
        StatusCode::OK
    );

    let mut bare = ServiceBuilder::new().service_fn(|_request: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });

    let mut group = c.benchmark_group(format!("authorizer_{clock}"));
    group.bench_function("cache_hit_through_layer", |b| {
        b.iter_batched(
            request,
            |request| ready(service.call(black_box(request))),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bare_service_baseline", |b| {
        b.iter_batched(
            request,
            |request| ready(bare.call(black_box(request))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn wall(c: &mut Criterion) {
    run(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    run(c, "cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
