//! RS256 verification through `JwtLayer` (uncached and cache hit, one task
//! and 64 concurrent tasks) against `jsonwebtoken`'s own `decode` of the same
//! token with the same key, in one criterion run.
//!
//! `cargo bench -p portcullis-jwt --bench jwt`. The side-by-side run with
//! `jwt-authorizer` lives in `peer-bench/` (its axum 0.7 / tower 0.4 stack is
//! kept out of the workspace).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::{HeaderValue, Request, Response};
use jsonwebtoken::{Algorithm, Validation, decode};
use portcullis_jwt::{JwtLayer, TokenCacheConfig};
use serde_json::{Map, Value};
use tower::{Service, ServiceBuilder, ServiceExt};

#[path = "support/fixture.rs"]
mod fixture;

use fixture::{ISS, fixture, layer};

type Svc = tower::util::BoxCloneSyncService<
    Request<()>,
    Response<portcullis_core::ResponseBody<String>>,
    Infallible,
>;

fn service(layer: JwtLayer) -> Svc {
    tower::util::BoxCloneSyncService::new(ServiceBuilder::new().layer(layer).service_fn(
        |_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ))
}

fn request(value: &HeaderValue) -> Request<()> {
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, value.clone());
    request
}

/// One request through the service; the decision is synchronous, so the
/// future is ready at once and no executor is needed.
fn call(svc: &mut Svc, value: &HeaderValue) {
    let response = svc
        .call(request(value))
        .now_or_never()
        .expect("ready")
        .expect("infallible");
    assert_eq!(response.status(), 200);
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let value = HeaderValue::from_str(&format!("Bearer {}", f.token)).expect("header");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISS]);

    let mut group = c.benchmark_group("rs256");
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            decode::<Map<String, Value>>(black_box(&f.token), &f.decoding, &validation)
                .expect("valid")
        })
    });
    let mut uncached = service(layer(&f, TokenCacheConfig::disabled()));
    group.bench_function("layer_uncached", |b| {
        b.iter_batched(
            || request(&value),
            |r| uncached.call(r).now_or_never(),
            BatchSize::SmallInput,
        )
    });
    let mut cached = service(layer(&f, TokenCacheConfig::default()));
    call(&mut cached, &value);
    group.bench_function("layer_cache_hit", |b| {
        b.iter_batched(
            || request(&value),
            |r| cached.call(r).now_or_never(),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // 64 concurrent tasks on a multi-thread runtime; the figure is time per
    // request over all tasks.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("rs256_64_tasks");
    for (name, svc) in [
        (
            "layer_uncached",
            service(layer(&f, TokenCacheConfig::disabled())),
        ),
        (
            "layer_cache_hit",
            service(layer(&f, TokenCacheConfig::default())),
        ),
    ] {
        let value = value.clone();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(64).max(1);
                let start = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let svc = svc.clone();
                            let value = value.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let response = svc
                                        .clone()
                                        .oneshot(request(&value))
                                        .await
                                        .expect("infallible");
                                    assert_eq!(response.status(), 200);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                });
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * 64) as f64)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = jwt;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(jwt);
