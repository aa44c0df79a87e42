//! The management API while its Redis store is down, on a private
//! `redis-server` (stopping it disturbs no other test): every operation,
//! GetUsage and UpdateUsage included, answers 503 with API Gateway's
//! `ServiceUnavailableException` (`{"message": ...}`, `x-amzn-ErrorType`,
//! `Retry-After`), never 500, both before the circuit breaker opens (the
//! calls that find the connection refused) and after (calls not sent); and
//! answers again once Redis is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_control_plane::{ManagementApi, QuotaEngine, StoreOptions};
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{AuthMethod, Caller};
use portcullis_quota::QuotaLayer;
use portcullis_redis::{RedisConfig, RedisControlPlane};
use serde_json::Value;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    error_type: String,
    retry_after: String,
    json: Value,
}

async fn call(
    api: &ManagementApi<RedisControlPlane>,
    method: &str,
    path: &str,
    body: &str,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    request.request_context_mut().set_caller(Caller::new(
        "arn:aws:iam::123456789012:user/admin".to_owned(),
        AuthMethod::Iam,
    ));
    let response = api.clone().oneshot(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (error_type, retry_after) = (header("x-amzn-errortype"), header("retry-after"));
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        error_type,
        retry_after,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_503_service_unavailable_while_redis_is_down() {
    if support::single("management-down").is_none() {
        return;
    }
    let mut server = support::PrivateServer::start();
    let config = RedisConfig::single(server.url()).key_prefix("management-down");
    let store = RedisControlPlane::connect(&config, StoreOptions::default())
        .await
        .unwrap();
    let engine = QuotaEngine::new(store);
    let api = ManagementApi::new(QuotaLayer::with_store(engine).usage_api()).authorized_in_front();

    let plan = call(
        &api,
        "POST",
        "/usageplans",
        r#"{"name": "Basic", "quota": {"limit": 100, "period": "DAY"}}"#,
    )
    .await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.json);
    let plan_id = plan.json["id"].as_str().unwrap().to_owned();
    let key = call(
        &api,
        "POST",
        "/apikeys",
        r#"{"name": "k", "enabled": true}"#,
    )
    .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.json);
    let key_id = key.json["id"].as_str().unwrap().to_owned();
    let linked = call(
        &api,
        "POST",
        &format!("/usageplans/{plan_id}/keys"),
        &format!(r#"{{"keyId": "{key_id}", "keyType": "API_KEY"}}"#),
    )
    .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.json);
    let today = time::OffsetDateTime::now_utc().date();
    let usage_path =
        format!("/usageplans/{plan_id}/usage?startDate={today}&endDate={today}&keyId={key_id}");
    let update_path = format!("/usageplans/{plan_id}/keys/{key_id}/usage");
    let update = r#"{"patchOperations": [{"op": "replace", "path": "/remaining", "value": "50"}]}"#;
    assert_eq!(
        call(&api, "GET", &usage_path, "").await.status,
        StatusCode::OK
    );

    server.stop();
    let operations: Vec<(&str, String, String)> = vec![
        ("GET", usage_path.clone(), String::new()),
        ("PATCH", update_path.clone(), update.to_owned()),
        ("GET", "/apikeys".to_owned(), String::new()),
        ("GET", format!("/apikeys/{key_id}"), String::new()),
        (
            "POST",
            "/apikeys".to_owned(),
            r#"{"name": "new", "enabled": true}"#.to_owned(),
        ),
        (
            "PATCH",
            format!("/apikeys/{key_id}"),
            r#"{"patchOperations": [{"op": "replace", "path": "/name", "value": "n"}]}"#.to_owned(),
        ),
        ("GET", "/usageplans".to_owned(), String::new()),
        ("GET", format!("/usageplans/{plan_id}"), String::new()),
        ("GET", format!("/usageplans/{plan_id}/keys"), String::new()),
        (
            "POST",
            "/usageplans".to_owned(),
            r#"{"name": "Other"}"#.to_owned(),
        ),
        ("DELETE", format!("/apikeys/{key_id}"), String::new()),
    ];
    // Twice round: the first calls find the connection refused (the
    // breaker still closed), the later ones are refused by the open breaker
    // without being sent. Both are 503.
    for round in 0..2 {
        for (method, path, body) in &operations {
            let answer = call(&api, method, path, body).await;
            let what = format!("round {round}: {method} {path}");
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{what}: {}",
                answer.json
            );
            assert_eq!(answer.error_type, "ServiceUnavailableException", "{what}");
            assert_eq!(answer.retry_after, "1", "{what}");
            let object = answer.json.as_object().expect("a JSON object");
            assert_eq!(object.len(), 1, "{what}: only `message`: {}", answer.json);
            assert!(object["message"].is_string(), "{what}");
        }
    }

    // Back (an empty server: this one keeps nothing on disk), the
    // management API answers again by itself.
    server.restart();
    let back = Instant::now();
    loop {
        let answer = call(&api, "GET", "/usageplans", "").await;
        if answer.status == StatusCode::OK {
            break;
        }
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "the API answers again once Redis is back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "the management API answered again {:?} after Redis restarted",
        back.elapsed()
    );
}
