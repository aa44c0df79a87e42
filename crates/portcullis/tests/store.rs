//! `[store]`: the embedded store (the default) and the memory store under the
//! gateway's layers: seeding from the file, keys and plans made at run time
//! reaching the layers, the usage admin reading live state, and usage and
//! keys surviving a restart on the same data dir.

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::api_key::ApiKeyValue;
use portcullis::config::{Config, StoreKind, StoreSettings};
use portcullis::control_plane::{ControlPlaneStore, NewApiKey, NewUsagePlan, UsagePlanRecord};
use portcullis::core::context::RequestContextExt;
use portcullis::core::context::{AuthMethod, Caller};
use portcullis::core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis::{Gateway, GatewayStore};
use serde_json::Value;
use tower::ServiceExt;

const API_KEY: &str = "StoreFacadeKey0123456789abcdef";
const RUNTIME_KEY: &str = "StoreFacadeRuntimeKey0123456789";

fn config(store: &str) -> Config {
    Config::from_toml(&format!(
        r#"
[gateway]
region = "us-east-1"
account_id = "123456789012"
api_id = "a1b2c3d4e5"
stage = "prod"

[[usage_plans]]
id = "basic"
throttle = {{ rate_limit = 1000.0, burst_limit = 1000 }}
quota = {{ limit = 5, period = "DAY" }}

[[api_keys]]
id = "k1"
value = "{API_KEY}"
enabled = true
usage_plans = ["basic"]

{store}
"#
    ))
    .expect("a valid configuration")
}

/// The file's gateway on the memory store.
async fn memory_gateway() -> Gateway {
    Gateway::builder(config(""))
        .store(StoreSettings::memory())
        .build_async()
        .await
        .expect("builds")
}

fn app(gateway: &Gateway) -> Router {
    Router::new()
        .route("/pets", get(|| async { Ok::<_, Infallible>("ok") }))
        .layer(gateway.layer())
}

async fn call(app: &Router, key: &str) -> StatusCode {
    let request = Request::get("/pets")
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("a request");
    app.clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

/// GET on the gateway's usage admin service, as an authenticated caller.
async fn admin_get(gateway: &Gateway, path: &str) -> (StatusCode, Value) {
    let mut request = Request::get(path).body(Body::empty()).expect("a request");
    request.request_context_mut().set_caller(Caller::new(
        "arn:aws:iam::123456789012:user/admin",
        AuthMethod::Iam,
    ));
    let response = gateway
        .usage_admin()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let body = response.into_body().collect().await.expect("a body");
    let json = serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null);
    (status, json)
}

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// `[[used, remaining]]` of key `k` today, through GetUsage.
async fn usage_today(gateway: &Gateway, key: &str) -> Value {
    let day = today();
    let (status, json) = admin_get(
        gateway,
        &format!("/usageplans/basic/usage?keyId={key}&startDate={day}&endDate={day}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json["items"][key].clone()
}

#[test]
fn a_file_without_store_builds_in_memory_synchronously() {
    let gateway = Gateway::builder(config("")).build().expect("builds");
    assert_eq!(gateway.store_kind(), StoreKind::Memory);
    assert!(gateway.database_path().is_none());
}

#[test]
fn build_refuses_the_embedded_store_and_names_build_async() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let explicit = format!("[store]\nkind = \"embedded\"\ndata_dir = {:?}", dir.path());
    let error = Gateway::builder(config(&explicit))
        .build()
        .expect_err("the embedded store needs build_async");
    assert_eq!(error.path(), "store.kind", "{error}");
    assert!(error.to_string().contains("build_async"), "{error}");
    let error = Gateway::builder(config(""))
        .data_dir(dir.path())
        .build()
        .expect_err("a data dir means the embedded store");
    assert_eq!(error.path(), "store.kind", "{error}");
}

#[tokio::test]
async fn the_embedded_store_is_the_default_and_needs_a_data_dir() {
    let error = Gateway::builder(config(""))
        .build_async()
        .await
        .expect_err("no data dir");
    assert_eq!(error.path(), "store.data_dir", "{error}");
    assert!(error.to_string().contains("memory"), "{error}");

    let dir = tempfile::tempdir().expect("a temp dir");
    let gateway = Gateway::builder(config(""))
        .data_dir(dir.path())
        .build_async()
        .await
        .expect("opens");
    assert_eq!(gateway.store_kind(), StoreKind::Embedded);
    let database = gateway.database_path().expect("a database").to_owned();
    assert!(database.starts_with(dir.path()));
    assert!(database.exists());
    gateway.shutdown().await.expect("shut down");
}

#[tokio::test]
async fn a_relative_data_dir_is_relative_to_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = write_config(dir.path(), "[store]\ndata_dir = \"state\"");
    let gateway = Gateway::connect(file).await.expect("opens");
    assert_eq!(
        gateway.database_path().and_then(|p| p.parent()),
        Some(dir.path().join("state").as_path())
    );
}

fn write_config(dir: &std::path::Path, store: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    let text = config_text(store);
    std::fs::write(&path, text).expect("written");
    path
}

fn config_text(store: &str) -> String {
    format!(
        r#"
[gateway]
region = "us-east-1"
account_id = "123456789012"
api_id = "a1b2c3d4e5"
stage = "prod"

[[usage_plans]]
id = "basic"
quota = {{ limit = 5, period = "DAY" }}

[[api_keys]]
id = "k1"
value = "{API_KEY}"
enabled = true
usage_plans = ["basic"]

{store}
"#
    )
}

/// Creates an enabled key with `value` in plan `basic`, on the store.
async fn create_key(store: &GatewayStore, id: &str, value: &str) {
    let key = store
        .create_api_key(NewApiKey {
            id: Some(id.to_owned()),
            enabled: true,
            value: Some(ApiKeyValue::new(value).expect("a valid key")),
            ..NewApiKey::default()
        })
        .await
        .expect("created");
    store
        .create_usage_plan_key("basic", &key.id, "API_KEY")
        .await
        .expect("added to the plan");
}

#[tokio::test]
async fn keys_and_plans_made_at_run_time_reach_the_layers_and_the_usage_admin() {
    let gateway = memory_gateway().await;
    let app = app(&gateway);
    assert_eq!(call(&app, RUNTIME_KEY).await, StatusCode::FORBIDDEN);

    create_key(gateway.store(), "k2", RUNTIME_KEY).await;
    // The key cache follows the store's change announcements.
    let started = std::time::Instant::now();
    while call(&app, RUNTIME_KEY).await != StatusCode::OK {
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The composed layer and the single layers agree.
    let single = Router::new()
        .route("/pets", get(|| async { Ok::<_, Infallible>("ok") }))
        .layer(gateway.api_key_layer());
    assert_eq!(call(&single, RUNTIME_KEY).await, StatusCode::OK);

    // A plan created on the store is in the usage admin's answer.
    let plan = UsagePlan::new("gold")
        .expect("a plan id")
        .with_name("Gold")
        .with_quota(QuotaSettings::new(100, QuotaPeriod::Month).expect("a quota"));
    let _: UsagePlanRecord = gateway
        .store()
        .create_usage_plan(NewUsagePlan {
            id: Some("gold".to_owned()),
            plan,
            tags: Default::default(),
        })
        .await
        .expect("created");
    let (status, plans) = admin_get(&gateway, "/usageplans").await;
    assert_eq!(status, StatusCode::OK, "{plans}");
    let ids: Vec<&str> = plans["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["basic", "gold"]);

    // The run-time key's usage is counted (the one call through the whole
    // stack; the API-key layer alone counts nothing) and read through the
    // admin.
    assert_eq!(
        usage_today(&gateway, "k2").await[0],
        serde_json::json!([1, 4])
    );
}

#[tokio::test]
async fn usage_and_keys_survive_a_restart_and_seeding_keeps_the_stores_changes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let build = || {
        Gateway::builder(config(""))
            .data_dir(dir.path())
            .build_async()
    };
    {
        let gateway = build().await.expect("opens");
        let app = app(&gateway);
        for _ in 0..3 {
            assert_eq!(call(&app, API_KEY).await, StatusCode::OK);
        }
        create_key(gateway.store(), "k2", RUNTIME_KEY).await;
        // An operator changes the seeded plan's quota through the store.
        let mut plan = gateway
            .store()
            .get_usage_plan("basic")
            .await
            .expect("seeded");
        plan.plan = plan
            .plan
            .clone()
            .with_quota(QuotaSettings::new(7, QuotaPeriod::Day).expect("a quota"));
        gateway
            .store()
            .update_usage_plan(plan)
            .await
            .expect("updated");
        assert_eq!(usage_today(&gateway, "k1").await[0][0], 3);
        gateway.shutdown().await.expect("blocks given back");
    }
    // Everything of the first run is dropped: the database is closed.
    let gateway = build().await.expect("reopens");
    let app = app(&gateway);
    // The day's three requests are remembered; the file says 5 a day, the
    // store 7: the store wins, so 4 more are admitted.
    assert_eq!(usage_today(&gateway, "k1").await[0][0], 3);
    let mut admitted = 0;
    while call(&app, API_KEY).await == StatusCode::OK {
        admitted += 1;
        assert!(admitted <= 10, "the quota is not enforced");
    }
    assert_eq!(admitted, 4);
    assert_eq!(
        usage_today(&gateway, "k1").await[0],
        serde_json::json!([7, 0])
    );
    // The key made at run time is still there and still works.
    assert_eq!(call(&app, RUNTIME_KEY).await, StatusCode::OK);
    gateway.shutdown().await.expect("blocks given back");
}

#[tokio::test]
async fn a_data_dir_open_in_another_gateway_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let first = Gateway::builder(config(""))
        .data_dir(dir.path())
        .build_async()
        .await
        .expect("opens");
    let error = Gateway::builder(config(""))
        .data_dir(dir.path())
        .build_async()
        .await
        .expect_err("redb locks the file");
    assert_eq!(error.path(), "store.data_dir", "{error}");
    assert!(error.to_string().contains("control-plane.redb"), "{error}");
    first.shutdown().await.expect("shut down");
}

#[tokio::test]
async fn in_memory_the_quota_counts_on_the_stores_counters_and_holds_no_block() {
    let gateway = memory_gateway().await;
    let app = app(&gateway);
    for _ in 0..5 {
        assert_eq!(call(&app, API_KEY).await, StatusCode::OK);
    }
    assert_eq!(call(&app, API_KEY).await, StatusCode::TOO_MANY_REQUESTS);
    // No block, so no entry in the quota engine, and GetUsage is exact
    // without waiting for a flush.
    assert_eq!(gateway.quota_layer().store().tracked_keys(), 0);
    assert_eq!(
        usage_today(&gateway, "k1").await[0],
        serde_json::json!([5, 0])
    );
    let GatewayStore::Local(store) = gateway.store() else {
        panic!("a memory gateway has a local store");
    };
    assert_eq!(
        store.counter_state("basic", "k1"),
        Some((5, 5, 5)),
        "(budget, reserved, used): nothing reserved beyond what was used"
    );
}
