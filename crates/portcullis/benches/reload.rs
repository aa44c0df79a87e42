//! The per-request cost of following reloads: the composed stack
//! (`Gateway::layer`) against the same stack behind
//! `ReloadableGateway::layer` (one atomic load and one reference count per
//! request), measured in one run so that their ratio holds on a noisy
//! machine.
//!
//! The stack: the API key, a throttle and a quota that never refuse, on the
//! memory store.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use std::convert::Infallible;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use portcullis::config::Config;
use portcullis::{Gateway, GatewayBody, ReloadableGateway};
use tower::{Layer, ServiceExt};

const KEY: &str = "BenchKey0123456789abcdefghij";

fn config() -> Config {
    Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        [store]
        kind = "memory"
        [[usage_plans]]
        id = "unlimited"
        throttle = {{ rate_limit = 1000000000.0, burst_limit = 1000000000 }}
        quota = {{ limit = 1000000000000000, period = "MONTH" }}
        [[api_keys]]
        id = "bench"
        value = "{KEY}"
        usage_plans = ["unlimited"]
        "#
    ))
    .expect("config")
}

fn request() -> Request<String> {
    Request::get("/loyalty/C-1001/get")
        .header("x-api-key", KEY)
        .body(String::new())
        .expect("request")
}

async fn ok(_: Request<GatewayBody>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::from("ok")))
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let (plain, reloadable) = runtime.block_on(async {
        let plain = Gateway::builder(config())
            .build_async()
            .await
            .expect("gateway");
        let reloadable = ReloadableGateway::with_loader(|| Ok(Gateway::builder(config())))
            .await
            .expect("gateway");
        (plain, reloadable)
    });
    let mut group = c.benchmark_group("reload");

    let composed = plain.layer().layer(tower::service_fn(ok));
    group.bench_function("composed_gateway_layer", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = composed
                .clone()
                .oneshot(request())
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200);
        });
    });

    let following = reloadable.layer().layer(tower::service_fn(ok));
    group.bench_function("reloadable_gateway_layer", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = following
                .clone()
                .oneshot(request())
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
