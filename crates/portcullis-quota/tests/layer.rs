//! The layer at its public surface: the seed scenario, offset, pass-through,
//! headers, gRPC rendering, and stores that must be awaited.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};
use portcullis_core::clock::ManualClock;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, UsagePlan};
use portcullis_core::ratelimit::RateLimitHeaders;
use portcullis_quota::store::{
    Answer, DayUsage, Decision, InMemoryQuotaStore, QuotaRequest, QuotaStore, UsageUpdate,
};
use portcullis_quota::{OnStoreError, QuotaConfig, QuotaLayer, QuotaRefusal};
use time::Date;
use time::macros::datetime;

#[tokio::test]
async fn seed_ten_admitted_the_eleventh_refused_then_admitted_after_midnight_utc() {
    let plan = plan("loyalty-basic", 10, QuotaPeriod::Day, 0);
    let clock = ManualClock::at(datetime!(2026-11-23 21:30 UTC));
    let service = service(QuotaLayer::new().clock(clock.clone()));

    for i in 0..10 {
        assert_eq!(
            status(&service, "key-1", &plan).await,
            StatusCode::OK,
            "request {i}"
        );
    }
    let refused = send(&service, request_for("key-1", &plan)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body(), r#"{"message":"Limit Exceeded"}"#);
    assert_eq!(
        refused.extensions().get::<QuotaRefusal>(),
        Some(&QuotaRefusal::Exceeded)
    );
    assert_eq!(
        refused.headers()["x-amzn-errortype"],
        "LimitExceededException"
    );
    assert_eq!(refused.headers()["content-type"], "application/json");
    // The IETF draft's convention by default: the policy named "quota", 10
    // requests a day, none left, 9,000 s to midnight UTC.
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        r#""quota";q=10;w=86400"#
    );
    assert_eq!(refused.headers()["ratelimit"], r#""quota";r=0;t=9000"#);
    assert!(refused.headers().get("ratelimit-limit").is_none());
    assert_eq!(refused.headers()["retry-after"], "9000");

    // A refused request does not count, and another key has its own quota.
    assert_eq!(status(&service, "key-2", &plan).await, StatusCode::OK);

    clock.set(datetime!(2026-11-23 23:59:59.999 UTC));
    let refused = send(&service, request_for("key-1", &plan)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");

    clock.advance(Duration::from_millis(1));
    assert_eq!(admitted_until_refused(&service, "key-1", &plan).await, 10);
}

#[tokio::test]
async fn offset_is_subtracted_in_the_initial_period_only() {
    let plan = plan("p", 10, QuotaPeriod::Day, 3);
    let clock = ManualClock::at(datetime!(2026-11-23 08:00 UTC));
    let service = service(QuotaLayer::new().clock(clock.clone()));
    assert_eq!(admitted_until_refused(&service, "k", &plan).await, 7);
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(admitted_until_refused(&service, "k", &plan).await, 10);
    // A key first seen later has its own initial period.
    assert_eq!(admitted_until_refused(&service, "late", &plan).await, 7);
}

#[tokio::test]
async fn a_configured_plan_start_fixes_the_initial_period_for_every_key() {
    let plan = plan("p", 10, QuotaPeriod::Month, 4);
    let clock = ManualClock::at(datetime!(2026-11-20 08:00 UTC));
    let layer = QuotaLayer::new()
        .clock(clock.clone())
        .plan_start("p", datetime!(2026-11-02 10:00 UTC));
    let service = service(layer);
    assert_eq!(admitted_until_refused(&service, "a", &plan).await, 6);
    clock.set(datetime!(2026-12-01 00:00 UTC));
    assert_eq!(admitted_until_refused(&service, "a", &plan).await, 10);
    // First seen after the plan's initial period: no offset.
    assert_eq!(admitted_until_refused(&service, "b", &plan).await, 10);
}

#[tokio::test]
async fn requests_without_a_key_or_a_quota_pass() {
    let clock = ManualClock::at(datetime!(2026-11-23 08:00 UTC));
    let layer = QuotaLayer::new().clock(clock);
    let store = layer.store().clone();
    let service = service(layer);
    for _ in 0..3 {
        let response = send(&service, Request::new(String::new())).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("ratelimit-limit").is_none());
        assert!(response.headers().get("ratelimit").is_none());
    }
    let no_quota = Arc::new(UsagePlan::new("throttle-only").unwrap());
    let mut request = Request::new(String::new());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new("k").with_usage_plan(no_quota));
    assert_eq!(send(&service, request).await.status(), StatusCode::OK);
    let mut request = Request::new(String::new());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new("k"));
    assert_eq!(send(&service, request).await.status(), StatusCode::OK);
    assert_eq!(store.tracked_keys(), 0, "nothing was counted");
}

#[tokio::test]
async fn headers_on_success_when_asked() {
    let plan = plan("p", 3, QuotaPeriod::Week, 0);
    // Thursday 2026-11-26 12:00; the week ends Sunday 2026-11-29 00:00.
    let clock = ManualClock::at(datetime!(2026-11-26 12:00 UTC));
    let quiet = service(QuotaLayer::new().clock(clock.clone()));
    let response = send(&quiet, request_for("k", &plan)).await;
    assert!(response.headers().get("ratelimit").is_none());
    assert!(response.headers().get("ratelimit-policy").is_none());

    let loud = service(
        QuotaLayer::new()
            .clock(clock.clone())
            .rate_limit_headers_on_success(true),
    );
    let response = send(&loud, request_for("k", &plan)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["ratelimit-policy"],
        r#""quota";q=3;w=604800"#
    );
    assert_eq!(response.headers()["ratelimit"], r#""quota";r=2;t=216000"#);
    assert!(response.headers().get("retry-after").is_none());

    // The older trio, on request: the same numbers, unnamed.
    let trio = service(
        QuotaLayer::new()
            .clock(clock.clone())
            .rate_limit_headers(RateLimitHeaders::Trio)
            .rate_limit_headers_on_success(true),
    );
    let response = send(&trio, request_for("k", &plan)).await;
    assert_eq!(response.headers()["ratelimit-limit"], "3");
    assert_eq!(response.headers()["ratelimit-remaining"], "2");
    assert_eq!(
        response.headers()["ratelimit-reset"],
        (2 * 86_400 + 12 * 3600).to_string()
    );
    assert!(response.headers().get("ratelimit").is_none());
    assert_eq!(admitted_until_refused(&trio, "k", &plan).await, 2);
    let refused = send(&trio, request_for("k", &plan)).await;
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(refused.headers()["retry-after"], "216000");

    // None: only Retry-After on the 429.
    let none = service(
        QuotaLayer::new()
            .clock(clock)
            .rate_limit_headers(RateLimitHeaders::None)
            .rate_limit_headers_on_success(true),
    );
    assert_eq!(admitted_until_refused(&none, "k", &plan).await, 3);
    let refused = send(&none, request_for("k", &plan)).await;
    assert_eq!(refused.headers()["retry-after"], "216000");
    for name in ["ratelimit", "ratelimit-policy", "ratelimit-remaining"] {
        assert!(refused.headers().get(name).is_none(), "{name}");
    }
}

#[tokio::test]
async fn grpc_requests_are_refused_as_resource_exhausted() {
    let plan = plan("p", 1, QuotaPeriod::Day, 0);
    let service =
        service(QuotaLayer::new().clock(ManualClock::at(datetime!(2026-11-23 23:00 UTC))));
    let grpc = || {
        let mut request = request_for("k", &plan);
        request
            .headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        request
    };
    assert_eq!(send(&service, grpc()).await.status(), StatusCode::OK);
    let refused = send(&service, grpc()).await;
    assert_eq!(refused.status(), StatusCode::OK);
    assert_eq!(refused.headers()["grpc-status"], "8");
    assert_eq!(refused.headers()["grpc-message"], "Limit%20Exceeded");
    assert_eq!(refused.headers()["retry-after"], "3600");
}

#[tokio::test]
async fn layer_clones_share_one_store() {
    let plan = plan("p", 4, QuotaPeriod::Day, 0);
    let layer = QuotaLayer::new().clock(ManualClock::at(datetime!(2026-11-23 08:00 UTC)));
    let a = service(layer.clone());
    let b = service(layer);
    assert_eq!(admitted_until_refused(&a, "k", &plan).await, 4);
    assert_eq!(status(&b, "k", &plan).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn configuration_as_data() {
    let config: QuotaConfig = serde_json::from_str(
        r#"{"week_start":"monday","retention_days":7,"rate_limit_headers_on_success":true,
            "plan_starts":{"p":"2026-11-23T00:00:00Z"}}"#,
    )
    .unwrap();
    let plan = plan("p", 5, QuotaPeriod::Week, 2);
    // Sunday 2026-11-29 is still in the week that began Monday the 23rd.
    let clock = ManualClock::at(datetime!(2026-11-29 12:00 UTC));
    let layer = QuotaLayer::from_config(&config).clock(clock);
    assert_eq!(layer.store().retention_days(), 7);
    let service = service(layer);
    let response = send(&service, request_for("k", &plan)).await;
    assert_eq!(response.headers()["ratelimit"], r#""quota";r=2;t=43200"#);

    let error = serde_json::from_str::<QuotaConfig>(r#"{"retention_dayz":7}"#).unwrap_err();
    assert!(error.to_string().contains("retention_dayz"), "{error}");
    // The path of the bad field, as the facade reports it.
    let json = &mut serde_json::Deserializer::from_str(r#"{"plan_starts":{"p":"yesterday"}}"#);
    let error = serde_path_to_error::deserialize::<_, QuotaConfig>(json).unwrap_err();
    assert_eq!(error.path().to_string(), "plan_starts.p");
    let json = &mut serde_json::Deserializer::from_str(r#"{"week_start":"Caturday"}"#);
    let error = serde_path_to_error::deserialize::<_, QuotaConfig>(json).unwrap_err();
    assert_eq!(error.path().to_string(), "week_start");
    assert!(error.to_string().contains("Caturday"), "{error}");
}

/// A store that must be awaited: the memory store behind a boxed future,
/// failing on demand.
#[derive(Clone, Debug)]
struct AsyncStore {
    memory: InMemoryQuotaStore,
    fail: bool,
    calls: Arc<AtomicUsize>,
}

#[derive(Debug, thiserror::Error)]
#[error("backend unavailable")]
struct Unavailable;

impl QuotaStore for AsyncStore {
    type Error = Unavailable;
    type Future = Pin<Box<dyn Future<Output = Result<Decision, Unavailable>> + Send>>;

    fn consume(
        &self,
        request: &QuotaRequest<'_>,
    ) -> Answer<Result<Decision, Unavailable>, Self::Future> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let decision = match self.memory.consume(request) {
            Answer::Ready(Ok(decision)) => Some(decision),
            Answer::Ready(Err(never)) => match never {},
            Answer::Pending(_) => None,
        };
        let fail = self.fail;
        Answer::Pending(Box::pin(async move {
            tokio::task::yield_now().await;
            if fail {
                Err(Unavailable)
            } else {
                decision.ok_or(Unavailable)
            }
        }))
    }

    async fn update(
        &self,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
    ) -> Result<DayUsage, Unavailable> {
        self.memory
            .update(request, update)
            .await
            .map_err(|e| match e {})
    }

    async fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<DayUsage>, Unavailable> {
        self.memory
            .usage(plan_id, key_id, from, to)
            .await
            .map_err(|e| match e {})
    }

    async fn keys(&self, plan_id: &str) -> Result<Vec<String>, Unavailable> {
        self.memory.keys(plan_id).await.map_err(|e| match e {})
    }
}

#[tokio::test]
async fn an_awaited_store_decides_as_the_memory_store_does() {
    let plan = plan("p", 3, QuotaPeriod::Day, 0);
    let calls = Arc::new(AtomicUsize::new(0));
    let store = AsyncStore {
        memory: InMemoryQuotaStore::new(),
        fail: false,
        calls: calls.clone(),
    };
    let service = service(
        QuotaLayer::with_store(store)
            .clock(ManualClock::at(datetime!(2026-11-23 23:00 UTC)))
            .rate_limit_headers_on_success(true),
    );
    let first = send(&service, request_for("k", &plan)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["ratelimit"], r#""quota";r=2;t=3600"#);
    assert_eq!(admitted_until_refused(&service, "k", &plan).await, 2);
    let refused = send(&service, request_for("k", &plan)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "3600");
    assert_eq!(refused.headers()["ratelimit"], r#""quota";r=0;t=3600"#);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // Refused after an awaited store too, with the reason in the extensions.
    assert_eq!(
        refused.extensions().get::<QuotaRefusal>(),
        Some(&QuotaRefusal::Exceeded)
    );
}

#[tokio::test]
async fn a_failing_store_serves_by_default_and_refuses_when_told() {
    let plan = plan("p", 1, QuotaPeriod::Day, 0);
    let store = AsyncStore {
        memory: InMemoryQuotaStore::new(),
        fail: true,
        calls: Arc::default(),
    };
    let open = service(QuotaLayer::with_store(store.clone()));
    for _ in 0..3 {
        assert_eq!(status(&open, "k", &plan).await, StatusCode::OK);
    }
    let closed = service(QuotaLayer::with_store(store).on_store_error(OnStoreError::Refuse));
    let refused = send(&closed, request_for("k", &plan)).await;
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        refused.extensions().get::<QuotaRefusal>(),
        Some(&QuotaRefusal::StoreFailed)
    );
    assert_eq!(
        refused.headers()["x-amzn-errortype"],
        "InternalServerErrorException"
    );
}

#[test]
fn the_service_error_stays_the_inner_one() {
    fn assert_error<S: tower::Service<Request<String>, Error = Infallible>>(_: &S) {}
    let service = tower::ServiceBuilder::new()
        .layer(QuotaLayer::new())
        .service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(http::Response::new(String::new()))
        });
    assert_error(&service);
}

/// After an UpdateUsage extension leaves more than the period's limit, the
/// headers stay consistent: `r` is capped at `q` (the client is never told
/// it has more than the plan's limit), and the extension is served in full.
#[tokio::test]
async fn after_an_extension_remaining_never_exceeds_the_limit() {
    let plan = plan("p", 10, QuotaPeriod::Day, 0);
    let clock = ManualClock::at(datetime!(2026-11-23 23:00 UTC));
    let layer = QuotaLayer::new()
        .clock(clock)
        .rate_limit_headers_on_success(true);
    let usage = layer.usage_api();
    let service = service(layer);
    let first = send(&service, request_for("k", &plan)).await;
    assert_eq!(first.headers()["ratelimit"], r#""quota";r=9;t=3600"#);
    // 9 left, extended by 5: 14 left, more than the limit of 10.
    usage
        .update_usage(&plan, "k", UsageUpdate::Extend(5))
        .await
        .unwrap();
    let second = send(&service, request_for("k", &plan)).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        second.headers()["ratelimit-policy"],
        r#""quota";q=10;w=86400"#
    );
    assert_eq!(second.headers()["ratelimit"], r#""quota";r=10;t=3600"#);
    // 13 left: the client is told 10 until fewer than 10 remain.
    let mut told = Vec::new();
    loop {
        let response = send(&service, request_for("k", &plan)).await;
        if response.status() != StatusCode::OK {
            assert_eq!(response.headers()["ratelimit"], r#""quota";r=0;t=3600"#);
            assert_eq!(response.headers()["retry-after"], "3600");
            break;
        }
        told.push(response.headers()["ratelimit"].to_str().unwrap().to_owned());
    }
    let remaining: Vec<String> = [10, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
        .iter()
        .map(|r| format!(r#""quota";r={r};t=3600"#))
        .collect();
    assert_eq!(told, remaining, "13 more served, never more than 10 told");
}
