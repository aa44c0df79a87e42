//! What `OpenApiLayer` costs per request: the route match on the demo's
//! export (`examples/airline-loyalty/config/openapi.json`, three resources
//! with OPTIONS mocks), with and without body validation against its
//! `Redemption` model, against the same application called directly. No
//! protection layer is given (the definition's `awsSigv4`, `api_key` and
//! Cognito schemes are replaced by a copy without `security`), so the
//! numbers are the layer's own: routing, the settings in the extensions,
//! the chain's boxes, and validation.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use portcullis_openapi::{ApiDefinition, OpenApiLayer};
use tower::{Layer, ServiceExt, service_fn};

type Body = Full<Bytes>;

fn definition() -> ApiDefinition {
    let text = include_str!("../../../examples/airline-loyalty/config/openapi.json");
    let mut value: serde_json::Value = serde_json::from_str(text).expect("the demo's export");
    for item in value["paths"].as_object_mut().expect("paths").values_mut() {
        for operation in item.as_object_mut().expect("a path item").values_mut() {
            if let Some(operation) = operation.as_object_mut() {
                operation.remove("security");
            }
        }
    }
    ApiDefinition::from_value(&value).expect("loads")
}

fn app()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
    })
}

fn get() -> Request<Body> {
    Request::get("/loyalty/C-1001/get")
        .body(Full::default())
        .expect("request")
}

fn redeem() -> Request<Body> {
    Request::post("/loyalty/C-1001/redeem")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"points": 500, "reward": "lounge pass"}"#,
        )))
        .expect("request")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let layer = OpenApiLayer::builder::<Body, Body, Infallible>(definition())
        .build()
        .expect("no protection to give");
    let routed = layer.layer(app());
    let direct = app();
    let mut group = c.benchmark_group("openapi");
    group.bench_function("direct GET", |b| {
        b.iter(|| runtime.block_on(direct.clone().oneshot(get())));
    });
    group.bench_function("routed GET", |b| {
        b.iter(|| runtime.block_on(routed.clone().oneshot(get())));
    });
    group.bench_function("direct POST", |b| {
        b.iter(|| runtime.block_on(direct.clone().oneshot(redeem())));
    });
    group.bench_function("routed + validated POST", |b| {
        b.iter(|| runtime.block_on(routed.clone().oneshot(redeem())));
    });
    group.bench_function("unknown route (403)", |b| {
        b.iter(|| {
            runtime.block_on(
                routed.clone().oneshot(
                    Request::delete("/loyalty/C-1001/get")
                        .body(Full::default())
                        .expect("request"),
                ),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
