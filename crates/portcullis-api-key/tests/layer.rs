//! The layer's behaviour at its public surface, driven with `oneshot`.

// Test code: helper functions outside `#[test]` unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use common::*;
use http::{HeaderName, Request, Response, StatusCode};
use portcullis_api_key::{
    ApiKeyLayer, ApiKeyLookupResult, ApiKeyRecord, ApiKeyRefusal, ApiKeySource, ApiKeyStore,
    ApiKeyStoreError, ApiKeyValue, ApiKeys, InMemoryApiKeyStore, KeyDigest, NewApiKey,
};
use portcullis_core::context::{RequestContextExt, UsageIdentifierKey};
use tower::{ServiceBuilder, ServiceExt};

async fn status_and_body(layer: ApiKeyLayer, request: Request<String>) -> (StatusCode, String) {
    let response = ServiceBuilder::new()
        .layer(layer)
        .service_fn(echo_context)
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    (status, body_string(response.into_body()).await)
}

fn assert_forbidden(status: StatusCode, body: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, r#"{"message":"Forbidden"}"#);
}

#[tokio::test]
async fn a_valid_key_passes_with_its_context_and_stage_plan() {
    let (keys, value) = keys_with_one_key().await;
    let (status, body) = status_and_body(keys.layer(API_ID, STAGE), with_key(value.expose())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "k1|mobile app|acme|basic");

    // The same key on the dev stage carries the dev plan.
    let (_, body) = status_and_body(keys.layer(API_ID, "dev"), with_key(value.expose())).await;
    assert_eq!(body, "k1|mobile app|acme|dev-plan");
}

#[tokio::test]
async fn a_key_in_no_usage_plan_for_the_stage_is_refused_as_api_gateway_does() {
    let (keys, value) = keys_with_one_key().await;
    // None of k1's plans covers `beta`: API Gateway answers 403 Forbidden.
    let (status, body) =
        status_and_body(keys.layer(API_ID, "beta"), with_key(value.expose())).await;
    assert_forbidden(status, &body);

    // A key created in no plan at all is refused on every stage...
    let loose = keys
        .create(NewApiKey::new().id("loose"))
        .await
        .unwrap()
        .value;
    let (status, body) = status_and_body(keys.layer(API_ID, STAGE), with_key(loose.expose())).await;
    assert_forbidden(status, &body);
    let decided = keys
        .layer(API_ID, STAGE)
        .authenticate_now(&with_key(loose.expose()))
        .expect("the in-memory store answers at once");
    assert_eq!(decided.unwrap_err(), ApiKeyRefusal::NoUsagePlan);

    // ...until the layer is told keys need no plan, as AppSync's keys.
    let plain = keys.layer(API_ID, STAGE).require_usage_plan(false);
    let (status, body) = status_and_body(plain.clone(), with_key(loose.expose())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "loose|-|-|-");
    let (status, body) = status_and_body(
        keys.layer(API_ID, "beta").require_usage_plan(false),
        with_key(value.expose()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "k1|mobile app|acme|-");
}

#[tokio::test]
async fn a_missing_key_is_refused_with_invalid_api_key() {
    let (keys, _) = keys_with_one_key().await;
    let response = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE))
        .service_fn(|_: Request<String>| async {
            panic!("the inner service must not be called");
            #[allow(unreachable_code)]
            Ok::<_, Infallible>(Response::new(String::new()))
        })
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()["x-amzn-errortype"], "ForbiddenException");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_forbidden(
        StatusCode::FORBIDDEN,
        &body_string(response.into_body()).await,
    );
}

#[tokio::test]
async fn wrong_and_malformed_keys_are_refused() {
    let (keys, value) = keys_with_one_key().await;
    let layer = keys.layer(API_ID, STAGE);
    let mut wrong = value.expose().to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    let oversized = "a".repeat(64 * 1024);
    for bad in [
        wrong.as_str(),
        "",
        "short",
        "has-a-dash-in-it-but-long-enough",
        &oversized,
        &value.expose()[..19],
    ] {
        let (status, body) = status_and_body(layer.clone(), with_key(bad)).await;
        assert_forbidden(status, &body);
    }
    // A key given twice is ambiguous: refused even when both copies are valid.
    let mut request = with_key(value.expose());
    request
        .headers_mut()
        .append("x-api-key", value.expose().parse().unwrap());
    let (status, body) = status_and_body(layer.clone(), request).await;
    assert_forbidden(status, &body);
    // The key in another header is not a key.
    let request = Request::builder()
        .header("authorization", value.expose())
        .body(String::new())
        .unwrap();
    let (status, _) = status_and_body(layer, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn disabling_and_enabling_apply_to_the_running_layer() {
    let (keys, value) = keys_with_one_key().await;
    let service = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE))
        .service_fn(echo_context);
    keys.disable("k1").await.unwrap();
    let response = service
        .clone()
        .oneshot(with_key(value.expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_forbidden(response.status(), &body_string(response.into_body()).await);

    keys.enable("k1").await.unwrap();
    let response = service
        .clone()
        .oneshot(with_key(value.expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn after_a_rotation_the_old_value_is_refused_and_the_new_one_accepted() {
    let (keys, old) = keys_with_one_key().await;
    let service = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE))
        .service_fn(echo_context);
    let new = keys.rotate("k1").await.unwrap();
    assert_ne!(new, old);

    let response = service
        .clone()
        .oneshot(with_key(old.expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = service
        .clone()
        .oneshot(with_key(new.expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_string(response.into_body()).await,
        "k1|mobile app|acme|basic"
    );

    // Rotating to a chosen value works the same way.
    let chosen = ApiKeyValue::new("ChosenValue0123456789abcdef").unwrap();
    keys.rotate_to("k1", chosen.clone()).await.unwrap();
    let response = service
        .clone()
        .oneshot(with_key(new.expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = service.oneshot(with_key(chosen.expose())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_key_is_refused() {
    let (keys, value) = keys_with_one_key().await;
    let layer = keys.layer(API_ID, STAGE);
    let (status, _) = status_and_body(layer.clone(), with_key(value.expose())).await;
    assert_eq!(status, StatusCode::OK);
    keys.delete("k1").await.unwrap();
    let (status, body) = status_and_body(layer, with_key(value.expose())).await;
    assert_forbidden(status, &body);
    assert!(keys.get("k1").await.unwrap().is_none());
    assert!(keys.delete("k1").await.is_err());
}

#[tokio::test]
async fn the_authorizer_source_reads_the_usage_identifier_key() {
    let (keys, value) = keys_with_one_key().await;
    let layer = keys.layer(API_ID, STAGE).source(ApiKeySource::Authorizer);

    // What a custom authorizer layer does: put the key it chose in the
    // request's context.
    let chosen = value.expose().to_owned();
    let service = ServiceBuilder::new()
        .map_request(move |mut request: Request<String>| {
            request
                .request_context_mut()
                .set_usage_identifier_key(UsageIdentifierKey::new(chosen.as_str()));
            request
        })
        .layer(layer.clone())
        .service_fn(echo_context);
    let response = service.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_string(response.into_body()).await,
        "k1|mobile app|acme|basic"
    );

    // With the AUTHORIZER source the header is not read.
    let (status, body) = status_and_body(layer.clone(), with_key(value.expose())).await;
    assert_forbidden(status, &body);

    // An authorizer that chose an unknown key gets the request refused.
    let service = ServiceBuilder::new()
        .map_request(|mut request: Request<String>| {
            request
                .request_context_mut()
                .set_usage_identifier_key(UsageIdentifierKey::new("NotAKeyAnybodyIssued0000"));
            request
        })
        .layer(layer)
        .service_fn(echo_context);
    let response = service.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_grpc_request_is_refused_with_a_grpc_status() {
    let (keys, value) = keys_with_one_key().await;
    let grpc = |key: Option<&str>| {
        let mut builder = Request::builder()
            .method("POST")
            .uri("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc");
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        builder.body(String::new()).unwrap()
    };
    let layer = keys.layer(API_ID, STAGE);
    let response = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(echo_context)
        .oneshot(grpc(None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "7");
    assert_eq!(response.headers()["grpc-message"], "Forbidden");

    let response = ServiceBuilder::new()
        .layer(layer)
        .service_fn(echo_context)
        .oneshot(grpc(Some(value.expose())))
        .await
        .unwrap();
    assert!(response.headers().get("grpc-status").is_none());
    assert_eq!(
        body_string(response.into_body()).await,
        "k1|mobile app|acme|basic"
    );
}

#[tokio::test]
async fn the_header_name_is_configurable() {
    let (keys, value) = keys_with_one_key().await;
    let layer = keys
        .layer(API_ID, STAGE)
        .header_name(HeaderName::from_static("x-loyalty-key"));
    let request = Request::builder()
        .header("x-loyalty-key", value.expose())
        .body(String::new())
        .unwrap();
    let (status, _) = status_and_body(layer.clone(), request).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = status_and_body(layer, with_key(value.expose())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn authenticate_now_gives_the_reason() {
    let (keys, value) = keys_with_one_key().await;
    let layer = keys.layer(API_ID, STAGE);
    let ctx = layer
        .authenticate_now(&with_key(value.expose()))
        .unwrap()
        .unwrap();
    assert_eq!(ctx.key_id(), "k1");
    assert_eq!(ctx.usage_plan().unwrap().id(), "basic");
    let reason = |r: Request<String>| layer.authenticate_now(&r).unwrap().unwrap_err();
    assert_eq!(reason(Request::new(String::new())), ApiKeyRefusal::Missing);
    assert_eq!(reason(with_key("short")), ApiKeyRefusal::Malformed);
    assert_eq!(
        reason(with_key("UnknownUnknownUnknown0")),
        ApiKeyRefusal::Unknown
    );
    keys.disable("k1").await.unwrap();
    assert_eq!(reason(with_key(value.expose())), ApiKeyRefusal::Disabled);
}

#[tokio::test]
async fn one_hundred_thousand_keys() {
    let now = time::OffsetDateTime::now_utc();
    let mut values = Vec::with_capacity(100_000);
    let records: Vec<_> = (0..100_000)
        .map(|i| {
            let value = ApiKeyValue::generate().unwrap();
            let record = ApiKeyRecord::new(format!("key-{i}"), value.digest(), now)
                .with_customer_id(format!("customer-{i}"));
            values.push(value);
            record
        })
        .collect();
    let keys = ApiKeys::with_store(InMemoryApiKeyStore::from_records(records).unwrap());
    assert_eq!(keys.store().len(), 100_000);
    // The keys are in no usage plan: this test is about the store.
    let service = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE).require_usage_plan(false))
        .service_fn(echo_context);
    for i in (0..100_000).step_by(997) {
        let response = service
            .clone()
            .oneshot(with_key(values[i].expose()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            body_string(response.into_body()).await,
            format!("key-{i}|-|customer-{i}|-")
        );
    }
    let response = service
        .clone()
        .oneshot(with_key(ApiKeyValue::generate().unwrap().expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // A run-time change is seen at once, even with 100,000 keys.
    keys.disable("key-5").await.unwrap();
    let response = service.oneshot(with_key(values[5].expose())).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn key_management_validates_its_input() {
    let (keys, _) = keys_with_one_key().await;
    assert!(keys.create(NewApiKey::new().id("k1")).await.is_err());
    assert!(
        keys.create(NewApiKey::new().usage_plan("nope"))
            .await
            .is_err()
    );
    // Two plans on the prod stage.
    keys.put_usage_plan(plan("premium", STAGE)).await.unwrap();
    let err = keys
        .create(NewApiKey::new().usage_plan("basic").usage_plan("premium"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("prod"), "{err}");
    assert!(keys.add_to_usage_plan("k1", "premium").await.is_err());
    keys.remove_from_usage_plan("k1", "basic").await.unwrap();
    keys.add_to_usage_plan("k1", "premium").await.unwrap();
    // A value another key holds cannot be reused.
    let created = keys.create(NewApiKey::new()).await.unwrap();
    let err = keys
        .create(NewApiKey::new().value(created.value.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(created.record.id()), "{err}");
    assert!(keys.disable("nope").await.is_err());
    // A generated id is 10 lower-case alphanumerics.
    let id = created.record.id();
    assert_eq!(id.len(), 10);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
}

#[tokio::test]
async fn replacing_a_plan_reaches_the_keys_in_it() {
    let (keys, value) = keys_with_one_key().await;
    let layer = keys.layer(API_ID, STAGE);
    let ctx = layer
        .authenticate_now(&with_key(value.expose()))
        .unwrap()
        .unwrap();
    assert_eq!(
        ctx.usage_plan()
            .unwrap()
            .throttle()
            .unwrap()
            .burst_limit()
            .get(),
        20
    );
    let tighter = plan("basic", STAGE)
        .with_throttle(portcullis_core::plan::ThrottleSettings::new(1.0, 2).unwrap());
    keys.put_usage_plan(tighter).await.unwrap();
    let ctx = layer
        .authenticate_now(&with_key(value.expose()))
        .unwrap()
        .unwrap();
    assert_eq!(
        ctx.usage_plan()
            .unwrap()
            .throttle()
            .unwrap()
            .burst_limit()
            .get(),
        2
    );
}

/// A store that must be awaited: it answers on the second poll, and can be
/// made to fail.
#[derive(Debug)]
struct SlowStore {
    inner: InMemoryApiKeyStore,
    fail: bool,
}

struct YieldOnce<T>(Option<T>, bool);

impl<T: Unpin> Future for YieldOnce<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.1 {
            Poll::Ready(self.0.take().expect("polled after completion"))
        } else {
            self.1 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl ApiKeyStore for SlowStore {
    type Lookup = YieldOnce<ApiKeyLookupResult>;

    fn lookup(&self, digest: &KeyDigest) -> Self::Lookup {
        let answer = if self.fail {
            Err(ApiKeyStoreError::Backend("connection refused".into()))
        } else {
            Ok(self.inner.find(digest))
        };
        YieldOnce(Some(answer), false)
    }

    fn get(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send {
        self.inner.get(id)
    }

    fn list(
        &self,
    ) -> impl Future<Output = Result<Vec<Arc<ApiKeyRecord>>, ApiKeyStoreError>> + Send {
        self.inner.list()
    }

    fn put(
        &self,
        record: ApiKeyRecord,
    ) -> impl Future<Output = Result<(), ApiKeyStoreError>> + Send {
        self.inner.put(record)
    }

    fn put_many(
        &self,
        records: Vec<ApiKeyRecord>,
    ) -> impl Future<Output = Result<(), ApiKeyStoreError>> + Send {
        self.inner.put_many(records)
    }

    fn delete(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send {
        self.inner.delete(id)
    }
}

#[tokio::test]
async fn an_async_store_is_awaited_before_the_inner_service_is_called() {
    let calls = Arc::new(AtomicUsize::new(0));
    let keys = ApiKeys::with_store(SlowStore {
        inner: InMemoryApiKeyStore::new(),
        fail: false,
    });
    let created = keys.create(NewApiKey::new().id("slow")).await.unwrap();
    let counter = calls.clone();
    let service = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE).require_usage_plan(false))
        .service_fn(move |request: Request<String>| {
            counter.fetch_add(1, Ordering::SeqCst);
            echo_context(request)
        });
    let response = service
        .clone()
        .oneshot(with_key(created.value.expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_string(response.into_body()).await, "slow|-|-|-");
    let response = service
        .clone()
        .oneshot(with_key("UnknownUnknownUnknown0"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // The reason is in the response's extensions after an awaited lookup too.
    assert_eq!(
        response.extensions().get::<ApiKeyRefusal>(),
        Some(&ApiKeyRefusal::Unknown)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // With such a store there is no synchronous answer.
    assert!(
        keys.layer(API_ID, STAGE)
            .authenticate_now(&with_key(created.value.expose()))
            .is_none()
    );
}

#[tokio::test]
async fn a_failing_store_fails_closed_with_a_500() {
    let keys = ApiKeys::with_store(SlowStore {
        inner: InMemoryApiKeyStore::new(),
        fail: true,
    });
    let created = keys.create(NewApiKey::new()).await.unwrap();
    let response = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE))
        .service_fn(echo_context)
        .oneshot(with_key(created.value.expose()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "InternalServerErrorException"
    );
    assert_eq!(
        response.extensions().get::<ApiKeyRefusal>(),
        Some(&ApiKeyRefusal::StoreFailed)
    );
}

#[tokio::test]
async fn a_refusal_leaves_its_reason_in_the_response_extensions() {
    let (keys, value) = keys_with_one_key().await;
    let service = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE))
        .service_fn(echo_context);
    let reason = |request: Request<String>| {
        let service = service.clone();
        async move {
            let response = service.oneshot(request).await.unwrap();
            response.extensions().get::<ApiKeyRefusal>().copied()
        }
    };
    assert_eq!(
        reason(Request::new(String::new())).await,
        Some(ApiKeyRefusal::Missing)
    );
    assert_eq!(
        reason(with_key("short")).await,
        Some(ApiKeyRefusal::Malformed)
    );
    assert_eq!(
        reason(with_key("UnknownUnknownUnknown0")).await,
        Some(ApiKeyRefusal::Unknown)
    );
    // An accepted key's response carries no refusal.
    assert_eq!(reason(with_key(value.expose())).await, None);
    keys.disable("k1").await.unwrap();
    assert_eq!(
        reason(with_key(value.expose())).await,
        Some(ApiKeyRefusal::Disabled)
    );
}

#[tokio::test]
async fn the_stores_pass_the_conformance_suite() {
    portcullis_api_key::conformance::run(&InMemoryApiKeyStore::new())
        .await
        .unwrap();
    portcullis_api_key::conformance::run(&SlowStore {
        inner: InMemoryApiKeyStore::new(),
        fail: false,
    })
    .await
    .unwrap();
    // A store that fails its lookups does not pass.
    let failing = SlowStore {
        inner: InMemoryApiKeyStore::new(),
        fail: true,
    };
    assert!(
        portcullis_api_key::conformance::run(&failing)
            .await
            .is_err()
    );
}
