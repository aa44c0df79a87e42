//! The layer with our real mode layers in front of a code-first schema:
//! OIDC and user pools (JwtLayer, two issuers), Lambda (AuthorizerLayer),
//! API keys (ApiKeyLayer) with AppSync's expiry on a manual clock.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_api_key::{ApiKeys, NewApiKey};
use portcullis_authorizer::AuthorizerLayer;
use portcullis_core::clock::{Clock, ManualClock};
use portcullis_core::refusal::Refusal;
use portcullis_graphql::directives::{aws_api_key, aws_cognito_user_pools, aws_lambda, aws_oidc};
use portcullis_graphql::{
    AppSyncAuthLayer, AppSyncDirectives, AppSyncRefusal, AuthMode, AuthPolicy, BoxBody, NoMode,
};
use portcullis_jwt::{HmacSecret, Issuer, JwtLayer};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

#[derive(SimpleObject)]
#[graphql(directive = aws_oidc::apply(), directive = aws_lambda::apply())]
struct Gate {
    number: String,
}

struct Query;

#[Object]
impl Query {
    #[graphql(directive = aws_api_key::apply())]
    async fn public(&self) -> Option<&str> {
        Some("public")
    }
    #[graphql(directive = aws_oidc::apply())]
    async fn partner(&self) -> Option<&str> {
        Some("partner")
    }
    #[graphql(directive = aws_lambda::apply())]
    async fn kiosk(&self) -> Option<&str> {
        Some("kiosk")
    }
    #[graphql(directive = aws_cognito_user_pools::apply(Some(vec!["Crew".into()])))]
    async fn crew(&self) -> Option<&str> {
        Some("crew")
    }
    #[graphql(directive = aws_oidc::apply(), directive = aws_lambda::apply())]
    async fn gate(&self) -> Option<Gate> {
        Some(Gate {
            number: "B32".into(),
        })
    }
    /// No directive: the default mode (user pools) only.
    async fn profile(&self) -> Option<&str> {
        Some("profile")
    }
}

const POOL_ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test";
const OIDC_ISSUER: &str = "https://login.partner.example";

type Svc = tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<BoxBody>, Infallible>;

async fn app(clock: ManualClock) -> (Svc, String) {
    let sdl = Schema::new(Query, EmptyMutation, EmptySubscription).sdl();
    let policy = AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, &sdl).expect("reads");
    let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(AppSyncDirectives::new(policy))
        .finish();
    let graphql = common::graphql_endpoint(schema);

    let pool = JwtLayer::new(
        Issuer::new(POOL_ISSUER)
            .jwks(r#"{"keys":[]}"#)
            .hmac_secret(HmacSecret::new("pool-secret-0123456789abcdef0123456789"))
            .audiences(["web"]),
    )
    .expect("pool layer");
    let oidc = JwtLayer::new(
        Issuer::new(OIDC_ISSUER)
            .jwks(r#"{"keys":[]}"#)
            .hmac_secret(HmacSecret::new("oidc-secret-0123456789abcdef0123456789"))
            .audiences(["web"]),
    )
    .expect("oidc layer");
    let lambda = AuthorizerLayer::token(common::kiosk_authorizer);
    let shared: portcullis_core::clock::SharedClock = Arc::new(clock.clone());
    let keys = ApiKeys::new().with_clock(Arc::clone(&shared));
    let created = keys
        .create(NewApiKey::new().id("da2-test"))
        .await
        .expect("a key");
    let expires = clock.now() + time::Duration::days(7);
    let layer = AppSyncAuthLayer::new(AuthMode::AmazonCognitoUserPools, pool)
        .additional_mode(AuthMode::OpenidConnect, oidc)
        .additional_mode(AuthMode::AwsLambda, lambda)
        .additional_mode(
            AuthMode::ApiKey,
            // AppSync keys are in no usage plan.
            keys.layer("api", "graphql").require_usage_plan(false),
        )
        .api_key_expires("da2-test", expires)
        .clock(shared);
    let service = layer.layer(graphql);
    (
        tower::util::BoxCloneSyncService::new(service),
        created.value.expose().to_owned(),
    )
}

async fn post(service: &Svc, header: Option<(&str, &str)>, query: &str) -> (StatusCode, Value) {
    let mut request = Request::post("/graphql").header("content-type", "application/json");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let body = serde_json::to_vec(&json!({ "query": query })).expect("JSON");
    let response = service
        .clone()
        .oneshot(
            request
                .body(Full::new(Bytes::from(body)))
                .expect("a request"),
        )
        .await
        .expect("infallible");
    common::json_answer(response).await
}

const ALL: &str = "{ public partner kiosk crew gate { number } profile }";

fn denied_fields(answer: &Value) -> Vec<String> {
    let mut fields: Vec<String> = answer["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .inspect(|e| assert_eq!(e["errorType"], "Unauthorized", "{e}"))
                .map(|e| e["path"][0].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    fields
}

#[tokio::test]
async fn each_mode_reads_what_its_directives_allow() {
    let (service, key) = app(ManualClock::starting_now()).await;

    let crew = common::token(
        POOL_ISSUER,
        "pool-secret-0123456789abcdef0123456789",
        &["Crew"],
    );
    let (status, answer) = post(&service, Some(("authorization", &crew)), ALL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        denied_fields(&answer),
        ["gate", "kiosk", "partner", "public"]
    );
    assert_eq!(answer["data"]["crew"], "crew");
    assert_eq!(answer["data"]["profile"], "profile");

    let passenger = common::token(
        POOL_ISSUER,
        "pool-secret-0123456789abcdef0123456789",
        &["Passengers"],
    );
    let (_, answer) = post(&service, Some(("authorization", &passenger)), ALL).await;
    assert_eq!(
        denied_fields(&answer),
        ["crew", "gate", "kiosk", "partner", "public"]
    );

    let partner = common::token(OIDC_ISSUER, "oidc-secret-0123456789abcdef0123456789", &[]);
    let (_, answer) = post(&service, Some(("authorization", &partner)), ALL).await;
    assert_eq!(
        denied_fields(&answer),
        ["crew", "kiosk", "profile", "public"]
    );
    assert_eq!(answer["data"]["gate"], json!({"number": "B32"}));

    let (_, answer) = post(&service, Some(("authorization", "kiosk-7")), ALL).await;
    assert_eq!(
        denied_fields(&answer),
        ["crew", "partner", "profile", "public"]
    );
    assert_eq!(answer["data"]["kiosk"], "kiosk");
    assert_eq!(answer["data"]["gate"], json!({"number": "B32"}));

    let (_, answer) = post(&service, Some(("x-api-key", &key)), ALL).await;
    assert_eq!(
        denied_fields(&answer),
        ["crew", "gate", "kiosk", "partner", "profile"]
    );
    assert_eq!(answer["data"]["public"], "public");
}

#[tokio::test]
async fn refused_credentials_get_appsyncs_401() {
    let (service, _) = app(ManualClock::starting_now()).await;
    let unauthorized = json!({"errors": [{"errorType": "UnauthorizedException",
        "message": "You are not authorized to make this call."}]});
    let forged = common::token(OIDC_ISSUER, "not-the-secret-0000000000000000000000", &[]);
    let pool_forged = common::token(
        POOL_ISSUER,
        "not-the-secret-0000000000000000000000",
        &["Crew"],
    );
    for header in [
        None,
        Some(("authorization", forged.as_str())),
        Some(("authorization", pool_forged.as_str())),
        Some(("authorization", "kiosk-8")),
        Some(("x-api-key", "UnknownKey000000000000000")),
    ] {
        let (status, answer) = post(&service, header, ALL).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(answer, unauthorized, "{header:?}");
    }
}

#[tokio::test]
async fn api_keys_expire_as_appsyncs_do() {
    let clock = ManualClock::starting_now();
    let (service, key) = app(clock.clone()).await;
    let (status, answer) = post(&service, Some(("x-api-key", &key)), "{ public }").await;
    assert_eq!(
        (status, &answer["data"]["public"]),
        (StatusCode::OK, &json!("public"))
    );
    clock.advance(Duration::from_secs(7 * 86_400 - 1));
    let (status, _) = post(&service, Some(("x-api-key", &key)), "{ public }").await;
    assert_eq!(status, StatusCode::OK, "a second before expiry");
    clock.advance(Duration::from_secs(1));
    let (status, answer) = post(&service, Some(("x-api-key", &key)), "{ public }").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "at expiry");
    assert_eq!(answer["errors"][0]["errorType"], "UnauthorizedException");
}

/// A mode layer that answers at once with `status`, as a throttle would.
fn answering(
    status: StatusCode,
) -> impl Layer<portcullis_graphql::ModeTerminal, Service = Svc2> + Clone {
    tower::layer::layer_fn(move |_inner: portcullis_graphql::ModeTerminal| {
        Svc2::new(tower::service_fn(move |_: Request<BoxBody>| async move {
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"{\"message\":\"Too Many Requests\"}",
            )));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }))
    })
}

type Svc2 = tower::util::BoxCloneSyncService<Request<BoxBody>, Response<Full<Bytes>>, Infallible>;

async fn endpoint_status(layer: AppSyncAuthLayer) -> (StatusCode, Bytes) {
    let service = layer.layer(tower::service_fn(|_: Request<BoxBody>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"data\":{}}",
        ))))
    }));
    let request = Request::post("/graphql")
        .header("x-api-key", "whatever-key-000000000000")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("a request");
    let response = service.oneshot(request).await.expect("infallible");
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes(),
    )
}

#[tokio::test]
async fn refusals_other_than_credentials_pass_unchanged() {
    let pool = tower::layer::util::Identity::new();
    let layer = AppSyncAuthLayer::new(AuthMode::AmazonCognitoUserPools, pool)
        .additional_mode(AuthMode::ApiKey, answering(StatusCode::TOO_MANY_REQUESTS));
    let (status, body) = endpoint_status(layer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(&body[..], b"{\"message\":\"Too Many Requests\"}");

    let layer = AppSyncAuthLayer::new(
        AuthMode::AmazonCognitoUserPools,
        tower::layer::util::Identity::new(),
    )
    .additional_mode(AuthMode::ApiKey, answering(StatusCode::FORBIDDEN));
    let (status, body) = endpoint_status(layer).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a 403 of the mode's layer is AppSync's 401"
    );
    assert_eq!(&body[..], &portcullis_graphql::unauthorized_body()[..]);
}

#[tokio::test]
async fn a_mode_layer_that_names_no_caller_fails_closed() {
    // Identity passes every request on without an ApiKeyContext or Caller.
    let layer = AppSyncAuthLayer::new(
        AuthMode::AmazonCognitoUserPools,
        tower::layer::util::Identity::new(),
    )
    .additional_mode(AuthMode::ApiKey, tower::layer::util::Identity::new());
    let (status, _) = endpoint_status(layer).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The reason a response carries in its extensions (`None` if it was not
/// refused), with the 401's shape checked.
async fn refusal_of(service: &Svc, header: Option<(&str, &str)>) -> Option<AppSyncRefusal> {
    let mut request = Request::post("/graphql").header("content-type", "application/json");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let body = serde_json::to_vec(&json!({ "query": "{ public }" })).expect("JSON");
    let response = service
        .clone()
        .oneshot(
            request
                .body(Full::new(Bytes::from(body)))
                .expect("a request"),
        )
        .await
        .expect("infallible");
    let refusal = response.extensions().get::<AppSyncRefusal>().cloned();
    if refusal.is_some() {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=UTF-8"
        );
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "UnauthorizedException"
        );
        let body = response.into_body().collect().await.expect("a body");
        assert_eq!(body.to_bytes(), portcullis_graphql::unauthorized_body());
    }
    refusal
}

#[tokio::test]
async fn refused_responses_carry_their_reason() {
    let clock = ManualClock::starting_now();
    let (service, key) = app(clock.clone()).await;
    assert_eq!(
        refusal_of(&service, None).await,
        Some(AppSyncRefusal::NoMode(NoMode::MissingCredentials))
    );
    let forged = common::token(OIDC_ISSUER, "not-the-secret-0000000000000000000000", &[]);
    assert_eq!(
        refusal_of(&service, Some(("authorization", forged.as_str()))).await,
        Some(AppSyncRefusal::ModeRefused)
    );
    assert_eq!(refusal_of(&service, Some(("x-api-key", &key))).await, None);
    clock.advance(Duration::from_secs(7 * 86_400));
    let expired = refusal_of(&service, Some(("x-api-key", &key))).await;
    assert_eq!(
        expired,
        Some(AppSyncRefusal::ApiKeyExpired {
            key_id: "da2-test".to_owned()
        })
    );
    assert_eq!(
        expired.expect("refused").decision().detail(),
        Some("api_key_expired")
    );

    // A mode layer that passes every request on without a caller.
    let layer = AppSyncAuthLayer::new(
        AuthMode::AmazonCognitoUserPools,
        tower::layer::util::Identity::new(),
    )
    .additional_mode(AuthMode::ApiKey, tower::layer::util::Identity::new());
    let careless: Svc = tower::util::BoxCloneSyncService::new(layer.layer(tower::service_fn(
        |_: Request<BoxBody>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
        },
    )));
    assert_eq!(
        refusal_of(&careless, Some(("x-api-key", "any-key-0000000000000000"))).await,
        Some(AppSyncRefusal::NoCaller)
    );
}
