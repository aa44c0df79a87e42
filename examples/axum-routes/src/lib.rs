//! Portcullis in axum: each route gets the layers it needs with
//! `route_layer`.
//!
//! | route | layers | answer |
//! |---|---|---|
//! | `GET /loyalty/{customerId}` | API key, throttle, quota | a member's points, for a partner |
//! | `GET /me` | JWT | the signed-in member, read with the [`Claims<T>`](Claims) extractor |
//! | `/admin/...` | JWT with the `admins` group | the quota's usage admin service (GetUsage, UpdateUsage, ...) |
//! | `GET /health` | none | `ok` |
//!
//! The tokens are signed with a demo HMAC secret so that the example runs
//! with nothing else; with Cognito, build the issuer with
//! [`Issuer::user_pool`] instead and drop [`mint_token`].

use std::time::Duration;

use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_api_key::{ApiKeyValue, ApiKeys, NewApiKey};
use portcullis_core::clock::SharedClock;
use portcullis_core::context::{ApiKeyContext, RequestContext};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan};
use portcullis_jwt::{Algorithm, Claims, HmacSecret, Issuer, JwtLayer, Match};
use portcullis_quota::QuotaLayer;
use portcullis_quota::admin::{StaticKeys, UsageAdmin};
use portcullis_throttle::ThrottleLayer;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceBuilder;

/// The API's id and stage, which usage plans and throttles are scoped to.
pub const API_ID: &str = "axum0loyal";
/// See [`API_ID`].
pub const STAGE: &str = "prod";
/// The demo partner's API key. A demo secret, published on purpose.
pub const DEMO_API_KEY: &str = "AxumPartnerDemoKey0123456789";
/// The demo token issuer.
pub const ISSUER: &str = "https://auth.loyalty.example";
/// The demo token-signing secret. A demo secret, published on purpose.
const DEMO_SECRET: &str = "loyalty demo HMAC secret, never use it elsewhere";

/// A boxed error, for setting up.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MEMBERS: &[(&str, u64, &str)] = &[
    ("C-1001", 12_400, "SILVER"),
    ("C-1002", 58_250, "GOLD"),
    ("C-1003", 2_150, "BLUE"),
];

/// A partner asks for a member's points. The API-key layer left the key it
/// accepted in the request's context.
async fn loyalty(
    Path(customer_id): Path<String>,
    Extension(context): Extension<RequestContext>,
) -> (StatusCode, Json<Value>) {
    let partner = context.api_key().map(ApiKeyContext::key_id);
    match MEMBERS.iter().find(|(id, ..)| *id == customer_id) {
        Some(&(id, points, tier)) => (
            StatusCode::OK,
            Json(json!({"customerId": id, "points": points, "tier": tier, "partner": partner})),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": format!("No loyalty member {customer_id}")})),
        ),
    }
}

/// The claims `/me` needs, as the application's own type. A token without
/// them gets 401 before the handler runs.
#[derive(Debug, Deserialize)]
struct Member {
    sub: String,
    email: String,
    #[serde(rename = "cognito:groups", default)]
    groups: Vec<String>,
}

async fn me(Claims(member): Claims<Member>) -> Json<Value> {
    Json(json!({"sub": member.sub, "email": member.email, "groups": member.groups}))
}

/// The application, with every layer on `clock`: one partner key
/// ([`DEMO_API_KEY`], id `partner-1`) on the plan `partners`, 1 request per
/// second, bursts of 2, 5 requests a day.
///
/// # Errors
///
/// If a layer refuses its configuration (it does not for the demo's).
pub async fn app(clock: SharedClock) -> Result<Router, BoxError> {
    // The partner's key and usage plan.
    let keys = ApiKeys::new().with_clock(clock.clone());
    keys.put_usage_plan(
        UsagePlan::new("partners")?
            .with_throttle(ThrottleSettings::new(1.0, 2)?)
            .with_quota(QuotaSettings::new(5, QuotaPeriod::Day)?),
    )
    .await?;
    keys.create(
        NewApiKey::new()
            .id("partner-1")
            .name("Travel partner")
            .value(ApiKeyValue::new(DEMO_API_KEY)?)
            .usage_plan("partners"),
    )
    .await?;
    let quota = QuotaLayer::new().clock(clock.clone());

    // Members' tokens.
    let jwt = JwtLayer::builder()
        .issuer(
            Issuer::new(ISSUER)
                .jwks(r#"{"keys":[]}"#)
                .algorithms([Algorithm::HS256])
                .hmac_secret(HmacSecret::new(DEMO_SECRET)),
        )
        .clock(clock.clone())
        .build()?;

    // The usage admin service over the quota layer's counters. It has no
    // authentication of its own: it is mounted behind the JWT layer below.
    let admin = UsageAdmin::new(
        quota.usage_api(),
        keys.usage_plans(),
        StaticKeys::new().key("partner-1", "partners"),
    );

    let partners = Router::new()
        .route("/loyalty/{customer_id}", get(loyalty))
        .route_layer(
            ServiceBuilder::new()
                .layer(keys.layer(API_ID, STAGE)) // 403 Forbidden
                .layer(ThrottleLayer::new(API_ID, STAGE).clock(clock)) // 429 Too Many Requests
                .layer(quota), // 429 Limit Exceeded
        );
    let members = Router::new().route("/me", get(me)).route_layer(jwt.clone()); // 401 Unauthorized
    let admins = Router::new()
        .nest_service("/admin", admin)
        .route_layer(jwt.require_groups(Match::Any, ["admins"])); // 401, or 403 without the group

    Ok(partners
        .merge(members)
        .merge(admins)
        .route("/health", get(|| async { "ok" }))) // no layer at all
}

/// A demo token for `subject` (email `<subject>@example.com`), in `groups`,
/// valid for `ttl` from `clock`'s now, signed with the demo secret.
///
/// # Errors
///
/// If the token cannot be encoded (it always can).
pub fn mint_token(
    subject: &str,
    groups: &[&str],
    ttl: Duration,
    clock: &SharedClock,
) -> Result<String, BoxError> {
    let now = clock.now_unix_seconds();
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "email": format!("{subject}@example.com"),
        "iat": now,
        "exp": now + ttl.as_secs(),
        "cognito:groups": groups,
    });
    let key = jsonwebtoken::EncodingKey::from_secret(DEMO_SECRET.as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &key,
    )?)
}
