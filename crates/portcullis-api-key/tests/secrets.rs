//! A key's value never shows: not in `Debug`, not in tracing output, not in
//! error messages or refusal bodies.

// Test code: helper functions outside `#[test]` unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::*;
use http::Request;
use portcullis_api_key::{ApiKeyConfig, ApiKeyValue, ApiKeys, ApiKeysConfig, NewApiKey};
use tower::{ServiceBuilder, ServiceExt};

const VALUE: &str = "SecretValue0123456789SecretValue";
const ROTATED: &str = "RotatedValue0123456789RotatedVal";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn assert_secret_free(what: &str, text: &str) {
    for secret in [VALUE, ROTATED, &VALUE[..20], &ROTATED[..20]] {
        assert!(!text.contains(secret), "{what} shows a key value: {text}");
    }
}

#[test]
fn values_are_absent_from_debug_tracing_and_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();

    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let keys = ApiKeys::new();
            keys.put_usage_plan(plan("basic", STAGE)).await.unwrap();
            let value = ApiKeyValue::new(VALUE).unwrap();
            let new = NewApiKey::new()
                .id("k1")
                .customer_id("acme")
                .usage_plan("basic")
                .value(value.clone());
            assert_secret_free("NewApiKey", &format!("{new:?}"));
            let created = keys.create(new).await.unwrap();
            assert_eq!(created.value.expose(), VALUE);

            let layer = keys.layer(API_ID, STAGE);
            let service = ServiceBuilder::new()
                .layer(layer.clone())
                .service_fn(echo_context);
            for (what, shown) in [
                ("ApiKeyValue", format!("{value:?}")),
                ("CreatedApiKey", format!("{created:?}")),
                ("ApiKeyRecord", format!("{:?}", created.record)),
                ("ApiKeyRecord (pretty)", format!("{:#?}", created.record)),
                ("ApiKeys", format!("{keys:?}")),
                ("ApiKeyLayer", format!("{layer:?}")),
                ("ApiKey service", format!("{service:?}")),
            ] {
                assert_secret_free(what, &shown);
            }
            // The digest does not show either, unless asked for in hex.
            let hex = value.digest().to_hex();
            assert!(!format!("{:?}", created.record).contains(&hex));

            // Accepted, then refused in every way, with bodies checked.
            let response = service.clone().oneshot(with_key(VALUE)).await.unwrap();
            assert_eq!(response.status(), 200);
            keys.disable("k1").await.unwrap();
            let wrong = format!("{}x", &VALUE[..VALUE.len() - 1]);
            for presented in [
                VALUE,
                wrong.as_str(),
                &VALUE[..19],
                "Secret-Value-0123456789",
            ] {
                let response = service.clone().oneshot(with_key(presented)).await.unwrap();
                assert_eq!(response.status(), 403);
                let headers = format!("{:?}", response.headers());
                assert_secret_free("refusal headers", &headers);
                assert_secret_free("refusal body", &body_string(response.into_body()).await);
            }
            // A gRPC refusal's message is no more talkative.
            let mut grpc = with_key(VALUE);
            grpc.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            let response = service.clone().oneshot(grpc).await.unwrap();
            assert_secret_free("gRPC refusal", &format!("{:?}", response.headers()));

            keys.enable("k1").await.unwrap();
            keys.rotate_to("k1", ApiKeyValue::new(ROTATED).unwrap())
                .await
                .unwrap();
            let response = service.clone().oneshot(with_key(ROTATED)).await.unwrap();
            assert_eq!(response.status(), 200);

            // Errors: reusing a value, an invalid value, a bad config.
            let err = keys
                .create(NewApiKey::new().value(ApiKeyValue::new(ROTATED).unwrap()))
                .await
                .unwrap_err();
            assert_secret_free("duplicate-value error", &format!("{err} {err:?}"));
            let err = ApiKeyValue::new(format!("{VALUE}-")).unwrap_err();
            assert_secret_free("invalid-value error", &format!("{err} {err:?}"));
            let json = format!(
                r#"{{"api_keys":[{{"id":"a","value":"{VALUE}"}},{{"id":"b","value":"{VALUE}"}}]}}"#
            );
            let err = ApiKeysConfig::from_json(&json).unwrap_err();
            assert!(err.path.starts_with("api_keys[1]"), "{err}");
            assert_secret_free("config error", &format!("{err} {err:?}"));
            let json = format!(r#"{{"api_keys":[{{"id":"a","value":"{VALUE}!"}}]}}"#);
            let err = ApiKeysConfig::from_json(&json).unwrap_err();
            assert_secret_free("config error", &format!("{err} {err:?}"));
            let config: ApiKeyConfig =
                serde_json::from_str(&format!(r#"{{"id":"a","value":"{VALUE}"}}"#)).unwrap();
            assert_secret_free("ApiKeyConfig", &format!("{config:?}"));
            let request = Request::new(String::new());
            assert_secret_free("request", &format!("{request:?}"));
        });
    });

    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture worked: every kind of decision was logged ...
    for expected in [
        r#"outcome="allowed""#,
        r#"outcome="refused""#,
        r#"detail="disabled""#,
        r#"detail="unknown""#,
        r#"detail="malformed""#,
        r#"action="rotate""#,
        "key_id=k1",
    ] {
        assert!(output.contains(expected), "no `{expected}` in:\n{output}");
    }
    // ... and no value was.
    assert_secret_free("tracing output", &output);
}
