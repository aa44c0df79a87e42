//! Per-field IAM and the real-time protocol with the real SigV4 layer:
//! requests signed by the `aws-sigv4` crate (AWS's own signer), IAM policies
//! that allow some fields and not others, subscriptions whose connection and
//! `start` messages are signed as AppSync's clients sign them, and the
//! keep-alive on tokio's paused clock.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Object, Schema, SimpleObject, Subscription};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{Request, StatusCode};
use http_body_util::Full;
use portcullis_graphql::directives::{aws_api_key, aws_iam};
use portcullis_graphql::{
    AppSyncAuthLayer, AppSyncDirectives, AppSyncRealtime, AuthMode, AuthPolicy, FieldIam,
    GraphqlApiArn,
};
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_sigv4::{Credential, SigV4Layer, StaticCredentialProvider};
use portcullis_test_support::sigv4::{Signing, sign_request};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

const HOST: &str = "api.example.com";
const REGION: &str = "us-east-1";
const OPS_KEY: &str = "AKIAOPSOPSOPSOPS0001";
const OPS_SECRET: &str = "opsSecretKey00000000000000000000000000001";
const PARTNER_KEY: &str = "AKIAPARTNERPARTNER01";
const PARTNER_SECRET: &str = "partnerSecretKey000000000000000000000001";

#[derive(SimpleObject)]
struct Gate {
    number: String,
}

struct Query;

#[Object(directive = aws_iam::apply())]
impl Query {
    async fn flight(&self) -> Option<&str> {
        Some("FL-101")
    }
    async fn crew(&self) -> Option<Vec<&str>> {
        Some(vec!["Ada"])
    }
    /// Nested fields are the directives' to decide, not IAM's.
    async fn gate(&self) -> Option<Gate> {
        Some(Gate {
            number: "B32".into(),
        })
    }
}

struct Mutation;

#[Object(directive = aws_iam::apply())]
impl Mutation {
    async fn board(&self) -> Option<bool> {
        Some(true)
    }
}

struct Subscription;

#[Subscription]
impl Subscription {
    #[graphql(directive = aws_iam::apply(), directive = aws_api_key::apply())]
    async fn departures(&self) -> impl Stream<Item = i32> {
        futures_util::stream::iter([1, 2, 3]).chain(futures_util::stream::pending())
    }
    #[graphql(directive = aws_iam::apply())]
    async fn arrivals(&self) -> impl Stream<Item = i32> {
        futures_util::stream::iter([9])
    }
}

type AppSchema = Schema<Query, Mutation, Subscription>;

fn policy(json: &str) -> Vec<Arc<PolicyDocument>> {
    vec![Arc::new(PolicyDocument::from_json(json).expect("a policy"))]
}

/// The ops user may do anything on the API; the partner may read `flight`
/// and subscribe to `departures` only, and is explicitly denied mutations.
fn directives() -> AppSyncDirectives {
    let sdl = AppSchema::build(Query, Mutation, Subscription)
        .finish()
        .sdl();
    let rules = AuthPolicy::from_sdl(AuthMode::AwsIam, &sdl).expect("reads the SDL");
    let policies = HashMap::from([
        (
            "arn:aws:iam::123456789012:user/ops".to_owned(),
            policy(
                r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "appsync:GraphQL",
                    "Resource": "arn:aws:appsync:us-east-1:123456789012:apis/airline/*"}}"#,
            ),
        ),
        (
            "arn:aws:iam::123456789012:user/partner".to_owned(),
            policy(
                r#"{"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "appsync:GraphQL", "Resource": [
                        "arn:aws:appsync:us-east-1:123456789012:apis/airline/types/Query/fields/flight",
                        "arn:aws:appsync:us-east-1:123456789012:apis/airline/types/Query/fields/gate",
                        "arn:aws:appsync:us-east-1:123456789012:apis/airline/types/Subscription/fields/departures"]},
                    {"Effect": "Allow", "Action": "appsync:*", "Resource": "arn:aws:appsync:us-east-1:123456789012:apis/airline/types/Mutation/*"},
                    {"Effect": "Deny", "Action": "appsync:GraphQL", "Resource": "arn:aws:appsync:*:*:apis/*/types/Mutation/*"}]}"#,
            ),
        ),
    ]);
    let api = GraphqlApiArn::new(REGION, "123456789012", "airline").expect("an ARN");
    AppSyncDirectives::new(rules).iam(FieldIam::new(api, policies))
}

fn auth_layer() -> AppSyncAuthLayer {
    let provider = StaticCredentialProvider::new()
        .with(Credential::new(
            OPS_KEY,
            OPS_SECRET,
            "arn:aws:iam::123456789012:user/ops",
        ))
        .with(Credential::new(
            PARTNER_KEY,
            PARTNER_SECRET,
            "arn:aws:iam::123456789012:user/partner",
        ));
    let arn = ExecuteApiArn::new(REGION, "123456789012", "airline", "graphql").expect("an ARN");
    let sigv4 = SigV4Layer::new(arn, provider)
        .service("appsync")
        .authentication_only();
    let keys = portcullis_api_key::ApiKeys::new();
    AppSyncAuthLayer::new(AuthMode::AwsIam, sigv4).additional_mode(
        AuthMode::ApiKey,
        keys.layer("api", "graphql").require_usage_plan(false),
    )
}

/// The headers AWS's signer adds to `POST https://HOST{path}` with `body`,
/// plus the ones it signed, as a JSON object (what AppSync's clients send).
fn signed_headers(
    key: &str,
    secret: &str,
    path: &str,
    body: &str,
) -> serde_json::Map<String, Value> {
    let mut request = Request::post(format!("https://{HOST}{path}"))
        .header("accept", "application/json, text/javascript")
        .header("content-encoding", "amz-1.0")
        .header("content-type", "application/json; charset=UTF-8")
        .header("host", HOST)
        .body(())
        .expect("a valid request");
    let signing = Signing::now()
        .credentials(key, secret, None)
        .scope(REGION, "appsync");
    sign_request(&mut request, body.as_bytes(), &signing);
    request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().expect("ASCII");
            (name.as_str().to_owned(), json!(value))
        })
        .collect()
}

async fn post(key: &str, secret: &str, query: &str) -> (StatusCode, Value) {
    let schema = AppSchema::build(Query, Mutation, Subscription)
        .extension(directives())
        .finish();
    let endpoint = common::graphql_endpoint(schema);
    let service = auth_layer().layer(endpoint);
    let body = json!({ "query": query }).to_string();
    let mut request = Request::post(format!("https://{HOST}/graphql"));
    for (name, value) in signed_headers(key, secret, "/graphql", &body) {
        request = request.header(name, value.as_str().expect("a string"));
    }
    let response = service
        .oneshot(
            request
                .body(Full::new(Bytes::from(body)))
                .expect("a request"),
        )
        .await
        .expect("infallible");
    common::json_answer(response).await
}

fn denied(errors: &Value, field: &str, type_name: &str) -> bool {
    errors.as_array().is_some_and(|errors| {
        errors.iter().any(|e| {
            e["errorType"] == "Unauthorized"
                && e["message"] == format!("Not Authorized to access {field} on type {type_name}")
                && e["path"] == json!([field])
        })
    })
}

#[tokio::test]
async fn iam_policies_decide_each_top_level_field() {
    let (status, ops) = post(OPS_KEY, OPS_SECRET, "{ flight crew gate { number } }").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ops,
        json!({"data": {"flight": "FL-101", "crew": ["Ada"], "gate": {"number": "B32"}}})
    );

    let (status, partner) = post(
        PARTNER_KEY,
        PARTNER_SECRET,
        "{ flight crew gate { number } }",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        partner["data"],
        json!({"flight": "FL-101", "crew": null, "gate": {"number": "B32"}}),
        "{partner}"
    );
    assert!(denied(&partner["errors"], "crew", "Query"), "{partner}");
    assert_eq!(partner["errors"].as_array().map(Vec::len), Some(1));

    // An explicit Deny beats the Allow on `appsync:*`.
    let (_, partner) = post(PARTNER_KEY, PARTNER_SECRET, "mutation { board }").await;
    assert_eq!(partner["data"], json!({"board": null}), "{partner}");
    assert!(denied(&partner["errors"], "board", "Mutation"), "{partner}");
    let (_, ops) = post(OPS_KEY, OPS_SECRET, "mutation { board }").await;
    assert_eq!(ops, json!({"data": {"board": true}}));

    // A bad signature never reaches the policies: AppSync's 401.
    let (status, refused) = post(OPS_KEY, PARTNER_SECRET, "{ flight }").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["errors"][0]["errorType"], "UnauthorizedException");
}

type Client = common::RealtimeClient;

/// A client of the real-time endpoint, connected with `header`.
fn connect(header: &Value) -> Client {
    let schema = AppSchema::build(Query, Mutation, Subscription)
        .extension(directives())
        .finish();
    let realtime = AppSyncRealtime::new(schema, &auth_layer(), directives())
        .keep_alive(Duration::from_secs(60))
        .refusal_wait(Duration::from_millis(200));
    Client::connect(realtime, header)
}

/// Connected with the ops user's signature, and acknowledged.
async fn connected_as_ops() -> Client {
    let header = signed_headers(OPS_KEY, OPS_SECRET, "/graphql/connect", "{}");
    let mut client = connect(&Value::Object(header));
    client.init().await;
    client
}

/// What a client hears when subscription `id` to `departures` starts.
fn departures_started(id: &str) -> Vec<Value> {
    let mut answers = vec![json!({"type": "start_ack", "id": id})];
    answers.extend(
        (1..=3).map(|n| json!({"type": "data", "id": id, "payload": {"data": {"departures": n}}})),
    );
    answers
}

/// Starts `id`, signed by `sign_as` (or with no credentials).
fn start(client: &Client, id: &str, query: &str, sign_as: Option<(&str, &str)>) {
    client.start(id, query, |data| match sign_as {
        Some((key, secret)) => Value::Object(signed_headers(key, secret, "/graphql", data)),
        None => json!({"host": HOST}),
    });
}

#[tokio::test]
async fn subscriptions_are_authorized_on_connect_and_on_every_start() {
    let mut client = connected_as_ops().await;

    // The partner's policies allow `departures`, not `arrivals`.
    start(
        &client,
        "1",
        "subscription { departures }",
        Some((PARTNER_KEY, PARTNER_SECRET)),
    );
    client.expect(&departures_started("1")).await;
    start(
        &client,
        "2",
        "subscription { arrivals }",
        Some((PARTNER_KEY, PARTNER_SECRET)),
    );
    let refused = client.receive().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "2");
    assert!(
        denied(&refused["payload"]["errors"], "arrivals", "Subscription"),
        "{refused}"
    );

    // The ops user may: the stream ends by itself, so `complete` follows.
    start(
        &client,
        "3",
        "subscription { arrivals }",
        Some((OPS_KEY, OPS_SECRET)),
    );
    client
        .expect(&[
            json!({"type": "start_ack", "id": "3"}),
            json!({"type": "data", "id": "3", "payload": {"data": {"arrivals": 9}}}),
            json!({"type": "complete", "id": "3"}),
        ])
        .await;

    // A start with no credentials, and one with a bad signature.
    start(&client, "4", "subscription { departures }", None);
    assert_eq!(
        client.receive().await,
        json!({"type": "error", "id": "4", "payload": {"errors": [
            {"errorType": "UnauthorizedException", "message": "Permission denied"}]}})
    );
    start(
        &client,
        "5",
        "subscription { departures }",
        Some((OPS_KEY, PARTNER_SECRET)),
    );
    assert_eq!(
        client.receive().await["payload"]["errors"][0]["errorType"],
        "UnauthorizedException"
    );

    // Queries, and queries that do not validate.
    start(&client, "6", "{ flight }", Some((OPS_KEY, OPS_SECRET)));
    assert_eq!(
        client.receive().await["payload"]["errors"][0]["message"],
        "Query not supported through the realtime channel"
    );
    start(
        &client,
        "7",
        "subscription { nothing }",
        Some((OPS_KEY, OPS_SECRET)),
    );
    let invalid = client.receive().await;
    assert_eq!(invalid["type"], "error", "{invalid}");
    assert!(
        invalid["payload"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing")),
        "{invalid}"
    );

    // Stop: complete. The id may be used again at once (sent before the
    // server handles the stop): the old stream's end does not complete the
    // new subscription.
    client.send(&json!({"type": "stop", "id": "1"}));
    start(
        &client,
        "1",
        "subscription { departures }",
        Some((OPS_KEY, OPS_SECRET)),
    );
    assert_eq!(
        client.receive().await,
        json!({"type": "complete", "id": "1"})
    );
    client.expect(&departures_started("1")).await;
    client.send(&json!({"type": "stop", "id": "1"}));
    assert_eq!(
        client.receive().await,
        json!({"type": "complete", "id": "1"})
    );

    // The client leaves: the server returns.
    drop(client.to_server);
    tokio::time::timeout(Duration::from_secs(10), client.server)
        .await
        .expect("the server ends when the client leaves")
        .expect("no panic");
}

#[tokio::test]
async fn a_bad_connection_gets_appsyncs_connection_error() {
    for header in [
        json!({"host": HOST}),
        Value::Object(signed_headers(
            OPS_KEY,
            PARTNER_SECRET,
            "/graphql/connect",
            "{}",
        )),
        // Signed for the start path, not the connection's.
        Value::Object(signed_headers(OPS_KEY, OPS_SECRET, "/graphql", "{}")),
        json!({"host": HOST, "x-api-key": "da2-unknown-key-000000000000"}),
    ] {
        let mut client = connect(&header);
        client.send(&json!({"type": "connection_init"}));
        assert_eq!(
            client.receive().await,
            json!({"type": "connection_error", "payload": {"errors": [{
                "errorType": "UnauthorizedException",
                "message": "You are not authorized to make this call.",
                "errorCode": 401}]}}),
            "{header}"
        );
        tokio::time::timeout(Duration::from_secs(10), client.server)
            .await
            .expect("the server ends the refused connection")
            .expect("no panic");
    }
}

#[tokio::test(start_paused = true)]
async fn keep_alive_follows_the_ack() {
    let mut client = connected_as_ops().await;
    // The paused clock jumps to each timer: three minutes, three `ka`.
    for _ in 0..3 {
        assert_eq!(client.receive().await, json!({"type": "ka"}));
    }
    // Malformed messages get errors; the connection stays.
    client.to_server.send("not json".to_owned()).expect("sent");
    assert_eq!(
        client.receive().await["payload"]["errors"][0]["errorType"],
        "MalformedMessage"
    );
    client.send(&json!({"type": "start", "id": "x"}));
    assert_eq!(
        client.receive().await["payload"]["errors"][0]["errorType"],
        "MalformedMessage"
    );
    client.send(&json!({"type": "ka"}));
    assert_eq!(
        client.receive().await["payload"]["errors"][0]["errorType"],
        "UnsupportedOperation"
    );
}
