//! What both targets share: a fresh in-memory store per input, seeded with
//! one plan, one key in it and a few counted requests; the management API
//! on it, authorized in front; and the checks every answer must pass.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use portcullis_control_plane::{
    ControlPlaneStore, EngineConfig, ManagementApi, MemoryStore, NewApiKey, NewUsagePlan,
    QuotaEngine,
};
use portcullis_core::context::{AuthMethod, Caller, RequestContextExt};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_quota::store::{QuotaRequest, QuotaStore};
use tower::ServiceExt;

/// The request bodies read (small, so the fuzzer also meets the limit).
const BODY_LIMIT: usize = 16 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

async fn seeded() -> (MemoryStore, QuotaEngine<MemoryStore>) {
    let store = MemoryStore::memory();
    let plan = UsagePlan::new("p")
        .expect("a valid id")
        .with_name("plan p")
        .with_throttle(ThrottleSettings::new(10.0, 20).expect("a valid throttle"))
        .with_quota(QuotaSettings::new(100, QuotaPeriod::Day).expect("a valid quota"));
    store
        .create_usage_plan(NewUsagePlan {
            id: Some("p".to_owned()),
            plan,
            tags: BTreeMap::new(),
        })
        .await
        .expect("the plan is created");
    store
        .create_api_key(NewApiKey {
            id: Some("k".to_owned()),
            name: Some("key k".to_owned()),
            enabled: true,
            ..NewApiKey::default()
        })
        .await
        .expect("the key is created");
    store
        .create_usage_plan_key("p", "k", "API_KEY")
        .await
        .expect("the key is in the plan");
    let engine = QuotaEngine::with_config(
        store.clone(),
        EngineConfig {
            count_in_place: true,
            ..EngineConfig::default()
        },
    );
    let today = time::OffsetDateTime::now_utc().date();
    let quota = QuotaSettings::new(100, QuotaPeriod::Day).expect("a valid quota");
    let request = QuotaRequest {
        plan_id: "p",
        key_id: "k",
        quota,
        window: portcullis_quota::Calendar::new().window_of_date(QuotaPeriod::Day, today),
        day: today,
        initial_window: None,
    };
    for _ in 0..3 {
        engine
            .consume(&request)
            .resolve()
            .await
            .expect("counted in memory");
    }
    (store, engine)
}

/// What stored state a refused request must leave as it was: the keys,
/// plans and associations (with the store's change counter) and the quota
/// counter.
async fn stored(store: &MemoryStore) -> (String, Option<(u64, u64, u64)>) {
    let snapshot = store.snapshot().await.expect("a snapshot of memory");
    (format!("{snapshot:?}"), store.counter_state("p", "k"))
}

/// Sends one request and checks the answer: below 500, JSON (or empty), and
/// a refusal (4xx) changed nothing stored.
pub fn check(method: Method, uri: &str, body: &[u8]) {
    let Ok(mut request) = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::copy_from_slice(body)))
    else {
        return;
    };
    request.request_context_mut().set_caller(Caller::new(
        "arn:aws:iam::123456789012:user/fuzz",
        AuthMethod::Iam,
    ));
    runtime().block_on(async move {
        let (store, engine) = seeded().await;
        let api = ManagementApi::new(QuotaLayer::with_store(engine).usage_api())
            .authorized_in_front()
            .body_limit(BODY_LIMIT);
        let before = stored(&store).await;
        let response = api.oneshot(request).await.expect("infallible");
        let status = response.status();
        assert!(status.as_u16() < 500, "{status}");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("infallible")
            .to_bytes();
        if !body.is_empty() {
            serde_json::from_slice::<serde_json::Value>(&body).expect("every answer is JSON");
        }
        if status.is_client_error() {
            assert_eq!(
                stored(&store).await,
                before,
                "a refused request changed the store ({status})"
            );
        }
    });
}
