//! The serverless airline's GraphQL API with AppSync's authorization.
//!
//! `airline-graphql --listen 127.0.0.1:0` serves `POST /graphql` (and
//! subscriptions over AppSync's real-time WebSocket protocol on
//! `GET /graphql`) and prints
//! `listening on http://ADDR` as its first line, then `api key: VALUE`
//! and the demo IAM credentials. The schema is `schema.graphql` (embedded):
//! it is read once for its `@aws_*` directives and served by an
//! async-graphql dynamic schema built to match it.
//!
//! - Default mode AMAZON_COGNITO_USER_POOLS: the demo pool of airline-loyalty
//!   (`us-east-1_Example`, app client `airline-loyalty-web`, its
//!   `config/jwks.json`); `airline-graphql mint-token [--group Admin]` prints
//!   an ID token signed with its demo key.
//! - API_KEY: the key printed at start-up (`--api-key` to choose it), which
//!   expires as AppSync keys do (`--api-key-days`, default 7).
//! - AWS_IAM: SigV4 for the service `appsync`, the demo access keys printed
//!   at start-up; each top-level field is then authorized by the caller's
//!   IAM policies (`appsync:GraphQL`, per field).
//! - OPENID_CONNECT, with `--oidc-issuer URL` (keys by OpenID Connect
//!   discovery; `--oidc-audience` to check `aud`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, Schema, SchemaError, Subscription,
    SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use async_graphql::{Name, Value};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Json, Router};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt as _, Stream, StreamExt as _};
use portcullis_api_key::{ApiKeyValue, ApiKeys, NewApiKey};
use portcullis_graphql::{
    AppSyncAuthLayer, AppSyncDirectives, AppSyncRealtime, AppSyncResponse, AuthMode, AuthPolicy,
    FieldIam, GraphqlApiArn, REALTIME_SUBPROTOCOL, RequestAuth,
};
use portcullis_iam::PolicyDocument;
use portcullis_jwt::{Issuer, JwtLayer, TokenUse, UserPoolId};
use portcullis_sigv4::{Credential, SigV4Layer, StaticCredentialProvider};
use serde_json::json;
use tokio::sync::broadcast;

/// The schema, with its `@aws_*` directives.
const SCHEMA: &str = include_str!("../schema.graphql");

/// airline-loyalty's demo user pool: its public keys and its signing key.
/// A demo secret, published on purpose: never trust it anywhere else.
const DEMO_JWKS: &str = include_str!("../../airline-loyalty/config/jwks.json");
const DEMO_SIGNING_KEY: &str = include_str!("../../airline-loyalty/config/demo-signing-key.pem");
const DEMO_KID: &str = "airline-loyalty-demo-1";
const REGION: &str = "us-east-1";
const USER_POOL: &str = "us-east-1_Example";
const APP_CLIENT: &str = "airline-loyalty-web";

/// The demo IAM user that may call the API with SigV4 (service `appsync`).
/// DEMO CREDENTIALS ONLY: never reuse these values.
const IAM_ACCESS_KEY_ID: &str = "AKIAAIRLINEGRAPHQL01";
const IAM_SECRET_ACCESS_KEY: &str = "airlineGraphqlDemoSecretKey000000000001";
const IAM_PRINCIPAL: &str = "arn:aws:iam::123456789012:user/airline-ops";
/// A partner's IAM user: its policies allow reading `flightStatus` only.
/// DEMO CREDENTIALS ONLY: never reuse these values.
const PARTNER_ACCESS_KEY_ID: &str = "AKIAAIRLINEPARTNER01";
const PARTNER_SECRET_ACCESS_KEY: &str = "airlinePartnerDemoSecretKey0000000000001";
const PARTNER_PRINCIPAL: &str = "arn:aws:iam::123456789012:user/airline-partner";
const ACCOUNT: &str = "123456789012";
const API_ID: &str = "airlinegraphql";

/// The IAM policies of the demo users (`appsync:GraphQL` per field, as
/// AppSync authorizes AWS_IAM requests).
const OPS_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "appsync:GraphQL",
    "Resource": [
        "arn:aws:appsync:us-east-1:123456789012:apis/airlinegraphql/types/Query/fields/*",
        "arn:aws:appsync:us-east-1:123456789012:apis/airlinegraphql/types/Mutation/fields/updateFlightStatus",
        "arn:aws:appsync:us-east-1:123456789012:apis/airlinegraphql/types/Subscription/fields/*"
    ]}]}"#;
const PARTNER_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "appsync:GraphQL",
    "Resource": "arn:aws:appsync:us-east-1:123456789012:apis/airlinegraphql/types/Query/fields/flightStatus"
}, {
    "Effect": "Deny", "Action": "appsync:GraphQL",
    "Resource": "arn:aws:appsync:us-east-1:123456789012:apis/airlinegraphql/types/Mutation/*"
}]}"#;

#[derive(Debug, Parser)]
#[command(
    name = "airline-graphql",
    about = "The serverless airline's GraphQL API, with AppSync's authorization modes"
)]
struct Args {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
    /// The API key's value (20 to 128 letters and digits; default: a new
    /// random key at each start).
    #[arg(long, value_name = "VALUE")]
    api_key: Option<String>,
    /// Days until the API key expires (AppSync allows 1 to 365; the expiry
    /// is rounded down to the hour).
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=365))]
    api_key_days: u16,
    /// Accepts OPENID_CONNECT tokens from this issuer too (its keys found by
    /// OpenID Connect discovery).
    #[arg(long, value_name = "URL")]
    oidc_issuer: Option<String>,
    /// An audience OIDC tokens must name in `aud` (repeatable; none: `aud`
    /// is not checked).
    #[arg(long = "oidc-audience", value_name = "AUD")]
    oidc_audiences: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints a demo Cognito ID token of the demo user pool.
    MintToken {
        /// `cognito:username`.
        #[arg(long, default_value = "alice")]
        username: String,
        /// Lifetime in seconds (Cognito allows at most a day).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// `cognito:groups` (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An ID token of the demo user pool, as airline-loyalty's `mint-token`
/// makes them.
fn mint_token(username: &str, ttl: u64, groups: &[String]) -> Result<String, String> {
    let now = now();
    let mut claims = json!({
        "sub": format!("{username}-0000-4000-8000-demo"),
        "iss": format!("https://cognito-idp.{REGION}.amazonaws.com/{USER_POOL}"),
        "aud": APP_CLIENT,
        "token_use": "id",
        "auth_time": now,
        "iat": now,
        "exp": now + ttl.min(86_400),
        "cognito:username": username,
        "email": format!("{username}@example.com"),
        "email_verified": true,
    });
    if !groups.is_empty() {
        claims["cognito:groups"] = json!(groups);
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(DEMO_KID.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(DEMO_SIGNING_KEY.as_bytes())
        .map_err(|e| format!("the demo signing key: {e}"))?;
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing the token: {e}"))
}

/// The airline's data.
fn flights() -> Vec<serde_json::Value> {
    vec![
        json!({"id": "FL-101", "departureAirportCode": "LGW", "arrivalAirportCode": "MAD",
               "departureDate": "2026-12-20T08:00+0000", "ticketPrice": 129, "ticketCurrency": "EUR", "seatAllocation": 12}),
        json!({"id": "FL-102", "departureAirportCode": "LGW", "arrivalAirportCode": "MAD",
               "departureDate": "2026-12-20T17:30+0000", "ticketPrice": 189, "ticketCurrency": "EUR", "seatAllocation": 3}),
        json!({"id": "FL-201", "departureAirportCode": "MAD", "arrivalAirportCode": "LGW",
               "departureDate": "2026-12-27T10:15+0000", "ticketPrice": 149, "ticketCurrency": "EUR", "seatAllocation": 40}),
    ]
}

/// A loyalty account: gold from 50,000 points, and the points left to the
/// next level (50,000 for gold, 100,000 after).
fn loyalty_json(customer_id: &str, points: i64) -> serde_json::Value {
    let (level, next) = if points >= 50_000 {
        ("gold", 100_000)
    } else {
        ("silver", 50_000)
    };
    json!({"customerId": customer_id, "points": points, "level": level,
           "remainingPoints": (next - points).max(0)})
}

/// What a mutation publishes to the subscriptions that follow it
/// (`@aws_subscribe`).
#[derive(Clone, Debug)]
enum Event {
    FlightStatus(serde_json::Value),
    Loyalty(serde_json::Value),
}

/// The airline's mutable state: loyalty points, flight statuses, and the
/// events subscriptions hear.
struct Airline {
    points: Mutex<HashMap<String, i64>>,
    statuses: Mutex<HashMap<String, serde_json::Value>>,
    events: broadcast::Sender<Event>,
}

impl Airline {
    fn new() -> Self {
        Self {
            points: Mutex::new(HashMap::from([
                ("alice".to_owned(), 12_400),
                ("bob".to_owned(), 58_250),
            ])),
            statuses: Mutex::new(HashMap::new()),
            events: broadcast::channel(64).0,
        }
    }

    fn loyalty(&self, customer_id: &str) -> Option<serde_json::Value> {
        let points = self.points.lock().ok()?.get(customer_id).copied()?;
        Some(loyalty_json(customer_id, points))
    }

    fn redeem(&self, customer_id: &str, points: i64) -> Result<serde_json::Value, String> {
        if points <= 0 {
            return Err("points must be positive".into());
        }
        let mut accounts = self.points.lock().map_err(|_| "the store is poisoned")?;
        let balance = accounts
            .get_mut(customer_id)
            .ok_or_else(|| format!("no loyalty account {customer_id}"))?;
        if *balance < points {
            return Err(format!("{customer_id} has only {balance} points"));
        }
        *balance -= points;
        let loyalty = loyalty_json(customer_id, *balance);
        drop(accounts);
        // No subscriber is not an error.
        let _ = self.events.send(Event::Loyalty(loyalty.clone()));
        Ok(loyalty)
    }

    fn flight_status(&self, flight_id: &str) -> Option<serde_json::Value> {
        if let Some(status) = self.statuses.lock().ok()?.get(flight_id) {
            return Some(status.clone());
        }
        flights()
            .iter()
            .any(|f| f["id"] == flight_id)
            .then(|| json!({"flightId": flight_id, "status": "ON_TIME", "gate": "B32"}))
    }

    fn update_status(
        &self,
        flight_id: &str,
        status: &str,
        gate: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        if !flights().iter().any(|f| f["id"] == flight_id) {
            return Err(format!("no flight {flight_id}"));
        }
        let update = json!({"flightId": flight_id, "status": status, "gate": gate});
        self.statuses
            .lock()
            .map_err(|_| "the store is poisoned")?
            .insert(flight_id.to_owned(), update.clone());
        let _ = self.events.send(Event::FlightStatus(update.clone()));
        Ok(update)
    }

    /// The events `pick` keeps, as a subscription's stream.
    fn follow<F>(&self, pick: F) -> impl Stream<Item = serde_json::Value> + Send + use<F>
    where
        F: Fn(Event) -> Option<serde_json::Value> + Send + 'static,
    {
        futures_util::stream::unfold(
            (self.events.subscribe(), pick),
            |(mut events, pick)| async move {
                loop {
                    match events.recv().await {
                        Ok(event) => {
                            if let Some(value) = pick(event) {
                                return Some((value, (events, pick)));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        )
    }
}

fn bookings() -> Vec<serde_json::Value> {
    let flights = flights();
    vec![
        json!({"id": "BK-1", "customer": "alice", "status": "CONFIRMED", "flight": flights[0]}),
        json!({"id": "BK-2", "customer": "bob", "status": "CANCELLED", "flight": flights[2]}),
    ]
}

fn to_value(json: serde_json::Value) -> Value {
    Value::from_json(json).unwrap_or(Value::Null)
}

/// A field read from the parent object's property of the same name.
fn prop(name: &'static str, ty: TypeRef) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let value = match ctx.parent_value.as_value() {
                Some(Value::Object(map)) => map.get(&Name::new(name)).cloned(),
                _ => None,
            };
            Ok(value.map(FieldValue::value))
        })
    })
}

/// A root field answered by `answer` from one string argument (or none).
fn root<F>(name: &'static str, ty: TypeRef, argument: Option<&'static str>, answer: F) -> Field
where
    F: Fn(&str, Option<&RequestAuth>) -> Option<serde_json::Value> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    Field::new(name, ty, move |ctx| {
        let answer = Arc::clone(&answer);
        FieldFuture::new(async move {
            let arg = match argument {
                Some(arg) => ctx.args.try_get(arg)?.string()?.to_owned(),
                None => String::new(),
            };
            let auth = ctx.data_opt::<RequestAuth>();
            Ok(answer(&arg, auth).map(|json| FieldValue::value(to_value(json))))
        })
    })
}

/// A flight search: `searchFlights`, and `partnerFlights` for OIDC partners.
fn search_flights(name: &'static str) -> Field {
    Field::new(name, TypeRef::named_list("Flight"), |ctx| {
        FieldFuture::new(async move {
            let from = ctx.args.try_get("from")?.string()?.to_owned();
            let to = ctx.args.try_get("to")?.string()?.to_owned();
            let found: Vec<serde_json::Value> = flights()
                .into_iter()
                .filter(|f| f["departureAirportCode"] == from && f["arrivalAirportCode"] == to)
                .collect();
            Ok(Some(FieldValue::value(to_value(json!(found)))))
        })
    })
    .argument(InputValue::new("from", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("to", TypeRef::named_nn(TypeRef::STRING)))
}

/// The dynamic schema that serves `schema.graphql`.
fn schema(directives: AppSyncDirectives, airline: &Arc<Airline>) -> Result<Schema, SchemaError> {
    use TypeRef as T;
    let s = || T::named(T::STRING);
    let (a, b) = (Arc::clone(airline), Arc::clone(airline));
    let query = Object::new("Query")
        .field(search_flights("searchFlights"))
        .field(search_flights("partnerFlights"))
        .field(
            root("getLoyalty", T::named("Loyalty"), Some("customerId"), move |id, _| {
                a.loyalty(id)
            })
                .argument(InputValue::new("customerId", T::named_nn(T::ID))),
        )
        .field(root("listBookings", T::named_list("Booking"), None, |_, _| {
            Some(json!(bookings()))
        }))
        .field(
            root("flightStatus", T::named("FlightStatus"), Some("flightId"), move |id, _| {
                b.flight_status(id)
            })
            .argument(InputValue::new("flightId", T::named_nn(T::ID))),
        )
        .field(root("me", T::named("Customer"), None, |_, auth| {
            let caller = auth?.caller()?;
            Some(json!({
                "username": caller.claim("cognito:username").cloned().unwrap_or(json!(caller.principal())),
                "email": caller.claim("email"),
                "groups": caller.groups(),
            }))
        }));
    let flight = Object::new("Flight")
        .field(prop("id", T::named_nn(T::ID)))
        .field(prop("departureAirportCode", T::named_nn(T::STRING)))
        .field(prop("arrivalAirportCode", T::named_nn(T::STRING)))
        .field(prop("departureDate", T::named_nn(T::STRING)))
        .field(prop("ticketPrice", T::named(T::INT)))
        .field(prop("ticketCurrency", s()))
        .field(prop("seatAllocation", T::named(T::INT)));
    let loyalty = Object::new("Loyalty")
        .field(prop("customerId", T::named_nn(T::ID)))
        .field(prop("points", T::named(T::INT)))
        .field(prop("level", s()))
        .field(prop("remainingPoints", T::named(T::INT)));
    let booking = Object::new("Booking")
        .field(prop("id", T::named_nn(T::ID)))
        .field(prop("customer", s()))
        .field(prop("status", s()))
        .field(prop("flight", T::named("Flight")));
    let status = Object::new("FlightStatus")
        .field(prop("flightId", T::named_nn(T::ID)))
        .field(prop("status", s()))
        .field(prop("gate", s()));
    let customer = Object::new("Customer")
        .field(prop("username", s()))
        .field(prop("email", s()))
        .field(prop("groups", T::named_list(T::STRING)));
    Schema::build("Query", Some("Mutation"), Some("Subscription"))
        .register(query)
        .register(mutation(airline))
        .register(subscription(airline))
        .register(flight)
        .register(loyalty)
        .register(booking)
        .register(status)
        .register(customer)
        .extension(directives)
        .finish()
}

/// `updateFlightStatus` and `redeemPoints`: each publishes its result to the
/// subscriptions that follow it.
fn mutation(airline: &Arc<Airline>) -> Object {
    use TypeRef as T;
    let (a, b) = (Arc::clone(airline), Arc::clone(airline));
    Object::new("Mutation")
        .field(
            Field::new("updateFlightStatus", T::named("FlightStatus"), move |ctx| {
                let airline = Arc::clone(&a);
                FieldFuture::new(async move {
                    let flight = ctx.args.try_get("flightId")?.string()?.to_owned();
                    let status = ctx.args.try_get("status")?.string()?.to_owned();
                    let gate = match ctx.args.get("gate") {
                        Some(gate) if !gate.is_null() => Some(gate.string()?.to_owned()),
                        _ => None,
                    };
                    let update = airline.update_status(&flight, &status, gate.as_deref())?;
                    Ok(Some(FieldValue::value(to_value(update))))
                })
            })
            .argument(InputValue::new("flightId", T::named_nn(T::ID)))
            .argument(InputValue::new("status", T::named_nn(T::STRING)))
            .argument(InputValue::new("gate", T::named(T::STRING))),
        )
        .field(
            Field::new("redeemPoints", T::named("Loyalty"), move |ctx| {
                let airline = Arc::clone(&b);
                FieldFuture::new(async move {
                    let customer = ctx.args.try_get("customerId")?.string()?.to_owned();
                    let points = ctx.args.try_get("points")?.i64()?;
                    let loyalty = airline.redeem(&customer, points)?;
                    Ok(Some(FieldValue::value(to_value(loyalty))))
                })
            })
            .argument(InputValue::new("customerId", T::named_nn(T::ID)))
            .argument(InputValue::new("points", T::named_nn(T::INT))),
        )
}

/// `onFlightStatus(flightId)` and `onLoyaltyUpdated(customerId)`: the
/// results of the mutations their `@aws_subscribe` names, for one flight or
/// one account.
fn subscription(airline: &Arc<Airline>) -> Subscription {
    use TypeRef as T;
    let (a, b) = (Arc::clone(airline), Arc::clone(airline));
    Subscription::new("Subscription")
        .field(
            SubscriptionField::new("onFlightStatus", T::named("FlightStatus"), move |ctx| {
                let airline = Arc::clone(&a);
                SubscriptionFieldFuture::new(async move {
                    let flight = ctx.args.try_get("flightId")?.string()?.to_owned();
                    let events = airline.follow(move |event| match event {
                        Event::FlightStatus(update) if update["flightId"] == flight.as_str() => {
                            Some(update)
                        }
                        _ => None,
                    });
                    Ok(events.map(|update| Ok(FieldValue::value(to_value(update)))))
                })
            })
            .argument(InputValue::new("flightId", T::named_nn(T::ID))),
        )
        .field(
            SubscriptionField::new("onLoyaltyUpdated", T::named("Loyalty"), move |ctx| {
                let airline = Arc::clone(&b);
                SubscriptionFieldFuture::new(async move {
                    let customer = ctx.args.try_get("customerId")?.string()?.to_owned();
                    let events = airline.follow(move |event| match event {
                        Event::Loyalty(loyalty) if loyalty["customerId"] == customer.as_str() => {
                            Some(loyalty)
                        }
                        _ => None,
                    });
                    Ok(events.map(|loyalty| Ok(FieldValue::value(to_value(loyalty)))))
                })
            })
            .argument(InputValue::new("customerId", T::named_nn(T::ID))),
        )
}

/// What the routes share.
#[derive(Clone)]
struct AppState {
    schema: Schema,
    realtime: AppSyncRealtime<Schema>,
}

async fn graphql(
    State(state): State<AppState>,
    auth: Option<Extension<RequestAuth>>,
    Json(request): Json<async_graphql::Request>,
) -> Json<AppSyncResponse> {
    Json(portcullis_graphql::execute(&state.schema, request, auth.map(|Extension(a)| a)).await)
}

/// The largest WebSocket message read on the real-time endpoint.
const MAX_REALTIME_MESSAGE_BYTES: usize = 256 * 1024;

/// `GET /graphql` with a WebSocket upgrade: AppSync's real-time endpoint
/// (subprotocol `graphql-ws`; the credentials are in the `header` query
/// parameter and in each `start` message, not in the upgrade's headers).
async fn realtime_endpoint(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols([REALTIME_SUBPROTOCOL])
        .max_message_size(MAX_REALTIME_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve_realtime(state.realtime, query, socket))
}

async fn serve_realtime(
    realtime: AppSyncRealtime<Schema>,
    query: Option<String>,
    socket: WebSocket,
) {
    let (mut sender, receiver) = socket.split();
    // Text frames in; the stream ends at the client's Close or an error.
    let incoming = receiver
        .take_while(|frame| {
            std::future::ready(matches!(frame, Ok(m) if !matches!(m, Message::Close(_))))
        })
        .filter_map(|frame| {
            std::future::ready(match frame {
                Ok(Message::Text(text)) => Some(text.as_str().to_owned()),
                _ => None,
            })
        });
    let outgoing = (&mut sender)
        .with(|text: String| std::future::ready(Ok::<_, axum::Error>(Message::Text(text.into()))));
    realtime.serve(query.as_deref(), incoming, outgoing).await;
    let _ = sender.send(Message::Close(None)).await;
}

/// The app: `POST /graphql` behind AppSync's modes.
async fn app(args: &Args) -> Result<(Router, String), String> {
    let policy = AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, SCHEMA)
        .map_err(|e| format!("schema.graphql: {e}"))?;
    // AWS_IAM: each top-level field is `appsync:GraphQL` on its own ARN,
    // allowed or denied by the caller's IAM policies.
    let ops_policy = Arc::new(PolicyDocument::from_json(OPS_POLICY).map_err(|e| e.to_string())?);
    let partner_policy =
        Arc::new(PolicyDocument::from_json(PARTNER_POLICY).map_err(|e| e.to_string())?);
    let iam_policies = HashMap::from([
        (IAM_PRINCIPAL.to_owned(), vec![ops_policy]),
        (PARTNER_PRINCIPAL.to_owned(), vec![partner_policy]),
    ]);
    let api_arn = GraphqlApiArn::new(REGION, ACCOUNT, API_ID).map_err(|e| e.to_string())?;
    let directives = AppSyncDirectives::new(policy).iam(FieldIam::new(api_arn, iam_policies));
    let airline = Arc::new(Airline::new());
    let schema = schema(directives.clone(), &airline).map_err(|e| format!("the schema: {e}"))?;

    // AMAZON_COGNITO_USER_POOLS: airline-loyalty's demo pool.
    let pool: UserPoolId = USER_POOL.parse().map_err(|e| format!("{e}"))?;
    let issuer = Issuer::user_pool(&pool)
        .jwks(DEMO_JWKS)
        .client_ids([APP_CLIENT]);
    let user_pool = JwtLayer::new(issuer)
        .map_err(|e| format!("the user pool: {e}"))?
        .token_use(TokenUse::Id);

    // API_KEY: one key, expiring as AppSync keys do.
    let keys = ApiKeys::new();
    let mut new_key = NewApiKey::new()
        .id("da2-airline-demo")
        .name("airline public key");
    if let Some(value) = &args.api_key {
        new_key =
            new_key.value(ApiKeyValue::new(value.clone()).map_err(|e| format!("--api-key: {e}"))?);
    }
    let created = keys
        .create(new_key)
        .await
        .map_err(|e| format!("creating the API key: {e}"))?;
    let expires =
        time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(args.api_key_days));
    let expires = expires
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .map_err(|e| e.to_string())?;

    // AWS_IAM: SigV4 for the service `appsync` establishes the principal;
    // its IAM policies are evaluated per field (FieldIam, above).
    let provider = StaticCredentialProvider::new()
        .with(Credential::new(
            IAM_ACCESS_KEY_ID,
            IAM_SECRET_ACCESS_KEY,
            IAM_PRINCIPAL,
        ))
        .with(Credential::new(
            PARTNER_ACCESS_KEY_ID,
            PARTNER_SECRET_ACCESS_KEY,
            PARTNER_PRINCIPAL,
        ));
    let api = portcullis_iam::ExecuteApiArn::new(REGION, ACCOUNT, API_ID, "graphql")
        .map_err(|e| e.to_string())?;
    let iam = SigV4Layer::new(api, provider)
        .service("appsync")
        .authentication_only();

    let mut auth = AppSyncAuthLayer::new(AuthMode::AmazonCognitoUserPools, user_pool)
        .additional_mode(
            AuthMode::ApiKey,
            keys.layer("airlinegraphql", "graphql")
                .require_usage_plan(false),
        )
        .additional_mode(AuthMode::AwsIam, iam)
        .api_key_expires(created.record.id(), expires);
    // OPENID_CONNECT, when an issuer is given.
    if let Some(issuer) = &args.oidc_issuer {
        let oidc = JwtLayer::new(Issuer::new(issuer).audiences(args.oidc_audiences.clone()))
            .map_err(|e| format!("--oidc-issuer: {e}"))?;
        auth = auth.additional_mode(AuthMode::OpenidConnect, oidc);
    }
    let realtime = AppSyncRealtime::new(schema.clone(), &auth, directives);
    let router = Router::new()
        .route(
            "/graphql",
            post(graphql).route_layer(auth).get(realtime_endpoint),
        )
        .with_state(AppState { schema, realtime });
    Ok((router, created.value.expose().to_owned()))
}

async fn shutdown() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let (app, api_key) = app(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    println!("api key: {api_key}");
    println!("iam access key id: {IAM_ACCESS_KEY_ID}");
    println!("iam secret access key: {IAM_SECRET_ACCESS_KEY}");
    println!("iam partner access key id: {PARTNER_ACCESS_KEY_ID}");
    println!("iam partner secret access key: {PARTNER_SECRET_ACCESS_KEY}");
    println!("iam region: {REGION} (service appsync)");
    println!(
        "user pool: {USER_POOL} (app client {APP_CLIENT}); tokens: airline-graphql mint-token [--group Admin]"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    let result = match &args.command {
        Some(Command::MintToken {
            username,
            ttl,
            groups,
        }) => mint_token(username, *ttl, groups).map(|token| println!("{token}")),
        None => serve(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("airline-graphql: {message}");
            std::process::ExitCode::from(2)
        }
    }
}
