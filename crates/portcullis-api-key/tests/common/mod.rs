//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use portcullis_api_key::{ApiKeyValue, ApiKeys, NewApiKey};
use portcullis_core::context::{ApiKeyContext, RequestContextExt};
use portcullis_core::plan::{ApiStage, QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};

pub const API_ID: &str = "a1b2c3d4e5";
pub const STAGE: &str = "prod";

/// A plan on `API_ID/stage`.
pub fn plan(id: &str, stage: &str) -> UsagePlan {
    UsagePlan::new(id)
        .unwrap()
        .with_throttle(ThrottleSettings::new(10.0, 20).unwrap())
        .with_quota(QuotaSettings::new(1000, QuotaPeriod::Day).unwrap())
        .with_api_stage(ApiStage {
            api_id: API_ID.into(),
            stage: stage.into(),
            throttle: Default::default(),
        })
}

/// A key set with a `basic` plan on prod, a `dev` plan on dev, and one key
/// (`k1`, in both plans) whose value is returned.
pub async fn keys_with_one_key() -> (ApiKeys, ApiKeyValue) {
    let keys = ApiKeys::new();
    keys.put_usage_plan(plan("basic", STAGE)).await.unwrap();
    keys.put_usage_plan(plan("dev-plan", "dev")).await.unwrap();
    let created = keys
        .create(
            NewApiKey::new()
                .id("k1")
                .name("mobile app")
                .customer_id("acme")
                .usage_plan("basic")
                .usage_plan("dev-plan"),
        )
        .await
        .unwrap();
    (keys, created.value)
}

/// The inner service: answers 200 with the accepted key's id (or `-`) and its
/// plan's id (or `-`) as the body.
pub async fn echo_context(request: Request<String>) -> Result<Response<String>, Infallible> {
    let ctx = request.api_key();
    let body = format!(
        "{}|{}|{}|{}",
        ctx.map_or("-", ApiKeyContext::key_id),
        ctx.and_then(ApiKeyContext::name).unwrap_or("-"),
        ctx.and_then(ApiKeyContext::customer_id).unwrap_or("-"),
        ctx.and_then(|c| c.usage_plan().map(|p| p.id().to_owned()))
            .unwrap_or_else(|| "-".into()),
    );
    Ok(Response::new(body))
}

/// A request with `x-api-key: value`.
pub fn with_key(value: &str) -> Request<String> {
    Request::builder()
        .uri("/loyalty/123")
        .header("x-api-key", value)
        .body(String::new())
        .unwrap()
}

/// Collects a response body as a string.
pub async fn body_string<B>(body: B) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    let bytes = body.collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Shares a value across threads in tests.
pub fn shared<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
