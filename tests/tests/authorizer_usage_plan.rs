//! A custom authorizer's `usageIdentifierKey` driving the usage plans:
//! API Gateway's AUTHORIZER API-key source (REFERENCE.md §1). The authorizer
//! runs first and names the caller's API key; the API-key layer (source
//! AUTHORIZER) finds that key's usage plan; the throttle and the quota apply
//! that plan and count usage against that key. The client never sends an
//! `x-api-key` header, and one it sends is ignored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderName, Request, StatusCode};
use http_body_util::BodyExt;
use portcullis_api_key::{ApiKeySource, ApiKeyValue, ApiKeys, NewApiKey};
use portcullis_authorizer::{
    AuthorizerError, AuthorizerEvent, AuthorizerLayer, AuthorizerResponse, IdentitySource,
};
use portcullis_core::clock::{ManualClock, SharedClock};
use portcullis_core::context::Caller;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{ApiStage, QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_iam::PolicyDocument;
use portcullis_quota::{QuotaLayer, UsageApi};
use portcullis_throttle::ThrottleLayer;
use time::macros::{date, datetime};
use tower::{ServiceBuilder, ServiceExt};

const API_ID: &str = "a1b2c3d4e5";
const STAGE: &str = "prod";
/// The key values the authorizer hands out (API keys are 20 to 128
/// alphanumeric characters).
const BASIC_KEY: &str = "basicKey0123456789abcdef";
const GOLD_KEY: &str = "goldKey0123456789abcdefgh";
/// A well-formed key that no plan knows.
const UNKNOWN_KEY: &str = "unknownKey0123456789abcd";

struct Gateway {
    app: Router,
    clock: ManualClock,
    usage: UsageApi,
    basic_plan: Arc<UsagePlan>,
    gold_plan: Arc<UsagePlan>,
    basic_key_id: String,
    gold_key_id: String,
    authorizer_calls: Arc<AtomicUsize>,
}

fn allow_all() -> PolicyDocument {
    PolicyDocument::from_json(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke",
            "Resource":"arn:aws:execute-api:*:*:*/*/GET/*"}}"#,
    )
    .expect("valid policy")
}

/// Who a user is, and which API key the authorizer names for them.
fn answer(user: &str) -> Result<AuthorizerResponse, AuthorizerError> {
    let response = AuthorizerResponse::new(user, allow_all()).with_context("user", user);
    match user {
        "ana" => Ok(response.with_usage_identifier_key(BASIC_KEY)),
        "bo" => Ok(response.with_usage_identifier_key(GOLD_KEY)),
        "cy" => Ok(response.with_usage_identifier_key(UNKNOWN_KEY)),
        // Authorized, but with no usage identifier key.
        "dee" => Ok(response),
        _ => Err(AuthorizerError::Unauthorized),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// A REQUEST authorizer whose identity source is the `x-user` header.
    Request,
    /// A TOKEN authorizer reading `Authorization: Bearer <user>`.
    Token,
}

/// Two plans: basic (1 request/s, burst 2, 5 a day) and gold (burst 10,
/// 20 a day), each with one key.
async fn gateway(kind: Kind) -> Gateway {
    let clock = ManualClock::at(datetime!(2026-11-23 09:00 UTC));
    let shared: SharedClock = Arc::new(clock.clone());
    let keys = ApiKeys::new().with_clock(shared.clone());
    let stage = || ApiStage {
        api_id: API_ID.into(),
        stage: STAGE.into(),
        throttle: Default::default(),
    };
    keys.put_usage_plan(
        UsagePlan::new("basic")
            .expect("valid id")
            .with_throttle(ThrottleSettings::new(1.0, 2).expect("valid"))
            .with_quota(QuotaSettings::new(5, QuotaPeriod::Day).expect("valid"))
            .with_api_stage(stage()),
    )
    .await
    .expect("plan stored");
    keys.put_usage_plan(
        UsagePlan::new("gold")
            .expect("valid id")
            .with_throttle(ThrottleSettings::new(10.0, 10).expect("valid"))
            .with_quota(QuotaSettings::new(20, QuotaPeriod::Day).expect("valid"))
            .with_api_stage(stage()),
    )
    .await
    .expect("plan stored");
    let basic = keys
        .create(
            NewApiKey::new()
                .name("ana")
                .value(ApiKeyValue::new(BASIC_KEY).expect("valid value"))
                .usage_plan("basic"),
        )
        .await
        .expect("key created");
    let gold = keys
        .create(
            NewApiKey::new()
                .name("bo")
                .value(ApiKeyValue::new(GOLD_KEY).expect("valid value"))
                .usage_plan("gold"),
        )
        .await
        .expect("key created");
    let quota = QuotaLayer::new().clock(shared.clone());
    let usage = quota.usage_api();

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let authorize = move |event: AuthorizerEvent| {
        counter.fetch_add(1, Ordering::SeqCst);
        let user = match &event {
            AuthorizerEvent::Token(_) => event
                .token()
                .and_then(|t| t.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned(),
            AuthorizerEvent::Request(request) => {
                request.headers.get("x-user").cloned().unwrap_or_default()
            }
        };
        async move { answer(&user) }
    };
    let authorizer = match kind {
        Kind::Request => AuthorizerLayer::request(
            authorize,
            [IdentitySource::Header(HeaderName::from_static("x-user"))],
        ),
        Kind::Token => AuthorizerLayer::token(authorize),
    }
    .clock(clock.clone());

    let app = Router::new()
        .route(
            "/loyalty/{customer_id}/get",
            get(|request: Request<Body>| async move {
                // What the handler sees: the authorizer's caller and the key
                // the API-key layer resolved.
                let caller = request.caller().map(Caller::principal);
                let key = request.api_key().map(|k| k.key_id().to_owned());
                format!("{}:{}", caller.unwrap_or("-"), key.unwrap_or_default())
            }),
        )
        .route_layer(
            ServiceBuilder::new()
                .layer(authorizer)
                .layer(keys.layer(API_ID, STAGE).source(ApiKeySource::Authorizer))
                .layer(ThrottleLayer::new(API_ID, STAGE).clock(shared))
                .layer(quota),
        );
    Gateway {
        app,
        clock,
        usage,
        basic_plan: keys.usage_plan("basic").expect("plan stored"),
        gold_plan: keys.usage_plan("gold").expect("plan stored"),
        basic_key_id: basic.record.id().to_owned(),
        gold_key_id: gold.record.id().to_owned(),
        authorizer_calls: calls,
    }
}

impl Gateway {
    /// One request as `user`, with an optional `x-api-key` header the
    /// client sends on its own.
    async fn call_with(
        &self,
        kind: &Kind,
        user: &str,
        x_api_key: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = Request::get("/loyalty/c-42/get");
        request = match kind {
            Kind::Request => request.header("x-user", user),
            Kind::Token => request.header("authorization", format!("Bearer {user}")),
        };
        if let Some(key) = x_api_key {
            request = request.header("x-api-key", key);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).expect("valid request"))
            .await
            .expect("infallible router");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Requests counted today against one key of one plan.
    async fn used_today(&self, plan: &UsagePlan, key_id: &str) -> u64 {
        let day = date!(2026 - 11 - 23);
        let usage = self
            .usage
            .get_usage(plan, Some(key_id), day, day)
            .await
            .expect("usage report");
        usage
            .items
            .get(key_id)
            .map_or(0, |days| days.first().map_or(0, |d| d[0]))
    }
}

const TOO_MANY: &str = r#"{"message":"Too Many Requests"}"#;
const LIMIT_EXCEEDED: &str = r#"{"message":"Limit Exceeded"}"#;
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;

/// The basic user: the authorizer's key puts them on the basic plan (burst
/// 2, then Too Many Requests; 5 a day, then Limit Exceeded); the gold user's
/// key puts them on the gold plan; usage is counted against each key.
async fn walkthrough(kind: Kind) {
    let gw = gateway(kind).await;
    let expected_ok = format!("ana:{}", gw.basic_key_id);

    // Burst 2 on the basic plan: the third request at the same instant is
    // throttled. The client's own x-api-key (the gold key) changes nothing.
    assert_eq!(
        gw.call_with(&kind, "ana", None).await,
        (StatusCode::OK, expected_ok.clone())
    );
    assert_eq!(
        gw.call_with(&kind, "ana", Some(GOLD_KEY)).await,
        (StatusCode::OK, expected_ok.clone())
    );
    assert_eq!(
        gw.call_with(&kind, "ana", Some(GOLD_KEY)).await,
        (StatusCode::TOO_MANY_REQUESTS, TOO_MANY.to_owned())
    );
    // The throttled request consumed no quota; all usage is on ana's key.
    assert_eq!(gw.used_today(&gw.basic_plan, &gw.basic_key_id).await, 2);
    assert_eq!(gw.used_today(&gw.gold_plan, &gw.gold_key_id).await, 0);

    // One a second: three more reach the day's quota of 5.
    for _ in 0..3 {
        gw.clock.advance(Duration::from_secs(1));
        assert_eq!(
            gw.call_with(&kind, "ana", None).await,
            (StatusCode::OK, expected_ok.clone())
        );
    }
    assert_eq!(gw.used_today(&gw.basic_plan, &gw.basic_key_id).await, 5);
    // The 6th of the day: Limit Exceeded, and not counted.
    gw.clock.advance(Duration::from_secs(1));
    assert_eq!(
        gw.call_with(&kind, "ana", None).await,
        (StatusCode::TOO_MANY_REQUESTS, LIMIT_EXCEEDED.to_owned())
    );
    assert_eq!(gw.used_today(&gw.basic_plan, &gw.basic_key_id).await, 5);

    // The gold user, at the same instant, is on the gold plan: a burst of 10
    // passes where basic stopped at 2, and the 11th is throttled.
    let gold_ok = format!("bo:{}", gw.gold_key_id);
    for i in 0..10 {
        assert_eq!(
            gw.call_with(&kind, "bo", Some(BASIC_KEY)).await,
            (StatusCode::OK, gold_ok.clone()),
            "gold request {i}"
        );
    }
    assert_eq!(
        gw.call_with(&kind, "bo", None).await,
        (StatusCode::TOO_MANY_REQUESTS, TOO_MANY.to_owned())
    );
    assert_eq!(gw.used_today(&gw.gold_plan, &gw.gold_key_id).await, 10);
    // Ten more over time: 20 a day, then Limit Exceeded.
    for _ in 0..10 {
        gw.clock.advance(Duration::from_secs(1));
        assert_eq!(gw.call_with(&kind, "bo", None).await.0, StatusCode::OK);
    }
    gw.clock.advance(Duration::from_secs(1));
    assert_eq!(
        gw.call_with(&kind, "bo", None).await,
        (StatusCode::TOO_MANY_REQUESTS, LIMIT_EXCEEDED.to_owned())
    );
    assert_eq!(gw.used_today(&gw.gold_plan, &gw.gold_key_id).await, 20);
    // ana's usage is untouched by bo's.
    assert_eq!(gw.used_today(&gw.basic_plan, &gw.basic_key_id).await, 5);

    // The answers were cached (TTL 300 s): one authorizer call per user.
    assert_eq!(gw.authorizer_calls.load(Ordering::SeqCst), 2);

    // After midnight UTC both quotas start again (and the cached answers
    // have expired, so the authorizer is asked again).
    gw.clock.set(datetime!(2026-11-24 00:00 UTC));
    assert_eq!(
        gw.call_with(&kind, "ana", None).await,
        (StatusCode::OK, expected_ok)
    );
    assert_eq!(gw.authorizer_calls.load(Ordering::SeqCst), 3);
}

async fn refusals(kind: Kind) {
    let gw = gateway(kind).await;
    // A key no plan knows: the API-key layer's 403, even with a valid
    // x-api-key header from the client.
    assert_eq!(
        gw.call_with(&kind, "cy", Some(GOLD_KEY)).await,
        (StatusCode::FORBIDDEN, FORBIDDEN.to_owned())
    );
    // Authorized without a usage identifier key: 403, whatever the client
    // sends in x-api-key.
    assert_eq!(
        gw.call_with(&kind, "dee", Some(BASIC_KEY)).await,
        (StatusCode::FORBIDDEN, FORBIDDEN.to_owned())
    );
    // The authorizer says Unauthorized: its 401, before any key is read.
    assert_eq!(
        gw.call_with(&kind, "mallory", Some(BASIC_KEY)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // None of these counted against any key.
    assert_eq!(gw.used_today(&gw.basic_plan, &gw.basic_key_id).await, 0);
    assert_eq!(gw.used_today(&gw.gold_plan, &gw.gold_key_id).await, 0);
}

#[tokio::test]
async fn request_authorizer_key_drives_the_usage_plans() {
    walkthrough(Kind::Request).await;
}

#[tokio::test]
async fn token_authorizer_key_drives_the_usage_plans() {
    walkthrough(Kind::Token).await;
}

#[tokio::test]
async fn request_authorizer_without_a_known_key_is_refused() {
    refusals(Kind::Request).await;
}

#[tokio::test]
async fn token_authorizer_without_a_known_key_is_refused() {
    refusals(Kind::Token).await;
}
