//! The real-time endpoint with every token mode's real layer: Cognito user
//! pools and OIDC (`JwtLayer`, two issuers), Lambda (`AuthorizerLayer`) and
//! API keys (`ApiKeyLayer`), on the connection and on each `start`, with the
//! directives (groups included) deciding which subscriptions start.

mod common;

use async_graphql::{EmptyMutation, Object, Schema, Subscription};
use futures_util::{Stream, StreamExt as _};
use portcullis_api_key::{ApiKeys, NewApiKey};
use portcullis_authorizer::AuthorizerLayer;
use portcullis_graphql::directives::{aws_api_key, aws_cognito_user_pools, aws_lambda, aws_oidc};
use portcullis_graphql::{
    AppSyncAuthLayer, AppSyncDirectives, AppSyncRealtime, AuthMode, AuthPolicy,
};
use portcullis_jwt::{HmacSecret, Issuer, JwtLayer};
use serde_json::{Value, json};

const POOL_ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test";
const POOL_SECRET: &str = "pool-secret-0123456789abcdef0123456789";
const OIDC_ISSUER: &str = "https://login.partner.example";
const OIDC_SECRET: &str = "oidc-secret-0123456789abcdef0123456789";

struct Query;

#[Object]
impl Query {
    async fn ping(&self) -> bool {
        true
    }
}

struct Events;

fn one(value: &'static str) -> impl Stream<Item = &'static str> {
    futures_util::stream::iter([value]).chain(futures_util::stream::pending())
}

#[Subscription]
impl Events {
    #[graphql(directive = aws_api_key::apply())]
    async fn departures(&self) -> impl Stream<Item = &'static str> {
        one("FL-101")
    }
    #[graphql(directive = aws_oidc::apply())]
    async fn partner(&self) -> impl Stream<Item = &'static str> {
        one("partner")
    }
    #[graphql(directive = aws_lambda::apply())]
    async fn kiosk(&self) -> impl Stream<Item = &'static str> {
        one("kiosk")
    }
    #[graphql(directive = aws_cognito_user_pools::apply(Some(vec!["Crew".into()])))]
    async fn crew(&self) -> impl Stream<Item = &'static str> {
        one("crew")
    }
    /// No directive: the default mode (user pools), any group.
    async fn profile(&self) -> impl Stream<Item = &'static str> {
        one("profile")
    }
}

/// The endpoint, and the API key it accepts. The subscription type is
/// `Events`: the SDL names it, and the checks at `start` follow.
async fn realtime() -> (
    AppSyncRealtime<Schema<Query, EmptyMutation, Events>>,
    String,
) {
    let sdl = Schema::new(Query, EmptyMutation, Events).sdl();
    let policy = AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, &sdl).expect("reads");
    assert_eq!(policy.subscription_type(), Some("Events"));
    let directives = AppSyncDirectives::new(policy);
    let schema = Schema::build(Query, EmptyMutation, Events)
        .extension(directives.clone())
        .finish();
    let jwt = |issuer: &str, secret: &str| {
        JwtLayer::new(
            Issuer::new(issuer)
                .jwks(r#"{"keys":[]}"#)
                .hmac_secret(HmacSecret::new(secret))
                .audiences(["web"]),
        )
        .expect("a JWT layer")
    };
    let lambda = AuthorizerLayer::token(common::kiosk_authorizer);
    let keys = ApiKeys::new();
    let key = keys
        .create(NewApiKey::new().id("da2-test"))
        .await
        .expect("a key");
    let auth = AppSyncAuthLayer::new(
        AuthMode::AmazonCognitoUserPools,
        jwt(POOL_ISSUER, POOL_SECRET),
    )
    .additional_mode(AuthMode::OpenidConnect, jwt(OIDC_ISSUER, OIDC_SECRET))
    .additional_mode(AuthMode::AwsLambda, lambda)
    .additional_mode(
        AuthMode::ApiKey,
        keys.layer("api", "graphql").require_usage_plan(false),
    );
    (
        AppSyncRealtime::new(schema, &auth, directives),
        key.value.expose().to_owned(),
    )
}

/// Starts `field` with `header` and returns the first answer for it: its
/// `start_ack` (then checks the first event), or the refusal.
async fn subscribe(
    client: &mut common::RealtimeClient,
    id: &str,
    field: &str,
    header: &Value,
) -> Value {
    let header = header.clone();
    client.start(id, &format!("subscription {{ {field} }}"), move |_| header);
    let answer = client.receive().await;
    if answer["type"] == "start_ack" {
        let event = client.receive().await;
        assert_eq!(event["type"], "data", "{event}");
        assert!(event["payload"]["data"][field].is_string(), "{event}");
    }
    answer
}

fn refused_as_unauthorized(answer: &Value, field: &str) -> bool {
    answer["type"] == "error"
        && answer["payload"]["errors"][0]["errorType"] == "Unauthorized"
        && answer["payload"]["errors"][0]["message"]
            == format!("Not Authorized to access {field} on type Events")
}

#[tokio::test]
async fn every_mode_connects_and_subscribes_to_what_its_directives_allow() {
    let (realtime, key) = realtime().await;
    let header = |name: &str, value: &str| json!({"host": "api.example.com", name: value});
    let pool = header(
        "Authorization",
        &common::token(POOL_ISSUER, POOL_SECRET, &[]),
    );
    let crew = header(
        "Authorization",
        &format!(
            "Bearer {}",
            common::token(POOL_ISSUER, POOL_SECRET, &["Crew"])
        ),
    );
    let oidc = header(
        "Authorization",
        &common::token(OIDC_ISSUER, OIDC_SECRET, &["Crew"]),
    );
    let kiosk = header("Authorization", "kiosk-7");
    let api_key = header("x-api-key", &key);
    let fields = ["departures", "partner", "kiosk", "crew", "profile"];
    // What each mode may start.
    let allowed: [(&Value, &[&str]); 5] = [
        (&pool, &["profile"]),
        (&crew, &["crew", "profile"]),
        (&oidc, &["partner"]),
        (&kiosk, &["kiosk"]),
        (&api_key, &["departures"]),
    ];
    for (n, (connection, may)) in allowed.iter().enumerate() {
        let mut client = common::RealtimeClient::connect(realtime.clone(), connection);
        client.init().await;
        for field in fields {
            let id = format!("{n}-{field}");
            let answer = subscribe(&mut client, &id, field, connection).await;
            if may.contains(&field) {
                assert_eq!(
                    answer,
                    json!({"type": "start_ack", "id": id}),
                    "{connection} {field}"
                );
            } else {
                assert!(
                    refused_as_unauthorized(&answer, field),
                    "{connection} {field}: {answer}"
                );
            }
        }
    }

    // One connection carries subscriptions of several modes: connected with
    // the API key, a Lambda token starts `kiosk`, an OIDC token `partner`.
    let mut client = common::RealtimeClient::connect(realtime.clone(), &api_key);
    client.init().await;
    assert_eq!(
        subscribe(&mut client, "a", "kiosk", &kiosk).await["type"],
        "start_ack"
    );
    assert_eq!(
        subscribe(&mut client, "b", "partner", &oidc).await["type"],
        "start_ack"
    );
    // A start's own credentials count, not the connection's.
    let answer = subscribe(
        &mut client,
        "c",
        "kiosk",
        &header("Authorization", "kiosk-8"),
    )
    .await;
    assert_eq!(
        answer,
        json!({"type": "error", "id": "c", "payload": {"errors": [
            {"errorType": "UnauthorizedException", "message": "Permission denied"}]}})
    );

    // Refused connections: a token of an unknown issuer, a forged one, a
    // Lambda token the authorizer refuses.
    for header in [
        header(
            "Authorization",
            &common::token("https://other.example", OIDC_SECRET, &[]),
        ),
        header(
            "Authorization",
            &common::token(POOL_ISSUER, OIDC_SECRET, &[]),
        ),
        header("Authorization", "kiosk-8"),
    ] {
        let mut client = common::RealtimeClient::connect(realtime.clone(), &header);
        client.send(&json!({"type": "connection_init"}));
        let answer = client.receive().await;
        assert_eq!(answer["type"], "connection_error", "{header}");
        assert_eq!(answer["payload"]["errors"][0]["errorCode"], 401);
    }
}
