//! The layer's cost per admitted request, side by side with `tower_governor`
//! configured the same way: keyed by the value of the `x-api-key` header,
//! one token per nanosecond with a burst of a million (so nothing is ever
//! refused), over the same inner service.
//!
//! `cargo bench -p portcullis-throttle --bench throttle`

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, HeaderValue, Request, Response};
use portcullis_core::plan::ThrottleSettings;
use portcullis_throttle::{KeyBy, ThrottleLayer};
use tower::{Layer, Service, ServiceExt};
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const KEYS: usize = 1_000;

/// tower_governor's key: the header's value (cloning a `HeaderValue` does
/// not allocate, the fastest key this peer can have).
#[derive(Clone, Copy, Debug)]
struct HeaderKey;

impl KeyExtractor for HeaderKey {
    type Key = HeaderValue;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        req.headers()
            .get(&X_API_KEY)
            .cloned()
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

fn inner() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Body>, Infallible>>,
> + Clone {
    tower::service_fn(|_: Request<Body>| std::future::ready(Ok(Response::new(Body::empty()))))
}

fn keys() -> Vec<HeaderValue> {
    (0..KEYS)
        .map(|i| HeaderValue::from_str(&format!("key-{i:05}-abcdefghijklmnop")).unwrap())
        .collect()
}

fn request(key: &HeaderValue) -> Request<Body> {
    let mut request = Request::new(Body::empty());
    request.headers_mut().insert(X_API_KEY.clone(), key.clone());
    request
}

/// Builds the request inside the measured loop for every contender alike
/// (the `bare` figure is the request and the inner service alone), so a
/// layer's overhead is its figure less `bare`.
///
/// Calls the service and polls its future once: every service here answers
/// at once.
fn call_once<S>(service: &mut S, request: Request<Body>)
where
    S: Service<Request<Body>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(result) => {
            let _ = black_box(result);
        }
        Poll::Pending => panic!("the services in this bench answer at once"),
    }
}

fn ours() -> ThrottleLayer {
    ThrottleLayer::new("bench", "prod")
        .key_by(KeyBy::header(X_API_KEY.clone()))
        .key_limit(ThrottleSettings::new(1e9, 1_000_000).unwrap())
}

fn theirs<S>(
    inner: S,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(1_000_000)
        .key_extractor(HeaderKey)
        .finish()
        .unwrap();
    tower_governor::GovernorLayer::new(Arc::new(config)).layer(inner)
}

fn single_thread(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("admitted_request");

    let mut bare = inner();
    let mut i = 0usize;
    group.bench_function("bare", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            call_once(&mut bare, request(&keys[i]))
        })
    });

    let mut throttle = ours().layer(inner());
    group.bench_function("portcullis_throttle", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            call_once(&mut throttle, request(&keys[i]))
        })
    });

    let mut governor = theirs(inner());
    group.bench_function("tower_governor", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            call_once(&mut governor, request(&keys[i]))
        })
    });
    group.finish();
}

/// 64 tasks on the multi-threaded runtime (2 workers: the machine's cores),
/// all on one key: the worst contention, every request on one bucket.
fn contended(c: &mut Criterion) {
    const TASKS: u64 = 64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let key = HeaderValue::from_static("key-00000-abcdefghijklmnop");
    let mut group = c.benchmark_group("admitted_request_64_tasks");

    fn run<S>(
        runtime: &tokio::runtime::Runtime,
        service: S,
        key: &HeaderValue,
        iters: u64,
    ) -> Duration
    where
        S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
        S::Response: Send,
    {
        runtime.block_on(async {
            let per_task = iters.div_ceil(TASKS);
            let start = Instant::now();
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let service = service.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            let response = service.clone().oneshot(request(&key)).await;
                            let _ = black_box(response);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            start.elapsed()
        })
    }

    group.bench_function("bare", |b| {
        b.iter_custom(|iters| run(&runtime, inner(), &key, iters))
    });
    let throttle = ours().layer(inner());
    group.bench_function("portcullis_throttle", |b| {
        b.iter_custom(|iters| run(&runtime, throttle.clone(), &key, iters))
    });
    let governor = theirs(inner());
    group.bench_function("tower_governor", |b| {
        b.iter_custom(|iters| run(&runtime, governor.clone(), &key, iters))
    });
    group.finish();
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);
