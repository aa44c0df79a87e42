//! Keys and plans declared in configuration files; invalid ones name the bad
//! field.

// Test code: helper functions outside `#[test]` unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::StatusCode;
use portcullis_api_key::{
    ApiKeyLayer, ApiKeyLayerConfig, ApiKeySource, ApiKeyValue, ApiKeys, ApiKeysConfig,
};
use portcullis_core::clock::ManualClock;
use std::sync::Arc;
use tower::{ServiceBuilder, ServiceExt};

const VALUE: &str = "LoyaltyKey0123456789abcdefghij";

fn toml_config() -> String {
    let digest = ApiKeyValue::new("HashedKey0123456789abcdefghijk")
        .unwrap()
        .digest()
        .to_hex();
    format!(
        r#"
[[usage_plans]]
id = "basic"
name = "Basic"
throttle = {{ rate_limit = 1.0, burst_limit = 2 }}
quota = {{ limit = 10, period = "DAY" }}
api_stages = [{{ api_id = "a1b2c3d4e5", stage = "prod" }}]

[[usage_plans]]
id = "internal"
apiStages = [{{ apiId = "a1b2c3d4e5", stage = "dev" }}]

[[api_keys]]
id = "k-plain"
name = "mobile app"
customer_id = "acme"
description = "the mobile app's key"
value = "{VALUE}"
tags = {{ team = "loyalty" }}
usage_plans = ["basic", "internal"]
created_date = "2024-01-02T03:04:05Z"

[[api_keys]]
id = "k-hashed"
customerId = "globex"
enabled = false
value_sha256 = "{digest}"
usagePlans = ["basic"]
"#
    )
}

#[tokio::test]
async fn a_toml_file_declares_keys_and_plans() {
    let config: ApiKeysConfig = toml::from_str(&toml_config()).unwrap();
    config.validate().unwrap();
    let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
    let keys = ApiKeys::from_config_with_clock(config, clock).unwrap();
    assert_eq!(keys.store().len(), 2);
    assert_eq!(keys.usage_plans().len(), 2);

    let plain = keys.get("k-plain").await.unwrap().unwrap();
    assert_eq!(plain.name(), Some("mobile app"));
    assert_eq!(plain.description(), Some("the mobile app's key"));
    assert_eq!(plain.tags()["team"], "loyalty");
    assert_eq!(plain.created_date().unix_timestamp(), 1_704_164_645);
    assert_eq!(plain.last_updated_date(), plain.created_date());
    assert_eq!(
        plain.usage_plan_for(API_ID, "dev").unwrap().id(),
        "internal"
    );
    let hashed = keys.get("k-hashed").await.unwrap().unwrap();
    assert!(!hashed.enabled());
    assert_eq!(hashed.created_date().unix_timestamp(), 1_700_000_000);

    let service = ServiceBuilder::new()
        .layer(keys.layer(API_ID, STAGE))
        .service_fn(echo_context);
    let response = service.clone().oneshot(with_key(VALUE)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_string(response.into_body()).await,
        "k-plain|mobile app|acme|basic"
    );
    // The key given only by digest is accepted once enabled.
    let hashed_value = "HashedKey0123456789abcdefghijk";
    let response = service
        .clone()
        .oneshot(with_key(hashed_value))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    keys.enable("k-hashed").await.unwrap();
    let response = service.oneshot(with_key(hashed_value)).await.unwrap();
    assert_eq!(
        body_string(response.into_body()).await,
        "k-hashed|-|globex|basic"
    );
}

#[tokio::test]
async fn import_adds_to_a_running_key_set() {
    let (keys, value) = keys_with_one_key().await;
    let config: ApiKeysConfig = toml::from_str(&toml_config()).unwrap();
    keys.import(config.clone()).await.unwrap();
    assert_eq!(keys.store().len(), 3);
    let layer = keys.layer(API_ID, STAGE);
    assert!(layer.authenticate_now(&with_key(VALUE)).unwrap().is_ok());
    assert!(
        layer
            .authenticate_now(&with_key(value.expose()))
            .unwrap()
            .is_ok()
    );
    // Importing the same ids again is refused, naming the field.
    let err = keys.import(config).await.unwrap_err();
    assert_eq!(err.path, "api_keys[0].id");
}

fn json_error(json: &str) -> String {
    ApiKeysConfig::from_json(json).unwrap_err().to_string()
}

#[test]
fn invalid_configs_name_the_bad_field() {
    let d = "0".repeat(64);
    let cases = [
        (
            r#"{"api_keys":[{"id":"a"}]}"#.to_owned(),
            "api_keys[0].value: missing",
        ),
        (
            format!(r#"{{"api_keys":[{{"id":"a","value":"{VALUE}","value_sha256":"{d}"}}]}}"#),
            "api_keys[0].value: give `value` or `value_sha256`, not both",
        ),
        (
            r#"{"api_keys":[{"id":"a","value_sha256":"xyz"}]}"#.to_owned(),
            "api_keys[0].value_sha256: a SHA-256 digest is 64 hex digits",
        ),
        (
            r#"{"api_keys":[{"id":"a","value":"tooShort"}]}"#.to_owned(),
            "api_keys[0].value: an API key value has 20 to 128 characters, this one has 8",
        ),
        (
            format!(r#"{{"api_keys":[{{"id":"a","value_sha256":"{d}","usage_plans":["gold"]}}]}}"#),
            "api_keys[0].usage_plans[0]: no usage plan has id `gold`",
        ),
        (
            format!(r#"{{"api_keys":[{{"id":"a","value_sha256":"{d}","colour":"red"}}]}}"#),
            "api_keys[0].colour: unknown field `colour`",
        ),
        (
            format!(
                r#"{{"api_keys":[{{"id":"a","value_sha256":"{d}"}},{{"id":"a","value":"{VALUE}"}}]}}"#
            ),
            "api_keys[1].id: id `a` is also the id of api_keys[0]",
        ),
        (
            format!(r#"{{"api_keys":[{{"id":"","value_sha256":"{d}"}}]}}"#),
            "api_keys[0].id: an id has 1 to 128 characters",
        ),
        (
            r#"{"usage_plans":[{"id":"p","throttle":{"rate_limit":-1,"burst_limit":2}}]}"#
                .to_owned(),
            "usage_plans[0]",
        ),
        (
            r#"{"usage_plans":[{"id":"p"},{"id":"p"}]}"#.to_owned(),
            "usage_plans[1].id: usage plan id `p` is declared twice",
        ),
        (
            format!(
                r#"{{"usage_plans":[
                    {{"id":"p1","api_stages":[{{"api_id":"x","stage":"prod"}}]}},
                    {{"id":"p2","api_stages":[{{"api_id":"x","stage":"prod"}}]}}],
                  "api_keys":[{{"id":"a","value_sha256":"{d}","usage_plans":["p1","p2"]}}]}}"#
            ),
            "api_keys[0].usage_plans: usage plans `p1` and `p2` both apply to x/prod",
        ),
    ];
    for (json, expected) in cases {
        let err = json_error(&json);
        assert!(
            err.starts_with(expected),
            "expected `{expected}`, got `{err}`"
        );
    }
    // A rate_limit error comes from portcullis-core and names the field.
    let err =
        json_error(r#"{"usage_plans":[{"id":"p","throttle":{"rate_limit":-1,"burst_limit":2}}]}"#);
    assert!(err.contains("rate_limit"), "{err}");
}

#[test]
fn toml_errors_name_the_field_too() {
    let err = toml::from_str::<ApiKeysConfig>(
        r#"
[[api_keys]]
id = "a"
value = "not-alphanumeric-but-long"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("value"), "{err}");
    assert!(err.contains("alphanumeric"), "{err}");
}

#[tokio::test]
async fn the_layer_reads_its_own_settings_from_config() {
    let (keys, value) = keys_with_one_key().await;
    let config: ApiKeyLayerConfig = toml::from_str(
        r#"
api_id = "a1b2c3d4e5"
stage = "dev"
source = "HEADER"
header = "x-loyalty-key"
"#,
    )
    .unwrap();
    assert_eq!(config.source, ApiKeySource::Header);
    let layer = ApiKeyLayer::from_config(keys.store().clone(), config);
    let request = http::Request::builder()
        .header("x-loyalty-key", value.expose())
        .body(String::new())
        .unwrap();
    let ctx = layer.authenticate_now(&request).unwrap().unwrap();
    assert_eq!(ctx.usage_plan().unwrap().id(), "dev-plan");

    let err = serde_json::from_str::<ApiKeyLayerConfig>(
        r#"{"api_id":"a","stage":"b","header":"bad header"}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a valid header name"), "{err}");
    let err =
        serde_json::from_str::<ApiKeyLayerConfig>(r#"{"api_id":"a","stage":"b","source":"QUERY"}"#)
            .unwrap_err();
    assert!(err.to_string().contains("HEADER"), "{err}");
}
