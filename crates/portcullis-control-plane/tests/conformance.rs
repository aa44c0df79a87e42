//! The conformance suite against the in-memory and the embedded store, and
//! the embedded store's restart behaviour.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_control_plane::{
    ApiKeyFilter, ControlPlaneStore, EmbeddedStore, EngineConfig, LocalStore, MemoryStore,
    NewApiKey, NewUsagePlan, PageRequest, QuotaEngine, conformance,
};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::Calendar;
use portcullis_quota::store::{QuotaRequest, QuotaStore};
use time::macros::date;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    conformance::run(|| async { MemoryStore::memory() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Arc::new(dir);
    let n = std::sync::atomic::AtomicU32::new(0);
    conformance::run(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("store-{i}.redb"));
        async move { EmbeddedStore::open(path).unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_everything_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let day = date!(2026 - 11 - 23);
    let quota = QuotaSettings::new(10, QuotaPeriod::Day).unwrap();
    let request = |key: &'static str| QuotaRequest {
        plan_id: "gold",
        key_id: key,
        quota,
        window: Calendar::new().window_of_date(QuotaPeriod::Day, day),
        day,
        initial_window: None,
    };
    let (key_id, value) = {
        let (store, path) = LocalStore::open_dir(dir.path()).unwrap();
        assert!(path.ends_with("control-plane.redb"));
        store
            .create_usage_plan(NewUsagePlan {
                id: Some("gold".into()),
                plan: UsagePlan::new("x")
                    .unwrap()
                    .with_name("Gold")
                    .with_quota(quota),
                tags: BTreeMap::from([("team".into(), "loyalty".into())]),
            })
            .await
            .unwrap();
        let key = store
            .create_api_key(NewApiKey {
                name: Some("customer one".into()),
                enabled: true,
                ..NewApiKey::default()
            })
            .await
            .unwrap();
        store
            .create_usage_plan_key("gold", &key.id, "API_KEY")
            .await
            .unwrap();
        let engine = QuotaEngine::new(store.clone());
        for _ in 0..3 {
            let decision = engine.consume(&request("k")).resolve().await.unwrap();
            assert!(decision.admitted);
        }
        engine.shutdown().await.unwrap();
        (key.id, key.value.unwrap())
    };
    // Dropped: the database is closed. Reopen it.
    let (store, _) = LocalStore::open_dir(dir.path()).unwrap();
    let key = store.get_api_key(&key_id).await.unwrap();
    assert_eq!(key.name.as_deref(), Some("customer one"));
    assert_eq!(key.value.as_ref(), Some(&value), "the value is kept");
    assert_eq!(
        store
            .find_api_key(&value.digest())
            .await
            .unwrap()
            .unwrap()
            .id,
        key_id
    );
    let plan = store.get_usage_plan("gold").await.unwrap();
    assert_eq!(plan.plan.name(), Some("Gold"));
    assert_eq!(plan.tags["team"], "loyalty");
    let keys = store
        .get_usage_plan_keys("gold", None, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(keys.items.len(), 1);
    let usage = store.get_usage("gold", "k", day, day).await.unwrap();
    assert_eq!(
        (usage[0].used, usage[0].remaining),
        (3, 7),
        "GetUsage survives a restart"
    );
    assert_eq!(
        store.counter_state("gold", "k"),
        Some((10, 3, 3)),
        "a clean shutdown gave the unspent block back"
    );
    let engine = QuotaEngine::with_config(store.clone(), EngineConfig::default());
    let mut admitted = 0;
    for _ in 0..20 {
        admitted += u64::from(
            engine
                .consume(&request("k"))
                .resolve()
                .await
                .unwrap()
                .admitted,
        );
    }
    assert_eq!(admitted, 7, "counting resumes where it stopped");
    let listed = store
        .get_api_keys(ApiKeyFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_cannot_open_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let _first = EmbeddedStore::open(&path).unwrap();
    assert!(EmbeddedStore::open(&path).is_err(), "redb locks the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_made_on_the_store_reaches_an_exhausted_key_after_release() {
    use portcullis_control_plane::CounterRef;
    use portcullis_quota::store::UsageUpdate;

    let store = MemoryStore::memory();
    let engine = QuotaEngine::new(store.clone());
    let day = date!(2026 - 11 - 23);
    let request = QuotaRequest {
        plan_id: "p",
        key_id: "k",
        quota: QuotaSettings::new(2, QuotaPeriod::Day).unwrap(),
        window: Calendar::new().window_of_date(QuotaPeriod::Day, day),
        day,
        initial_window: None,
    };
    let admit = || async { engine.consume(&request).resolve().await.unwrap().admitted };
    assert!(admit().await && admit().await);
    assert!(!admit().await, "spent");
    store
        .update_usage(CounterRef::from_request(&request), UsageUpdate::Extend(1))
        .await
        .unwrap();
    assert!(
        !admit().await,
        "this replica still holds its 'spent' marker"
    );
    engine.release("p", "k").await.unwrap();
    assert!(admit().await, "after release the extension is seen");
    assert!(!admit().await, "and only the one request it added");
}
