//! [`AppSyncRealtime`]: the real-time endpoint and its settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Executor;

use crate::extension::AppSyncDirectives;
use crate::layer::{AppSyncAuthLayer, HeaderAuthorizer};

/// The WebSocket subprotocol AppSync's real-time endpoint speaks.
pub const REALTIME_SUBPROTOCOL: &str = "graphql-ws";

/// The path a SigV4 signature of the connection covers (with the body `{}`).
pub const CONNECT_PATH: &str = "/graphql/connect";

/// The path a SigV4 signature of a `start` message covers (with the body
/// the message's `data`).
pub const START_PATH: &str = "/graphql";

#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) keep_alive: Duration,
    pub(super) connection_timeout: Duration,
    pub(super) max_message_bytes: usize,
    pub(super) max_subscriptions: usize,
    pub(super) subscription_type: String,
    pub(super) init_wait: Duration,
}

/// AppSync's real-time endpoint for an async-graphql schema: GraphQL
/// subscriptions over the `graphql-ws` WebSocket subprotocol as AppSync
/// speaks it, authorized as AppSync authorizes them.
///
/// - **Connection.** The client connects with the query parameters `header`
///   (base64 JSON of the headers that carry its credentials, `host`
///   included) and `payload` (base64 of `{}`). The headers are authorized by
///   the modes and layers of the API's [`AppSyncAuthLayer`] (an IAM
///   signature covers `POST /graphql/connect` with the body `{}`). Refused
///   credentials get
///   `{"type": "connection_error", "payload": {"errors": [{"errorType": "UnauthorizedException", "message": "You are not authorized to make this call.", "errorCode": 401}]}}`
///   and the connection ends.
/// - **`connection_init`** gets
///   `{"type": "connection_ack", "payload": {"connectionTimeoutMs": 300000}}`,
///   and then `{"type": "ka"}` every minute.
/// - **`start`** (`{"id", "type": "start", "payload": {"data": "<JSON of query and variables>", "extensions": {"authorization": {...}}}}`)
///   is authorized on its own, by the headers in `extensions.authorization`
///   (an IAM signature covers `POST /graphql` with the body `data`), so one
///   connection may carry subscriptions of different modes. Then:
///   - refused credentials: `{"type": "error", "id", "payload": {"errors": [{"errorType": "UnauthorizedException", "message": "Permission denied"}]}}`;
///   - a query or mutation: `UnsupportedOperation`, "`<operation>` not
///     supported through the realtime channel";
///   - a top-level field the directives (or, for AWS_IAM, the caller's IAM
///     policies) deny: `{"errorType": "Unauthorized", "message": "Not Authorized to access <field> on type Subscription", ...}`;
///   - a query that does not validate: its GraphQL errors;
///   - otherwise `{"type": "start_ack", "id"}`, then a
///     `{"type": "data", "id", "payload": {"data": ..., "errors": [...]}}` per
///     event, in AppSync's error shape (nested fields the directives deny are
///     `null` with `Unauthorized` errors, as in queries).
/// - **`stop`** ends the subscription and gets `{"type": "complete", "id"}`;
///   so does a subscription stream that ends by itself.
///
/// `serve` is transport-neutral: it reads text frames from a `Stream` and
/// writes them to a `Sink`, as async-graphql's own WebSocket support does;
/// with axum, split an upgraded `WebSocket` (see `examples/airline-graphql`).
///
/// ```
/// use async_graphql::{EmptyMutation, Object, Schema, Subscription};
/// use futures_util::StreamExt;
/// use base64::Engine;
/// use portcullis_api_key::ApiKeys;
/// use portcullis_graphql::directives::aws_api_key;
/// use portcullis_graphql::{AppSyncAuthLayer, AppSyncDirectives, AppSyncRealtime, AuthMode, AuthPolicy};
///
/// struct Query;
/// #[Object]
/// impl Query { async fn ping(&self) -> bool { true } }
/// struct Subscription;
/// #[Subscription]
/// impl Subscription {
///     #[graphql(directive = aws_api_key::apply())]
///     async fn ticks(&self) -> impl futures_util::Stream<Item = i32> { futures_util::stream::iter([1, 2]) }
///     async fn secret(&self) -> impl futures_util::Stream<Item = i32> { futures_util::stream::iter([7]) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sdl = Schema::new(Query, EmptyMutation, Subscription).sdl();
/// let directives = AppSyncDirectives::new(AuthPolicy::from_sdl(AuthMode::AwsIam, &sdl).unwrap());
/// let schema = Schema::build(Query, EmptyMutation, Subscription).extension(directives.clone()).finish();
/// let keys = ApiKeys::new();
/// let key = keys.create(Default::default()).await.unwrap().value.expose().to_owned();
/// let auth = AppSyncAuthLayer::new(AuthMode::ApiKey, keys.layer("api", "graphql").require_usage_plan(false));
/// let realtime = AppSyncRealtime::new(schema, &auth, directives);
///
/// // A client's frames, and the server's answers.
/// let header = serde_json::json!({"host": "example.com", "x-api-key": key});
/// let query = format!("header={}&payload=e30=",
///     base64::engine::general_purpose::STANDARD.encode(header.to_string()));
/// let start = |id: &str, field: &str| serde_json::json!({"id": id, "type": "start", "payload": {
///     "data": serde_json::json!({"query": format!("subscription {{ {field} }}")}).to_string(),
///     "extensions": {"authorization": header}}}).to_string();
/// let incoming = futures_util::stream::iter([
///     r#"{"type": "connection_init"}"#.to_owned(), start("1", "ticks"), start("2", "secret"),
/// ]).chain(futures_util::stream::pending());
/// let (frames, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
/// let outgoing = futures_util::sink::unfold(frames, |frames, frame: String| async move {
///     frames.send(frame).map_err(|_| ())?;
///     Ok::<_, ()>(frames)
/// });
/// let mut answers: Vec<serde_json::Value> = Vec::new();
/// tokio::select! {
///     () = realtime.serve(Some(&query), incoming, outgoing) => unreachable!("the client stays"),
///     () = async {
///         while answers.len() < 6 {
///             answers.push(serde_json::from_str(&received.recv().await.unwrap()).unwrap());
///         }
///     } => {}
/// }
/// assert_eq!(answers[0]["type"], "connection_ack");
/// assert_eq!(answers[1], serde_json::json!({"type": "start_ack", "id": "1"}));
/// let data: Vec<_> = answers.iter().filter(|a| a["type"] == "data").map(|a| &a["payload"]["data"]).collect();
/// assert_eq!(data, [&serde_json::json!({"ticks": 1}), &serde_json::json!({"ticks": 2})]);
/// assert!(answers.contains(&serde_json::json!({"type": "complete", "id": "1"})));
/// // `secret` has no directive: only the default mode (AWS_IAM) may subscribe.
/// let denied = answers.iter().find(|a| a["id"] == "2").unwrap();
/// assert_eq!(denied["type"], "error");
/// assert_eq!(denied["payload"]["errors"][0]["errorType"], "Unauthorized");
/// assert_eq!(denied["payload"]["errors"][0]["message"], "Not Authorized to access secret on type Subscription");
/// # }
/// ```
pub struct AppSyncRealtime<E> {
    pub(super) executor: E,
    pub(super) authorizer: HeaderAuthorizer,
    pub(super) directives: AppSyncDirectives,
    pub(super) settings: Arc<Settings>,
}

impl<E: Clone> Clone for AppSyncRealtime<E> {
    fn clone(&self) -> Self {
        Self {
            executor: self.executor.clone(),
            authorizer: self.authorizer.clone(),
            directives: self.directives.clone(),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<E> fmt::Debug for AppSyncRealtime<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSyncRealtime")
            .field("authorizer", &self.authorizer)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<E: Executor> AppSyncRealtime<E> {
    /// The real-time endpoint of `executor` (an async-graphql `Schema` or
    /// dynamic `Schema`, with the [`AppSyncDirectives`] extension), whose
    /// connections and subscriptions are authorized by the modes of `auth`
    /// and whose subscriptions' top-level fields are checked against
    /// `directives` (the extension the schema carries) before they start.
    pub fn new(executor: E, auth: &AppSyncAuthLayer, directives: AppSyncDirectives) -> Self {
        let subscription_type = directives
            .policy()
            .subscription_type()
            .unwrap_or("Subscription")
            .to_owned();
        Self {
            executor,
            authorizer: auth.header_authorizer(),
            directives,
            settings: Arc::new(Settings {
                keep_alive: Duration::from_secs(60),
                connection_timeout: Duration::from_secs(300),
                max_message_bytes: 256 * 1024,
                max_subscriptions: 100,
                subscription_type,
                init_wait: Duration::from_secs(10),
            }),
        }
    }

    /// How often `ka` is sent (one minute by default).
    #[must_use]
    pub fn keep_alive(mut self, every: Duration) -> Self {
        Arc::make_mut(&mut self.settings).keep_alive = every;
        self
    }

    /// The `connectionTimeoutMs` advertised in `connection_ack`: how long a
    /// client waits for a `ka` before it gives up (five minutes by default,
    /// as AppSync).
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.settings).connection_timeout = timeout;
        self
    }

    /// The largest client message read (256 KiB by default); a larger one
    /// gets an error and is not parsed.
    #[must_use]
    pub fn max_message_bytes(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.settings).max_message_bytes = limit;
        self
    }

    /// The most subscriptions one connection may hold (100 by default, as
    /// AppSync).
    #[must_use]
    pub fn max_subscriptions(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.settings).max_subscriptions = limit;
        self
    }

    /// The name of the schema's subscription type, whose fields are checked
    /// when a subscription starts: by default the one the policy's SDL names
    /// ([`AuthPolicy::subscription_type`](crate::AuthPolicy::subscription_type)),
    /// else `Subscription`.
    #[must_use]
    pub fn subscription_type(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.settings).subscription_type = name.into();
        self
    }

    /// How long a refused connection waits for the client's first message
    /// before it sends `connection_error` and ends (10 s by default).
    #[must_use]
    pub fn refusal_wait(mut self, wait: Duration) -> Self {
        Arc::make_mut(&mut self.settings).init_wait = wait;
        self
    }
}
