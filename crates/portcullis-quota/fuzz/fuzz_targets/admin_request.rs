//! Arbitrary requests to the usage admin service: its path, query-string and
//! patch-body parsers see untrusted bytes. Every answer must be a well-formed
//! response below 500, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_quota::admin::{StaticKeys, UsageAdmin};
use tower::ServiceExt;

struct World {
    runtime: tokio::runtime::Runtime,
    admin: UsageAdmin,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let plan = UsagePlan::new("p")
            .expect("valid id")
            .with_quota(QuotaSettings::with_offset(10, QuotaPeriod::Week, 2).expect("valid quota"));
        let admin = UsageAdmin::new(
            QuotaLayer::new().usage_api(),
            [Arc::new(plan)],
            StaticKeys::new().key("k", "p").key("k 2", "p"),
        )
        .body_limit(4096);
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            admin,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // First byte: the method; then the URI up to a newline; the rest: body.
    let Some((&method, rest)) = data.split_first() else { return };
    let method = match method % 4 {
        0 => Method::GET,
        1 => Method::PATCH,
        2 => Method::POST,
        _ => Method::DELETE,
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (uri, body) = rest.split_at(split);
    let Ok(uri) = std::str::from_utf8(uri) else { return };
    let uri = format!("/usageplans{uri}");
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::copy_from_slice(body)))
    else {
        return;
    };
    let world = world();
    let response = world
        .runtime
        .block_on(world.admin.clone().oneshot(request))
        .expect("infallible");
    assert!(response.status().as_u16() < 500, "{}", response.status());
    let body = world
        .runtime
        .block_on(response.into_body().collect())
        .expect("infallible")
        .to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body).expect("every answer is JSON");
});
