//! The in-memory hot path on a control-plane store, side by side with the
//! layers' own in-memory stores in the same run.
//!
//! - `quota/engine_block`: one quota decision by `QuotaEngine` on a block
//!   already reserved (the path every request takes but one per block);
//!   `quota/quota_memory_store` is `portcullis-quota`'s `InMemoryQuotaStore` doing
//!   the same decision. Target: ≤ 150 ns.
//! - `api_key/key_cache/*`: an API key lookup through `KeyCache` (the
//!   adapter on a control-plane store holding 10,000 keys), with and without
//!   the SHA-256 of the value the layer computes per request;
//!   `api_key/in_memory_store/*` is `portcullis-api-key`'s own store. Target:
//!   ≤ 300 ns.
//!
//! Run: `cargo bench -p portcullis-control-plane --bench hot_path -- --quick`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_api_key::{ApiKeyRecord, ApiKeyStore, ApiKeyValue, InMemoryApiKeyStore, KeyDigest};
use portcullis_control_plane::{
    ControlPlaneStore, EngineConfig, KeyCache, MemoryStore, NewApiKey, QuotaEngine,
};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{Answer, InMemoryQuotaStore, QuotaRequest, QuotaStore};
use time::OffsetDateTime;
use time::macros::date;

fn quota_request() -> QuotaRequest<'static> {
    let day = date!(2026 - 11 - 23);
    QuotaRequest {
        plan_id: "bench-plan",
        key_id: "bench-key",
        quota: QuotaSettings::new(1 << 46, QuotaPeriod::Day).expect("valid quota"),
        window: Calendar::new().window_of_date(QuotaPeriod::Day, day),
        day,
        initial_window: None,
    }
}

fn quota(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let engine = QuotaEngine::with_config(
        MemoryStore::memory(),
        EngineConfig {
            max_block: 1 << 20,
            initial_block: 1 << 20,
            ..EngineConfig::default()
        },
    );
    let request = quota_request();
    let mut group = c.benchmark_group("quota");
    group.bench_function("engine_block", |b| {
        b.iter(|| {
            let request = black_box(&request);
            match engine.consume(request) {
                Answer::Ready(decision) => decision.expect("in memory").admitted,
                // Once per block (a million requests): reserve the next.
                Answer::Pending(future) => runtime.block_on(future).expect("in memory").admitted,
            }
        });
    });
    let memory = InMemoryQuotaStore::new();
    group.bench_function("quota_memory_store", |b| {
        b.iter(|| {
            memory
                .consume(black_box(&request))
                .ready()
                .expect("in memory")
                .as_ref()
                .expect("infallible")
                .admitted
        });
    });
    group.finish();
}

fn api_key(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let store = MemoryStore::memory();
    let values: Vec<ApiKeyValue> = (0..10_000)
        .map(|_| ApiKeyValue::generate().expect("randomness"))
        .collect();
    let keys: Vec<NewApiKey> = values
        .iter()
        .map(|value| NewApiKey {
            enabled: true,
            value: Some(value.clone()),
            ..NewApiKey::default()
        })
        .collect();
    runtime
        .block_on(store.import_api_keys(keys))
        .expect("import");
    let cache = runtime
        .block_on(KeyCache::load(store))
        .expect("load the cache");
    let own =
        InMemoryApiKeyStore::from_records(values.iter().enumerate().map(|(i, v)| {
            ApiKeyRecord::new(format!("k{i}"), v.digest(), OffsetDateTime::UNIX_EPOCH)
        }))
        .expect("distinct keys");
    let value = values[4_321].expose().to_owned();
    let digest = KeyDigest::of(value.as_bytes());

    let mut group = c.benchmark_group("api_key");
    group.bench_function("key_cache/lookup", |b| {
        b.iter(|| {
            cache
                .lookup_now(black_box(&digest), |found| {
                    found.ok().flatten().is_some_and(ApiKeyRecord::enabled)
                })
                .expect("answers at once")
        });
    });
    group.bench_function("key_cache/digest_and_lookup", |b| {
        b.iter(|| {
            let digest = KeyDigest::of(black_box(value.as_bytes()));
            cache
                .lookup_now(&digest, |found| {
                    found.ok().flatten().is_some_and(ApiKeyRecord::enabled)
                })
                .expect("answers at once")
        });
    });
    group.bench_function("in_memory_store/lookup", |b| {
        b.iter(|| {
            own.lookup_now(black_box(&digest), |found| {
                found.ok().flatten().is_some_and(ApiKeyRecord::enabled)
            })
            .expect("answers at once")
        });
    });
    group.bench_function("in_memory_store/digest_and_lookup", |b| {
        b.iter(|| {
            let digest = KeyDigest::of(black_box(value.as_bytes()));
            own.lookup_now(&digest, |found| {
                found.ok().flatten().is_some_and(ApiKeyRecord::enabled)
            })
            .expect("answers at once")
        });
    });
    group.finish();
}

criterion_group!(benches, quota, api_key);
criterion_main!(benches);
