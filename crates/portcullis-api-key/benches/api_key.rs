//! The API-key layer's overhead for a valid key, over an identity inner
//! service, with 100,000 keys loaded.
//!
//! `cargo bench -p portcullis-api-key --bench api_key`
//!
//! The overhead is `layer/valid_key` less `baseline/no_layer` (and
//! `layer/valid_key_with_extension` less `baseline/no_layer_with_extension`
//! for a request whose extension map already exists, as under axum). Requests are
//! built outside the timed section (`iter_batched`); the inner service's
//! future is polled once with a no-op waker, so no runtime is timed.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::ready;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use portcullis_api_key::{ApiKeyValue, InMemoryApiKeyStore, KeyDigest};
use tower::{Layer, Service, service_fn};

#[path = "support/workload.rs"]
mod workload;
use portcullis_test_support::poll_once;
use workload::setup;

fn bench(c: &mut Criterion) {
    let (keys, value) = setup();
    let identity = service_fn(|_: Request<()>| ready(Ok::<_, Infallible>(Response::new(()))));
    // What a framework leaves in the extensions before the layer runs (axum's
    // `MatchedPath`, for one): with it, the map exists and inserting the
    // context allocates only the context's box.
    #[derive(Clone)]
    struct FrameworkExtension;
    let request_with_extension = |key: &str| {
        let mut request = Request::builder()
            .uri("/loyalty/42")
            .header("accept", "application/json")
            .header("user-agent", "bench/1.0")
            .header("x-api-key", key)
            .body(())
            .expect("a valid request");
        request.extensions_mut().insert(FrameworkExtension);
        request
    };
    let request = |key: Option<&str>| {
        let mut builder = Request::builder()
            .uri("/loyalty/42")
            .header("accept", "application/json")
            .header("user-agent", "bench/1.0");
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        builder.body(()).expect("a valid request")
    };

    let mut group = c.benchmark_group("api_key_100k");
    {
        let mut service = identity;
        group.bench_function("baseline/no_layer", |b| {
            b.iter_batched(
                || request(Some(value.expose())),
                |req| black_box(poll_once(service.call(req))),
                BatchSize::SmallInput,
            )
        });
    }
    {
        let mut service = identity;
        group.bench_function("baseline/no_layer_with_extension", |b| {
            b.iter_batched(
                || request_with_extension(value.expose()),
                |req| black_box(poll_once(service.call(req))),
                BatchSize::SmallInput,
            )
        });
    }
    {
        let mut service = keys.layer("a1b2c3d4e5", "prod").layer(identity);
        group.bench_function("layer/valid_key_with_extension", |b| {
            b.iter_batched(
                || request_with_extension(value.expose()),
                |req| black_box(poll_once(service.call(req))),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("layer/valid_key", |b| {
            b.iter_batched(
                || request(Some(value.expose())),
                |req| black_box(poll_once(service.call(req))),
                BatchSize::SmallInput,
            )
        });
        let unknown = ApiKeyValue::generate().expect("the OS CSPRNG is available");
        group.bench_function("layer/unknown_key", |b| {
            b.iter_batched(
                || request(Some(unknown.expose())),
                |req| black_box(poll_once(service.call(req))),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("layer/missing_key", |b| {
            b.iter_batched(
                || request(None),
                |req| black_box(poll_once(service.call(req))),
                BatchSize::SmallInput,
            )
        });
    }
    // The parts of the fast path, for the README's breakdown.
    let digest = value.digest();
    let store: Arc<InMemoryApiKeyStore> = keys.store().clone();
    group.bench_function("parts/sha256_40_bytes", |b| {
        b.iter(|| black_box(KeyDigest::of(black_box(value.expose().as_bytes()))))
    });
    group.bench_function("parts/store_lookup", |b| {
        b.iter(|| black_box(store.find(black_box(&digest))))
    });
    let layer = keys.layer("a1b2c3d4e5", "prod");
    let presented = request(Some(value.expose()));
    group.bench_function("parts/decision_without_extension", |b| {
        b.iter(|| black_box(layer.authenticate_now(black_box(&presented))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
