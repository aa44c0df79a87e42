//! `KeyCache` follows changes made on the store directly (as the management
//! API makes them): a new key in no plan is refused, the key added to a plan
//! for the stage works, and a disabled key is refused, through the API-key
//! layer.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use portcullis_api_key::{ApiKeyLayer, ApiKeyRecord, ApiKeyStore, ApiKeys, KeyDigest};
use portcullis_control_plane::{
    ApiKeyUpdate, ControlPlaneStore, EmbeddedStore, KeyCache, NewApiKey, NewUsagePlan,
};
use portcullis_core::plan::{ApiStage, UsagePlan};
use tower::{ServiceBuilder, ServiceExt};

async fn status(layer: &ApiKeyLayer<KeyCache<EmbeddedStore>>, value: &str) -> StatusCode {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let request = Request::get("/")
        .header("x-api-key", value)
        .body(())
        .unwrap();
    service.oneshot(request).await.unwrap().status()
}

async fn until(
    cache: &KeyCache<EmbeddedStore>,
    digest: &KeyDigest,
    seen: impl Fn(&ApiKeyRecord) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let matched = cache
            .lookup_now(digest, |found| found.ok().flatten().is_some_and(&seen))
            .unwrap();
        if matched {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the cache did not follow within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_changes_made_on_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EmbeddedStore::open_dir(dir.path()).unwrap();
    let keys = ApiKeys::with_store(KeyCache::load(store.clone()).await.unwrap());
    let cache: Arc<KeyCache<EmbeddedStore>> = keys.store().clone();
    let _sync = cache.spawn_sync();
    let layer = keys.layer("api", "prod");

    let key = store
        .create_api_key(NewApiKey {
            enabled: true,
            ..NewApiKey::default()
        })
        .await
        .unwrap();
    let value = key.value.unwrap().expose().to_owned();
    let created = until(&cache, &key.digest, ApiKeyRecord::enabled).await;
    // A key in no usage plan for the stage is refused, as API Gateway does.
    assert_eq!(status(&layer, &value).await, StatusCode::FORBIDDEN);

    let plan = UsagePlan::new("basic")
        .unwrap()
        .with_name("Basic")
        .with_api_stage(ApiStage {
            api_id: "api".into(),
            stage: "prod".into(),
            throttle: Default::default(),
        });
    let plan = store
        .create_usage_plan(NewUsagePlan {
            id: None,
            plan,
            tags: Default::default(),
        })
        .await
        .unwrap();
    store
        .create_usage_plan_key(plan.plan.id(), &key.id, "API_KEY")
        .await
        .unwrap();
    let added = until(&cache, &key.digest, |r| !r.usage_plans().is_empty()).await;
    assert_eq!(status(&layer, &value).await, StatusCode::OK);

    store
        .update_api_key(&key.id, ApiKeyUpdate::new().enabled(false))
        .await
        .unwrap();
    let disabled = until(&cache, &key.digest, |r| !r.enabled()).await;
    assert_eq!(status(&layer, &value).await, StatusCode::FORBIDDEN);
    println!(
        "cache followed a new key in {created:?}, its plan in {added:?}, a disabled key in {disabled:?}"
    );
}
