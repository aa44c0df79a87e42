//! AppSync's real-time WebSocket protocol for subscriptions, with AppSync's
//! authorization on the connection and on every subscription.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Executor, PathSegment, Pos, Positioned, Response, ServerError};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures_util::{FutureExt as _, Sink, SinkExt as _, Stream, StreamExt as _};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value as Json, json};

use crate::extension::{AppSyncDirectives, UNAUTHORIZED_FIELD};
use crate::layer::{AppSyncAuthLayer, HeaderAuthorizer};
use crate::response::{
    AppSyncResponse, UNAUTHORIZED_EXCEPTION, UNAUTHORIZED_MESSAGE, appsync_error,
};
use crate::rules::RequestAuth;

/// The WebSocket subprotocol AppSync's real-time endpoint speaks.
pub const REALTIME_SUBPROTOCOL: &str = "graphql-ws";

/// The path a SigV4 signature of the connection covers (with the body `{}`).
pub const CONNECT_PATH: &str = "/graphql/connect";

/// The path a SigV4 signature of a `start` message covers (with the body
/// the message's `data`).
pub const START_PATH: &str = "/graphql";

/// The most bytes of the `header` connection parameter read.
const MAX_HEADER_PARAM_BYTES: usize = 32 * 1024;

/// The most top-level selections (fields and fragments) one subscription's
/// check walks, and how deeply it follows fragments.
const MAX_TOP_LEVEL_SELECTIONS: usize = 256;
const MAX_FRAGMENT_DEPTH: usize = 8;

#[derive(Clone, Debug)]
struct Settings {
    keep_alive: Duration,
    connection_timeout: Duration,
    max_message_bytes: usize,
    max_subscriptions: usize,
    subscription_type: String,
    init_wait: Duration,
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
    executor: E,
    authorizer: HeaderAuthorizer,
    directives: AppSyncDirectives,
    settings: Arc<Settings>,
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

    /// Serves one connection: `query` is the connection URI's query string
    /// (with `header` and `payload`), `incoming` the client's text frames,
    /// `outgoing` where the answers go. Returns when the client leaves
    /// (`incoming` ends), when a send fails, or after a refused connection's
    /// `connection_error`; the caller then closes the socket.
    pub async fn serve<I, O>(&self, query: Option<&str>, incoming: I, outgoing: O)
    where
        I: Stream<Item = String> + Send,
        O: Sink<String> + Send,
    {
        let incoming = std::pin::pin!(incoming);
        let outgoing = std::pin::pin!(outgoing);
        let mut connection = Connection {
            realtime: self,
            incoming,
            outgoing,
            active: HashMap::new(),
            streams: SelectAll::new(),
            started: 0,
        };
        connection.run(query).await;
    }
}

/// A subscription's events: its id, its start's serial number, and each
/// response (`None` once, when the stream ends).
type EventStream = BoxStream<'static, (String, u64, Option<Response>)>;

struct Connection<'a, E, I, O> {
    realtime: &'a AppSyncRealtime<E>,
    incoming: std::pin::Pin<&'a mut I>,
    outgoing: std::pin::Pin<&'a mut O>,
    /// The running subscriptions: id, serial number of the start, handle.
    active: HashMap<String, (u64, AbortHandle)>,
    streams: SelectAll<EventStream>,
    started: u64,
}

/// The connection ends (the client left, or a send failed).
struct Closed;

impl<E, I, O> Connection<'_, E, I, O>
where
    E: Executor,
    I: Stream<Item = String> + Send,
    O: Sink<String> + Send,
{
    async fn send(&mut self, message: Json) -> Result<(), Closed> {
        self.outgoing
            .send(message.to_string())
            .await
            .map_err(|_| Closed)
    }

    async fn run(&mut self, query: Option<&str>) {
        let settings = Arc::clone(&self.realtime.settings);
        let connected = match connection_headers(query) {
            Some(headers) => {
                self.realtime
                    .authorizer
                    .authorize(headers, CONNECT_PATH, Bytes::from_static(b"{}"))
                    .await
            }
            None => None,
        };
        let Some(auth) = connected else {
            tracing::info!(
                layer = "graphql",
                outcome = "refused",
                reason = "UNAUTHORIZED",
                "real-time connection refused"
            );
            // Answer the client's first message (its connection_init), so it
            // reads the refusal rather than a closed socket.
            let _ = tokio::time::timeout(settings.init_wait, self.incoming.next()).await;
            let _ = self.send(connection_refused()).await;
            return;
        };
        tracing::debug!(
            layer = "graphql",
            outcome = "allowed",
            reason = "OK",
            mode = auth.mode().as_str(),
            "real-time connection authorized"
        );
        let mut keep_alive: Option<tokio::time::Interval> = None;
        loop {
            let step = tokio::select! {
                biased;
                message = self.incoming.next() => match message {
                    Some(message) => self.on_message(&message, &mut keep_alive).await,
                    None => Err(Closed),
                },
                Some((id, serial, event)) = self.streams.next(), if !self.streams.is_empty() => {
                    self.on_event(id, serial, event).await
                }
                () = tick(&mut keep_alive) => self.send(json!({"type": "ka"})).await,
            };
            if step.is_err() {
                return;
            }
        }
    }

    async fn on_event(
        &mut self,
        id: String,
        serial: u64,
        event: Option<Response>,
    ) -> Result<(), Closed> {
        match event {
            Some(response) => {
                let payload = AppSyncResponse(response).to_json();
                self.send(json!({"type": "data", "id": id, "payload": payload}))
                    .await
            }
            // The stream ended; unless a stop already completed it (and the
            // id may since name a new subscription), say so.
            None if self.active.get(&id).is_some_and(|(s, _)| *s == serial) => {
                self.active.remove(&id);
                self.send(json!({"type": "complete", "id": id})).await
            }
            None => Ok(()),
        }
    }

    async fn on_message(
        &mut self,
        message: &str,
        keep_alive: &mut Option<tokio::time::Interval>,
    ) -> Result<(), Closed> {
        let settings = Arc::clone(&self.realtime.settings);
        if message.len() > settings.max_message_bytes {
            return self
                .send(error(
                    None,
                    "MessageTooLarge",
                    &format!(
                        "Message exceeds the limit of {} bytes",
                        settings.max_message_bytes
                    ),
                ))
                .await;
        }
        let Ok(Json::Object(message)) = serde_json::from_str::<Json>(message) else {
            return self
                .send(error(
                    None,
                    "MalformedMessage",
                    "The message is not a JSON object",
                ))
                .await;
        };
        let id = message.get("id").and_then(Json::as_str);
        match message.get("type").and_then(Json::as_str) {
            Some("connection_init") => {
                let timeout_ms =
                    u64::try_from(settings.connection_timeout.as_millis()).unwrap_or(u64::MAX);
                self.send(json!({"type": "connection_ack", "payload": {"connectionTimeoutMs": timeout_ms}}))
                    .await?;
                if keep_alive.is_none() {
                    let period = settings.keep_alive.max(Duration::from_millis(10));
                    let mut interval =
                        tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    *keep_alive = Some(interval);
                }
                Ok(())
            }
            Some("start") => match id {
                Some(id) if !id.is_empty() => {
                    let id = id.to_owned();
                    let answer = self.start(&id, message.get("payload")).await;
                    match answer {
                        Ok(()) => Ok(()),
                        Err(refusal) => self.send(refusal).await,
                    }
                }
                _ => {
                    self.send(error(
                        None,
                        "MalformedMessage",
                        "A start message needs an id",
                    ))
                    .await
                }
            },
            Some("stop") => match id {
                Some(id) => {
                    if let Some((_, handle)) = self.active.remove(id) {
                        handle.abort();
                    }
                    let id = id.to_owned();
                    self.send(json!({"type": "complete", "id": id})).await
                }
                None => {
                    self.send(error(
                        None,
                        "MalformedMessage",
                        "A stop message needs an id",
                    ))
                    .await
                }
            },
            _ => {
                self.send(error(
                    id,
                    "UnsupportedOperation",
                    "Operation not supported through the realtime channel",
                ))
                .await
            }
        }
    }

    /// Starts subscription `id`, or says why not (an `error` message).
    async fn start(&mut self, id: &str, payload: Option<&Json>) -> Result<(), Json> {
        let realtime = self.realtime;
        let settings = &realtime.settings;
        if self.active.contains_key(id) {
            return Err(error(
                Some(id),
                "DuplicatedOperationError",
                "Duplicate subscription ID",
            ));
        }
        if self.active.len() >= settings.max_subscriptions {
            return Err(error(
                Some(id),
                "MaxSubscriptionsReachedError",
                &format!(
                    "Max number of {} subscriptions reached",
                    settings.max_subscriptions
                ),
            ));
        }
        let data = payload.and_then(|p| p.get("data")).and_then(Json::as_str);
        let Some(data) = data else {
            return Err(error(
                Some(id),
                "MalformedMessage",
                "A start message needs payload.data, a JSON string",
            ));
        };
        let headers = payload
            .and_then(|p| p.pointer("/extensions/authorization"))
            .and_then(header_map);
        let auth = match headers {
            Some(headers) => {
                realtime
                    .authorizer
                    .authorize(headers, START_PATH, Bytes::copy_from_slice(data.as_bytes()))
                    .await
            }
            None => None,
        };
        let Some(auth) = auth else {
            tracing::info!(
                layer = "graphql",
                outcome = "refused",
                reason = "UNAUTHORIZED",
                subscription = id,
                "subscription refused: credentials"
            );
            return Err(error(Some(id), UNAUTHORIZED_EXCEPTION, "Permission denied"));
        };
        let request: async_graphql::Request = serde_json::from_str(data).map_err(|_| {
            error(
                Some(id),
                "MalformedMessage",
                "payload.data is not a GraphQL request",
            )
        })?;
        // Parse here only to refuse what AppSync refuses before running
        // anything; a query that does not parse is answered by the executor.
        if let Ok(document) = async_graphql::parser::parse_query(&request.query) {
            self.check_operation(id, &document, request.operation_name.as_deref(), &auth)?;
        }
        let stream = realtime.executor.execute_stream(request.data(auth), None);
        self.run_stream(id, stream).await
    }

    /// Refuses a query or mutation, and a subscription to a top-level field
    /// the caller may not read.
    fn check_operation(
        &self,
        id: &str,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        auth: &RequestAuth,
    ) -> Result<(), Json> {
        let operation = match (&document.operations, operation_name) {
            (DocumentOperations::Single(op), _) => Some(op),
            (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
            (DocumentOperations::Multiple(_), None) => None,
        };
        // The executor names a missing or ambiguous operation.
        let Some(operation) = operation else {
            return Ok(());
        };
        let kind = match operation.node.ty {
            OperationType::Subscription => None,
            OperationType::Query => Some("Query"),
            OperationType::Mutation => Some("Mutation"),
        };
        if let Some(kind) = kind {
            return Err(error(
                Some(id),
                "UnsupportedOperation",
                &format!("{kind} not supported through the realtime channel"),
            ));
        }
        let type_name = self.realtime.settings.subscription_type.as_str();
        let mut fields = Vec::new();
        top_level_fields(document, &operation.node.selection_set.node, 0, &mut fields);
        let mut seen = HashSet::new();
        let denied: Vec<Json> = fields
            .into_iter()
            .filter(|(name, _, _)| name.as_str() != "__typename")
            .filter(|(name, _, _)| !self.realtime.directives.allows(type_name, name, true, auth))
            .filter(|(_, response_key, _)| seen.insert(response_key.clone()))
            .map(|(name, response_key, pos)| {
                let mut error = ServerError::new(
                    format!("Not Authorized to access {name} on type {type_name}"),
                    Some(pos),
                );
                error.path = vec![PathSegment::Field(response_key)];
                let mut extensions = async_graphql::ErrorExtensionValues::default();
                extensions.set("errorType", UNAUTHORIZED_FIELD);
                error.extensions = Some(extensions);
                appsync_error(&error)
            })
            .collect();
        if denied.is_empty() {
            return Ok(());
        }
        tracing::info!(
            layer = "graphql",
            outcome = "refused",
            reason = "UNAUTHORIZED",
            detail = "field_not_authorized",
            subscription = id,
            mode = auth.mode().as_str(),
            "subscription refused: field not authorized"
        );
        Err(json!({"type": "error", "id": id, "payload": {"errors": denied}}))
    }

    /// Acknowledges subscription `id` and adds its stream; a stream that
    /// fails at once (a query that does not validate) is an `error`.
    async fn run_stream(
        &mut self,
        id: &str,
        mut stream: BoxStream<'static, Response>,
    ) -> Result<(), Json> {
        let first = stream.next().now_or_never();
        let first = match first {
            // Refused before any event: validation and request errors.
            Some(Some(response)) if response.data == async_graphql::Value::Null => {
                let errors: Vec<Json> = response.errors.iter().map(appsync_error).collect();
                return Err(json!({"type": "error", "id": id, "payload": {"errors": errors}}));
            }
            Some(Some(response)) => Some(response),
            Some(None) | None => None,
        };
        let (handle, registration) = AbortHandle::new_pair();
        self.started += 1;
        let serial = self.started;
        self.active.insert(id.to_owned(), (serial, handle));
        let owned = id.to_owned();
        let events = Abortable::new(stream, registration)
            .map({
                let id = owned.clone();
                move |response| (id.clone(), serial, Some(response))
            })
            .chain(futures_util::stream::once(
                async move { (owned, serial, None) },
            ));
        let acked = self.send(json!({"type": "start_ack", "id": id})).await;
        if acked.is_err() {
            // The connection is gone; the loop ends at its next read.
            return Ok(());
        }
        if let Some(response) = first {
            let payload = AppSyncResponse(response).to_json();
            let _ = self
                .send(json!({"type": "data", "id": id, "payload": payload}))
                .await;
        }
        self.streams.push(events.boxed());
        Ok(())
    }
}

/// The next keep-alive, or never before `connection_init`.
async fn tick(keep_alive: &mut Option<tokio::time::Interval>) {
    match keep_alive.as_mut() {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// The top-level fields a selection set selects, through fragments: (field
/// name, response key, position).
fn top_level_fields(
    document: &ExecutableDocument,
    selection_set: &SelectionSet,
    depth: usize,
    out: &mut Vec<(String, String, Pos)>,
) {
    if depth > MAX_FRAGMENT_DEPTH {
        return;
    }
    for selection in &selection_set.items {
        if out.len() >= MAX_TOP_LEVEL_SELECTIONS {
            return;
        }
        match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                let key: &Positioned<async_graphql::Name> =
                    field.alias.as_ref().unwrap_or(&field.name);
                out.push((field.name.node.to_string(), key.node.to_string(), key.pos));
            }
            Selection::InlineFragment(fragment) => {
                top_level_fields(document, &fragment.node.selection_set.node, depth + 1, out)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    top_level_fields(document, &fragment.node.selection_set.node, depth + 1, out);
                }
            }
        }
    }
}

/// `{"type": "error", "id"?, "payload": {"errors": [{"errorType", "message"}]}}`.
fn error(id: Option<&str>, error_type: &str, message: &str) -> Json {
    let mut out = Map::new();
    out.insert("type".into(), json!("error"));
    if let Some(id) = id {
        out.insert("id".into(), json!(id));
    }
    out.insert(
        "payload".into(),
        json!({"errors": [{"errorType": error_type, "message": message}]}),
    );
    Json::Object(out)
}

/// AppSync's answer to a connection whose credentials are missing or bad.
fn connection_refused() -> Json {
    json!({"type": "connection_error", "payload": {"errors": [{
        "errorType": UNAUTHORIZED_EXCEPTION,
        "message": UNAUTHORIZED_MESSAGE,
        "errorCode": 401,
    }]}})
}

/// The headers of the connection's `header` query parameter.
fn connection_headers(query: Option<&str>) -> Option<HeaderMap> {
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("header="))?;
    if value.len() > MAX_HEADER_PARAM_BYTES {
        return None;
    }
    let json = decode_base64(&percent_decode(value)?)?;
    header_map(&serde_json::from_slice::<Json>(&json).ok()?)
}

/// Decodes `%XX` escapes; `+` stays `+` (a base64 character, which clients
/// do not escape).
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Standard or URL-safe base64, padded or not.
fn decode_base64(value: &str) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let standard: String = value
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            // A `+` that a form decoder turned into a space.
            ' ' => '+',
            c => c,
        })
        .collect();
    engine.decode(standard).ok()
}

/// A JSON object of string values as headers (`None` if any name or value
/// is not a valid header, or a value is not a string).
fn header_map(value: &Json) -> Option<HeaderMap> {
    let object = value.as_object()?;
    let mut headers = HeaderMap::with_capacity(object.len());
    for (name, value) in object {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.as_str()?).ok()?;
        headers.append(name, value);
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_parameter_in_every_spelling() {
        let header = json!({"host": "example.com", "x-api-key": "da2-key", "Authorization": "tok"});
        let standard = base64::engine::general_purpose::STANDARD.encode(header.to_string());
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
        for encoded in [
            standard.clone(),
            url_safe,
            standard.replace('=', "%3D").replace('+', "%2B"),
        ] {
            let headers =
                connection_headers(Some(&format!("header={encoded}&payload=e30="))).unwrap();
            assert_eq!(headers["x-api-key"], "da2-key");
            assert_eq!(headers["authorization"], "tok");
        }
    }

    #[test]
    fn refuses_bad_header_parameters() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for query in [
            None,
            Some(String::new()),
            Some("payload=e30=".to_owned()),
            Some("header=%ZZ".to_owned()),
            Some("header=!!!".to_owned()),
            Some(format!("header={}", b64("not json"))),
            Some(format!("header={}", b64("[1, 2]"))),
            Some(format!("header={}", b64(r#"{"x-api-key": 7}"#))),
            Some(format!("header={}", b64(r#"{"bad name": "v"}"#))),
            Some(format!("header={}", b64("{\"h\": \"a\\nb\"}"))),
            Some(format!("header={}", "A".repeat(MAX_HEADER_PARAM_BYTES + 4))),
        ] {
            assert!(connection_headers(query.as_deref()).is_none(), "{query:?}");
        }
    }
}
