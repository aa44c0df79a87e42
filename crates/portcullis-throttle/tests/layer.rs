//! The layer at its public surface: the seed's numbers, fractional rates,
//! headers, keys, run-time changes and store failures.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{HeaderName, Method, Request, StatusCode};
use http_body_util::Full;
use portcullis_core::client_ip::{ClientIpResolver, PeerAddr};
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{AuthMethod, Caller};
use portcullis_throttle::{
    Answer, BucketCheck, InMemoryThrottleStore, KeyBy, Level, OnStoreError, Outcome,
    RateLimitHeaders, ThrottleLayer, ThrottleRefusal, ThrottleStore, ThrottleStoreError,
};
use tower::ServiceExt;

#[tokio::test]
async fn seed_rate_1_burst_2() {
    let clock = clock();
    let plan = Arc::new(plan("loyalty-basic", 1.0, 2));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);

    assert_eq!(
        statuses(&svc, 3, || get("k1", &plan)).await,
        [200, 200, 429]
    );

    let refused = svc.clone().oneshot(get("k1", &plan)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.headers()["x-amzn-errortype"],
        "TooManyRequestsException"
    );
    assert_eq!(
        refused.extensions().get::<ThrottleRefusal>(),
        Some(&ThrottleRefusal::BucketEmpty(Level::Key))
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["ratelimit-policy"], r#""key";q=2;w=2"#);
    assert_eq!(refused.headers()["ratelimit"], r#""key";r=0;t=2"#);
    assert_eq!(body_of(refused).await, r#"{"message":"Too Many Requests"}"#);

    clock.advance(Duration::from_secs(1));
    assert_eq!(statuses(&svc, 2, || get("k1", &plan)).await, [200, 429]);
    // Another key has its own bucket.
    assert_eq!(
        statuses(&svc, 3, || get("k2", &plan)).await,
        [200, 200, 429]
    );
}

#[tokio::test]
async fn half_a_request_per_second() {
    let clock = clock();
    let plan = Arc::new(plan("slow", 0.5, 1));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);
    assert_eq!(statuses(&svc, 2, || get("k", &plan)).await, [200, 429]);
    for _ in 0..10 {
        clock.advance(Duration::from_secs(1));
        let early = svc.clone().oneshot(get("k", &plan)).await.unwrap();
        assert_eq!(early.status(), 429);
        assert_eq!(early.headers()["retry-after"], "1");
        clock.advance(Duration::from_secs(1));
        assert_eq!(statuses(&svc, 2, || get("k", &plan)).await, [200, 429]);
    }
    // Retry-After rounds up: 1.5 s left is "2".
    clock.advance(Duration::from_millis(500));
    let early = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(early.headers()["retry-after"], "2");
}

#[tokio::test]
async fn legacy_headers_and_headers_on_success() {
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 3));
    let layer = ThrottleLayer::new(API, STAGE)
        .rate_limit_headers(RateLimitHeaders::Both)
        .rate_limit_headers_on_success(true);
    let svc = service(layer, &clock);
    let ok = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-ratelimit-limit"], "3");
    assert_eq!(ok.headers()["x-ratelimit-remaining"], "2");
    assert_eq!(ok.headers()["x-ratelimit-reset"], "1");
    assert_eq!(ok.headers()["ratelimit"], r#""key";r=2;t=1"#);
    assert!(ok.headers().get("retry-after").is_none());
    assert_eq!(body_of(ok).await, "ok");

    let svc = service(
        ThrottleLayer::new(API, STAGE).rate_limit_headers(RateLimitHeaders::Legacy),
        &clock,
    );
    let ok = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert!(ok.headers().get("x-ratelimit-limit").is_none());
    svc.clone().oneshot(get("k", &plan)).await.unwrap();
    svc.clone().oneshot(get("k", &plan)).await.unwrap();
    let refused = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(refused.headers()["x-ratelimit-reset"], "3");
    assert!(refused.headers().get("ratelimit").is_none());
}

#[tokio::test]
async fn the_trio_and_none_conventions() {
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 2));
    let trio = service(
        ThrottleLayer::new(API, STAGE)
            .rate_limit_headers(RateLimitHeaders::Trio)
            .rate_limit_headers_on_success(true),
        &clock,
    );
    let ok = trio.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(ok.headers()["ratelimit-limit"], "2");
    assert_eq!(ok.headers()["ratelimit-remaining"], "1");
    assert_eq!(ok.headers()["ratelimit-reset"], "1");
    assert!(ok.headers().get("ratelimit").is_none());
    trio.clone().oneshot(get("k", &plan)).await.unwrap();
    let refused = trio.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(refused.headers()["ratelimit-reset"], "2");
    assert_eq!(refused.headers()["retry-after"], "1");

    let none = service(
        ThrottleLayer::new(API, STAGE)
            .rate_limit_headers(RateLimitHeaders::None)
            .rate_limit_headers_on_success(true),
        &clock,
    );
    assert_eq!(
        statuses(&none, 3, || get("n", &plan)).await,
        [200, 200, 429]
    );
    let refused = none.clone().oneshot(get("n", &plan)).await.unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    for name in [
        "ratelimit",
        "ratelimit-policy",
        "ratelimit-remaining",
        "x-ratelimit-remaining",
    ] {
        assert!(refused.headers().get(name).is_none(), "{name}");
    }
}

/// A layer inside (here a stand-in for the quota) that left its policy in
/// the response: the throttle merges its own in, and the client gets one set
/// of headers describing both, `RateLimit` naming the nearest to refusal.
#[tokio::test]
async fn success_headers_merge_with_an_inner_layers_policy() {
    use portcullis_core::ratelimit::{RateLimitInfo, RateLimitPolicy};
    use tower::ServiceBuilder;

    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 3));
    let inner_left = Arc::new(std::sync::atomic::AtomicU64::new(5));
    let left = inner_left.clone();
    let svc = ServiceBuilder::new()
        .layer(
            ThrottleLayer::new(API, STAGE)
                .clock(Arc::new(clock.clone()))
                .rate_limit_headers_on_success(true),
        )
        .service_fn(move |_: Request<Full<Bytes>>| {
            let remaining = left.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let mut response = http::Response::new(Full::new(Bytes::from_static(b"ok")));
                RateLimitInfo::one(RateLimitPolicy::new("quota", 10, 86_400, remaining, 3600))
                    .apply(RateLimitHeaders::Ietf, &mut response);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
    let ok = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(
        ok.headers()["ratelimit-policy"],
        r#""key";q=3;w=3, "quota";q=10;w=86400"#
    );
    // The key's bucket has 2 left, the quota 5: the key is nearer.
    assert_eq!(ok.headers()["ratelimit"], r#""key";r=2;t=1"#);
    assert_eq!(ok.headers().get_all("ratelimit").iter().count(), 1);
    inner_left.store(1, std::sync::atomic::Ordering::SeqCst);
    let ok = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(ok.headers()["ratelimit"], r#""quota";r=1;t=3600"#);
}

#[tokio::test]
async fn grpc_requests_get_resource_exhausted() {
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 1));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);
    let grpc = || {
        let mut r = get("k", &plan);
        r.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        r
    };
    assert_eq!(status(&svc, grpc()).await, 200);
    let refused = svc.clone().oneshot(grpc()).await.unwrap();
    assert_eq!(refused.status(), 200);
    assert_eq!(refused.headers()["grpc-status"], "8");
    assert_eq!(refused.headers()["retry-after"], "1");
}

fn plain(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn requests_without_a_key_skip_the_key_level() {
    let clock = clock();
    let svc = service(
        ThrottleLayer::new(API, STAGE).key_limit(settings(1.0, 1)),
        &clock,
    );
    // No ApiKeyContext and no other source: no bucket applies.
    assert_eq!(statuses(&svc, 5, || plain("/")).await, [200; 5]);
}

#[tokio::test]
async fn keyed_by_client_ip_with_a_fallback() {
    let clock = clock();
    let resolver = ClientIpResolver::new();
    let plan = Arc::new(plan("p", 1.0, 5));
    let layer = ThrottleLayer::new(API, STAGE)
        .key_by(KeyBy::api_key().or(KeyBy::client_ip(resolver)))
        .key_limit(settings(1.0, 1));
    let svc = service(layer, &clock);
    let from = |addr: &str| {
        let mut r = plain("/");
        r.extensions_mut().insert(PeerAddr(addr.parse().unwrap()));
        r
    };
    assert_eq!(
        statuses(&svc, 2, || from("203.0.113.7:4000")).await,
        [200, 429]
    );
    assert_eq!(
        statuses(&svc, 2, || from("[2001:db8::1]:4000")).await,
        [200, 429]
    );
    // Another port of the same client is the same client.
    assert_eq!(statuses(&svc, 1, || from("203.0.113.7:4001")).await, [429]);
    // With an API key, its plan applies instead of the IP's limit.
    let keyed_from = || {
        let mut r = get("k", &plan);
        r.extensions_mut()
            .insert(PeerAddr("203.0.113.7:4000".parse().unwrap()));
        r
    };
    assert_eq!(
        statuses(&svc, 6, keyed_from).await,
        [200, 200, 200, 200, 200, 429]
    );
}

#[tokio::test]
async fn keyed_by_principal_header_global_and_function() {
    let clock = clock();
    let limit = settings(1.0, 2);

    let svc = service(
        ThrottleLayer::new(API, STAGE)
            .key_by(KeyBy::principal())
            .key_limit(limit),
        &clock,
    );
    let as_user = |who: &str| {
        let mut r = plain("/");
        r.request_context_mut()
            .set_caller(Caller::new(who, AuthMethod::Jwt));
        r
    };
    assert_eq!(
        statuses(&svc, 3, || as_user("alice")).await,
        [200, 200, 429]
    );
    assert_eq!(statuses(&svc, 1, || as_user("bob")).await, [200]);

    let tenant = HeaderName::from_static("x-tenant");
    let svc = service(
        ThrottleLayer::new(API, STAGE)
            .key_by(KeyBy::header(tenant.clone()))
            .key_limit(limit),
        &clock,
    );
    let for_tenant = |t: &'static str| {
        let mut r = plain("/");
        r.headers_mut().insert(tenant.clone(), t.parse().unwrap());
        r
    };
    assert_eq!(statuses(&svc, 3, || for_tenant("a")).await, [200, 200, 429]);
    assert_eq!(statuses(&svc, 1, || for_tenant("b")).await, [200]);

    let svc = service(
        ThrottleLayer::new(API, STAGE)
            .key_by(KeyBy::global())
            .key_limit(limit),
        &clock,
    );
    assert_eq!(statuses(&svc, 3, || plain("/a")).await, [200, 200, 429]);

    let svc = service(
        ThrottleLayer::new(API, STAGE)
            .key_by(KeyBy::function(|head| {
                head.uri.path().split('/').nth(1).map(str::to_owned)
            }))
            .key_limit(limit),
        &clock,
    );
    assert_eq!(statuses(&svc, 3, || plain("/x/1")).await, [200, 200, 429]);
    assert_eq!(statuses(&svc, 1, || plain("/y/1")).await, [200]);
}

#[tokio::test]
async fn key_and_plan_rates_change_at_once() {
    let clock = clock();
    let plan = Arc::new(plan("basic", 1.0, 1));
    let layer = ThrottleLayer::new(API, STAGE);
    let handle = layer.handle();
    let svc = service(layer, &clock);
    assert_eq!(statuses(&svc, 2, || get("k", &plan)).await, [200, 429]);

    // A temporary extension for the key: a bigger bucket at once.
    handle.set_key_limit("k", settings(1.0, 4));
    assert_eq!(
        statuses(&svc, 4, || get("k", &plan)).await,
        [200, 200, 200, 429]
    );
    handle.clear_key_limit("k");
    clock.advance(Duration::from_secs(10));
    assert_eq!(statuses(&svc, 2, || get("k", &plan)).await, [200, 429]);

    // A faster rate for the whole plan: an empty bucket refills at it.
    // The bucket owes a whole second; under the new limit it is empty, and
    // the next token comes after 100 ms.
    handle.set_plan_limit("basic", settings(10.0, 1));
    assert_eq!(statuses(&svc, 1, || get("k", &plan)).await, [429]);
    clock.advance(Duration::from_millis(100));
    assert_eq!(statuses(&svc, 2, || get("k", &plan)).await, [200, 429]);
    assert_eq!(statuses(&svc, 1, || get("other", &plan)).await, [200]);
    // The key's own override beats the plan's.
    handle.set_key_limit("k", settings(1.0, 3));
    assert_eq!(statuses(&svc, 3, || get("k", &plan)).await, [200, 200, 429]);
    handle.clear_key_limit("k");
    handle.clear_plan_limit("basic");
    assert!(handle.plan_limit("basic").is_none());
}

#[tokio::test]
async fn clones_of_the_layer_share_buckets() {
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 2));
    let layer = ThrottleLayer::new(API, STAGE);
    let a = service(layer.clone(), &clock);
    let b = service(layer, &clock);
    assert_eq!(status(&a, get("k", &plan)).await, 200);
    assert_eq!(status(&b, get("k", &plan)).await, 200);
    assert_eq!(status(&a, get("k", &plan)).await, 429);
}

/// A store that answers later, through a future: the layer's waiting path.
#[derive(Clone, Debug)]
struct Deferred {
    inner: InMemoryThrottleStore,
    fail: bool,
}

impl ThrottleStore for Deferred {
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Outcome, ThrottleStoreError>> + Send>,
    >;

    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future> {
        let result = if self.fail {
            Err(ThrottleStoreError::msg("connection refused"))
        } else {
            self.inner.acquire_now(checks, now)
        };
        Answer::Pending(Box::pin(async move {
            tokio::task::yield_now().await;
            result
        }))
    }
}

#[tokio::test]
async fn a_pending_store_decides_the_same() {
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 2));
    let store = Deferred {
        inner: InMemoryThrottleStore::new(),
        fail: false,
    };
    let svc = service(ThrottleLayer::new(API, STAGE).with_store(store), &clock);
    assert_eq!(statuses(&svc, 3, || get("k", &plan)).await, [200, 200, 429]);
    let refused = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_failing_store_fails_open_unless_told_otherwise() {
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 1));
    let failing = Deferred {
        inner: InMemoryThrottleStore::new(),
        fail: true,
    };
    let svc = service(
        ThrottleLayer::new(API, STAGE).with_store(failing.clone()),
        &clock,
    );
    assert_eq!(statuses(&svc, 3, || get("k", &plan)).await, [200, 200, 200]);
    let svc = service(
        ThrottleLayer::new(API, STAGE)
            .with_store(failing)
            .on_store_error(OnStoreError::Refuse),
        &clock,
    );
    let refused = svc.clone().oneshot(get("k", &plan)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        refused.extensions().get::<ThrottleRefusal>(),
        Some(&ThrottleRefusal::StoreFailed)
    );
}

#[tokio::test]
async fn methods_are_matched_case_sensitively_as_http_sends_them() {
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, 1));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);
    // The per-key bucket is plan-wide: every method shares it.
    assert_eq!(
        status(&svc, keyed(Method::GET, "/a", "k", &plan)).await,
        200
    );
    assert_eq!(
        status(&svc, keyed(Method::POST, "/b", "k", &plan)).await,
        429
    );
}
