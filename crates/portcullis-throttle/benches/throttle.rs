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
use criterion::{Criterion, criterion_group};
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

/// `THROTTLE_BENCH_INTERLEAVED=1`: the three contenders in alternating
/// rounds of 20,000 requests, 60 rounds, reporting each one's fastest and
/// median round. On a machine shared with other work, the rounds a load spike
/// hits are slow for whoever ran then; alternating spreads that evenly and the
/// fastest round is the cost without interference.
fn interleaved() {
    const ROUNDS: usize = 60;
    const PER_ROUND: usize = 20_000;
    let keys = keys();
    let mut bare = inner();
    let mut throttle = ours().layer(inner());
    let mut governor = theirs(inner());
    let mut times: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut k = 0usize;
    // `THROTTLE_BENCH_ONLY=1` (or 0, 2) runs one contender, for a profiler.
    let only: Option<usize> = std::env::var("THROTTLE_BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    for _ in 0..ROUNDS {
        for (which, slot) in times.iter_mut().enumerate() {
            if only.is_some_and(|o| o != which) {
                slot.push(1.0);
                continue;
            }
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                k = (k + 1) % KEYS;
                let request = request(&keys[k]);
                match which {
                    0 => call_once(&mut bare, request),
                    1 => call_once(&mut throttle, request),
                    _ => call_once(&mut governor, request),
                }
            }
            slot.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        }
    }
    let mut summary = Vec::new();
    for (name, mut t) in ["bare", "portcullis_throttle", "tower_governor"]
        .into_iter()
        .zip(times)
    {
        t.sort_by(f64::total_cmp);
        let (min, median) = (t[0], t[t.len() / 2]);
        println!("{name:<20} fastest round {min:7.1} ns/request, median {median:7.1}");
        summary.push((min, median));
    }
    let (bare_min, bare_med) = summary[0];
    let over = |i: usize| (summary[i].0 - bare_min, summary[i].1 - bare_med);
    let (ours_min, ours_med) = over(1);
    let (theirs_min, theirs_med) = over(2);
    println!(
        "overhead over bare: ours {ours_min:.1} ns (median {ours_med:.1}), tower_governor {theirs_min:.1} ns (median {theirs_med:.1}); ratio {:.2} (median {:.2})",
        ours_min / theirs_min,
        ours_med / theirs_med
    );
}

fn main() {
    if std::env::var_os("THROTTLE_BENCH_INTERLEAVED").is_some() {
        interleaved();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
