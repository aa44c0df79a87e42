//! A gRPC loyalty service behind Portcullis, in tonic.
//!
//! Partners call `loyalty.v1.Loyalty/GetBalance` on behalf of a signed-in
//! member. Every call passes three layers, added with
//! `Server::builder().layer(...)`, outermost first:
//!
//! 1. [`JwtLayer`]: the member's token, which must be in the `members` group
//!    (no or a bad token: `UNAUTHENTICATED`; no group: `PERMISSION_DENIED`);
//! 2. [`ApiKeyLayer`]: the partner's `x-api-key` (none or unknown:
//!    `PERMISSION_DENIED` "Forbidden");
//! 3. [`ThrottleLayer`]: the usage plan of the partner's key, 1 request per
//!    second with bursts of 2 (`RESOURCE_EXHAUSTED` "Too Many Requests").
//!
//! Refusals reach a gRPC client as gRPC statuses: the layers see
//! `content-type: application/grpc` and answer as tonic would.
//!
//! The tokens are signed with a demo HMAC secret so that the example runs
//! with nothing else; with Cognito, build the issuer with
//! [`Issuer::user_pool`] instead and drop [`mint_token`].

use std::error::Error;
use std::time::Duration;

use portcullis_api_key::{ApiKeyLayer, ApiKeyValue, ApiKeys, NewApiKey};
use portcullis_core::clock::SharedClock;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{ThrottleSettings, UsagePlan};
use portcullis_jwt::{Algorithm, HmacSecret, Issuer, JwtClaims, JwtLayer, Match};
use portcullis_throttle::ThrottleLayer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

/// The code generated from `proto/loyalty.proto` (by `build.rs`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("loyalty.v1");
}

use pb::loyalty_server::{Loyalty, LoyaltyServer};
use pb::{Balance, GetBalanceRequest};

/// The API's id and stage, which usage plans and throttles are scoped to.
pub const API_ID: &str = "grpc0loyal";
/// See [`API_ID`].
pub const STAGE: &str = "prod";

/// The demo partner's API key. A demo secret, published on purpose.
pub const DEMO_API_KEY: &str = "GrpcPartnerDemoKey0123456789";
/// The demo token issuer.
pub const ISSUER: &str = "https://auth.loyalty.example";
/// The demo token-signing secret. A demo secret, published on purpose.
const DEMO_SECRET: &str = "loyalty demo HMAC secret, never use it elsewhere";

/// A boxed error, for setting up.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The loyalty service: the balances of a few members, in memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoyaltyService;

const MEMBERS: &[(&str, u64, &str)] = &[
    ("C-1001", 12_400, "SILVER"),
    ("C-1002", 58_250, "GOLD"),
    ("C-1003", 2_150, "BLUE"),
];

#[tonic::async_trait]
impl Loyalty for LoyaltyService {
    async fn get_balance(
        &self,
        request: Request<GetBalanceRequest>,
    ) -> Result<Response<Balance>, Status> {
        // What the layers learned is in the request's extensions.
        let requested_by = JwtClaims::from_extensions(request.extensions())
            .as_ref()
            .and_then(JwtClaims::subject)
            .unwrap_or_default()
            .to_owned();
        let partner_key_id = request
            .extensions()
            .api_key()
            .map(|key| key.key_id().to_owned())
            .unwrap_or_default();
        let customer_id = request.into_inner().customer_id;
        let Some(&(_, points, tier)) = MEMBERS.iter().find(|(id, ..)| *id == customer_id) else {
            return Err(Status::not_found(format!(
                "no loyalty member {customer_id}"
            )));
        };
        Ok(Response::new(Balance {
            customer_id,
            points,
            tier: tier.to_owned(),
            requested_by,
            partner_key_id,
        }))
    }
}

/// The three layers in front of the service, and the handle on the keys.
#[derive(Clone, Debug)]
pub struct AccessControls {
    /// Verifies the member's token (outermost).
    pub jwt: JwtLayer,
    /// Checks the partner's API key and finds its usage plan.
    pub api_key: ApiKeyLayer,
    /// Applies the plan's throttle (innermost).
    pub throttle: ThrottleLayer,
    /// The keys and plans, changeable at run time (disable, rotate, ...).
    pub keys: ApiKeys,
}

impl AccessControls {
    /// The demo's controls: the `members` group required, one partner key
    /// ([`DEMO_API_KEY`]) on the plan `partners` (1 request per second,
    /// bursts of 2), all on `clock`.
    ///
    /// # Errors
    ///
    /// If a layer refuses its configuration (it does not for the demo's).
    pub async fn demo(clock: SharedClock) -> Result<Self, BoxError> {
        let issuer = Issuer::new(ISSUER)
            .jwks(r#"{"keys":[]}"#)
            .algorithms([Algorithm::HS256])
            .hmac_secret(HmacSecret::new(DEMO_SECRET));
        let jwt = JwtLayer::builder()
            .issuer(issuer)
            .clock(clock.clone())
            .build()?
            .require_groups(Match::Any, ["members"]);

        let keys = ApiKeys::new().with_clock(clock.clone());
        keys.put_usage_plan(
            UsagePlan::new("partners")?.with_throttle(ThrottleSettings::new(1.0, 2)?),
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

        Ok(Self {
            jwt,
            api_key: keys.layer(API_ID, STAGE),
            throttle: ThrottleLayer::new(API_ID, STAGE).clock(clock),
            keys,
        })
    }
}

/// Serves the loyalty service on `listener` behind `controls`, until the
/// listener fails.
///
/// # Errors
///
/// The transport's error, if serving stops.
pub async fn serve(
    listener: TcpListener,
    controls: AccessControls,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(controls.jwt) // UNAUTHENTICATED, or PERMISSION_DENIED without the group
        .layer(controls.api_key) // PERMISSION_DENIED "Forbidden"
        .layer(controls.throttle) // RESOURCE_EXHAUSTED "Too Many Requests"
        .add_service(LoyaltyServer::new(LoyaltyService))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}

/// A demo member token for `subject`, in `groups`, valid for `ttl` from
/// `clock`'s now, signed with the demo secret.
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
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
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
