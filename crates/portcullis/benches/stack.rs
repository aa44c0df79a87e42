//! The cost of the composed (boxed) stack against the same layers stacked
//! unboxed with `ServiceBuilder`, and against the bare service.
//!
//! The stack: a web ACL with an SQL-injection rule on the query, the API key,
//! a throttle and a quota that never refuse. No SigV4: signing is measured in
//! `portcullis-sigv4`'s own bench.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use std::convert::Infallible;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use portcullis::config::Config;
use portcullis::{Gateway, GatewayBody};
use tower::{Layer, ServiceBuilder, ServiceExt};

const KEY: &str = "BenchKey0123456789abcdefghij";

fn gateway() -> Gateway {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("acl.json"),
        r#"{"Name":"bench","DefaultAction":{"Allow":{}},"Rules":[
          {"Name":"sqli","Priority":1,"Action":{"Block":{}},
           "Statement":{"SqliMatchStatement":{"FieldToMatch":{"QueryString":{}},
             "TextTransformations":[{"Priority":0,"Type":"URL_DECODE"}]}},
           "VisibilityConfig":{"SampledRequestsEnabled":false,"CloudWatchMetricsEnabled":false,"MetricName":"sqli"}}]}"#,
    )
    .expect("acl");
    let config = Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        [[usage_plans]]
        id = "unlimited"
        throttle = {{ rate_limit = 1000000000.0, burst_limit = 1000000000 }}
        quota = {{ limit = 1000000000000000, period = "MONTH" }}
        [[api_keys]]
        id = "bench"
        value = "{KEY}"
        usage_plans = ["unlimited"]
        [waf]
        web_acl = "acl.json"
        "#
    ))
    .expect("config");
    Gateway::builder(config)
        .base_dir(&dir)
        .build()
        .expect("gateway")
}

fn request() -> Request<String> {
    Request::get("/loyalty/C-1001/get?customer=C-1001")
        .header("x-api-key", KEY)
        .body(String::new())
        .expect("request")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let gateway = gateway();
    let mut group = c.benchmark_group("stack");

    let bare = tower::service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    });
    group.bench_function("bare", |b| {
        b.to_async(&runtime).iter(|| bare.oneshot(request()));
    });

    let unboxed = ServiceBuilder::new()
        .layer(gateway.waf_layer().expect("waf"))
        .layer(gateway.api_key_layer())
        .layer(gateway.throttle_layer())
        .layer(gateway.quota_layer())
        .service_fn(|_: Request<_>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        });
    group.bench_function("unboxed_service_builder", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = unboxed
                .clone()
                .oneshot(request())
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200);
        });
    });

    let boxed = gateway
        .layer()
        .layer(tower::service_fn(|_: Request<GatewayBody>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }));
    group.bench_function("composed_gateway_layer", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = boxed.clone().oneshot(request()).await.expect("infallible");
            assert_eq!(response.status(), 200);
        });
    });

    // The same stack without the request's span (the request id and its
    // header stay): what the span costs when no subscriber wants it.
    let without_span = gateway
        .layer()
        .without_request_span()
        .layer(tower::service_fn(|_: Request<GatewayBody>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        }));
    group.bench_function("composed_gateway_layer_without_request_span", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = without_span
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
