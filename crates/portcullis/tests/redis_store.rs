//! `[store] kind = "redis"`: the gateway built with `build_async` on a real
//! Redis (`REDIS_URL`), the throttle and quota decided by Redis, and the
//! errors of a Redis store built synchronously or misconfigured.
//!
//! Runs when the facade is built with its `redis` feature (as in the
//! workspace, where the airline-loyalty example enables it).
#![cfg(feature = "redis")]

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::Gateway;
use portcullis::api_key::ApiKeyValue;
use portcullis::config::{Config, StoreKind, StoreSettings};
use portcullis::control_plane::{ApiKeyUpdate, ControlPlaneStore, NewApiKey};
use tower::ServiceExt;

const API_KEY: &str = "RedisFacadeKey0123456789abcdef";
const SECOND_KEY: &str = "RedisFacadeKeyTwo0123456789abcdef";

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
quota = {{ limit = 3, period = "DAY" }}

[[api_keys]]
id = "k1"
value = "{API_KEY}"
usage_plans = ["basic"]

{store}
"#
    ))
    .expect("a valid configuration")
}

#[test]
fn build_refuses_a_redis_store_and_names_build_async() {
    let error = Gateway::builder(config(
        "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"",
    ))
    .build()
    .expect_err("a Redis store needs build_async");
    assert_eq!(error.path(), "store.kind", "{error}");
    assert!(error.to_string().contains("build_async"), "{error}");
}

#[tokio::test]
async fn a_redis_store_needs_exactly_one_of_url_and_cluster_urls() {
    let error = Gateway::builder(config("[store]\nkind = \"redis\""))
        .build_async()
        .await
        .expect_err("no url");
    assert_eq!(error.path(), "store.url", "{error}");
    let both = "[store]\nkind = \"redis\"\nurl = \"redis://a:1\"\ncluster_urls = [\"redis://b:1\"]";
    let error = Gateway::builder(config(both))
        .build_async()
        .await
        .expect_err("both");
    assert_eq!(error.path(), "store.cluster_urls", "{error}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_a_fail_closed_build_without_its_password() {
    let error = Gateway::builder(config(
        "[quota]\non_store_error = \"refuse\"\n\n[store]\nkind = \"redis\"\nurl = \"redis://user:hunter2@127.0.0.1:1\"",
    ))
    .build_async()
    .await
    .expect_err("nothing listens on port 1");
    assert_eq!(error.path(), "store", "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let settings = StoreSettings::redis("redis://user:hunter2@127.0.0.1:1");
    assert!(!format!("{settings:?}").contains("hunter2"));
}

/// Fail-open (the default): a replica starts while Redis is down, is not
/// ready, and becomes ready (its keys loaded) once Redis is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_gateway_starts_while_redis_is_down_and_is_ready_when_it_is_up() {
    if std::env::var("REDIS_URL").is_err() {
        eprintln!("skipped: REDIS_URL is not set (scripts/test.sh starts Redis)");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = Gateway::builder(config(&format!(
        "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\nkey_prefix = \"lazy-{port}\""
    )))
    .build_async()
    .await
    .expect("starts while Redis is down");
    assert!(!gateway.is_ready(), "not ready while Redis is down");
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let started = std::time::Instant::now();
    let app = Router::new()
        .route("/pets", get(|| async { Ok::<_, Infallible>("ok") }))
        .layer(gateway.layer());
    // Ready, seeded from the file and the key loaded: the key is admitted.
    loop {
        let request = Request::get("/pets")
            .header("x-api-key", API_KEY)
            .body(Body::empty())
            .unwrap();
        let status = app.clone().oneshot(request).await.unwrap().status();
        if gateway.is_ready() && status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "ready and serving the file's key once Redis is up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    println!(
        "ready and serving {:?} after Redis came up",
        started.elapsed()
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test]
async fn the_gateway_counts_in_redis() {
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => panic!("REDIS_URL is not set under CI"),
        _ => {
            eprintln!(
                "skipped: REDIS_URL is not set; run `bash scripts/test.sh` to run the Redis tests"
            );
            return;
        }
    };
    let prefix = format!(
        "facade-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut store = StoreSettings::redis(url);
    store.key_prefix = Some(prefix.clone());
    // Two replicas of the gateway on one Redis share the quota of 3.
    let mut apps = Vec::new();
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let gateway = Gateway::builder(config(""))
            .store(store.clone())
            .build_async()
            .await
            .expect("connects");
        assert_eq!(gateway.store_kind(), StoreKind::Redis);
        apps.push(
            Router::new()
                .route("/pets", get(|| async { Ok::<_, Infallible>("ok") }))
                .layer(gateway.layer()),
        );
        gateways.push(gateway);
    }
    let mut statuses = Vec::new();
    for i in 0..5 {
        let request = Request::get("/pets")
            .header("x-api-key", API_KEY)
            .body(Body::empty())
            .expect("a request");
        let response = apps[i % 2]
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    // A key created on one replica's store works on the other within 1 s,
    // and a key disabled there is refused on both within 1 s.
    let store = gateways[0].store();
    let key = store
        .create_api_key(NewApiKey {
            id: Some("k2".to_owned()),
            enabled: true,
            value: Some(ApiKeyValue::new(SECOND_KEY).expect("a valid key")),
            ..NewApiKey::default()
        })
        .await
        .expect("created");
    store
        .create_usage_plan_key("basic", &key.id, "API_KEY")
        .await
        .expect("added to the plan");
    let call = |app: &Router| {
        let request = Request::get("/pets")
            .header("x-api-key", SECOND_KEY)
            .body(Body::empty())
            .expect("a request");
        app.clone().oneshot(request)
    };
    let started = std::time::Instant::now();
    while call(&apps[1]).await.expect("infallible").status() != StatusCode::OK {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the key did not reach the other replica within 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    gateways[0]
        .store()
        .update_api_key("k2", ApiKeyUpdate::new().enabled(false))
        .await
        .expect("disabled");
    let started = std::time::Instant::now();
    for app in &apps {
        while call(app).await.expect("infallible").status() != StatusCode::FORBIDDEN {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "the disabled key was still accepted after 1 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    for gateway in &gateways {
        gateway.shutdown().await.expect("blocks given back");
    }
}
