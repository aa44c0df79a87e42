//! One connection: its messages, its subscriptions and their events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Executor, PathSegment, Pos, Positioned, Response, ServerError};
use bytes::Bytes;
use futures_util::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures_util::{FutureExt as _, Sink, SinkExt as _, Stream, StreamExt as _};
use serde_json::{Value as Json, json};

use super::endpoint::{AppSyncRealtime, CONNECT_PATH, START_PATH};
use super::protocol::{connection_headers, connection_refused, error, header_map};
use crate::extension::UNAUTHORIZED_FIELD;
use crate::response::{AppSyncResponse, UNAUTHORIZED_EXCEPTION, appsync_error};
use crate::rules::RequestAuth;

/// The most top-level selections (fields and fragments) one subscription's
/// check walks, and how deeply it follows fragments.
const MAX_TOP_LEVEL_SELECTIONS: usize = 256;
const MAX_FRAGMENT_DEPTH: usize = 8;

impl<E: Executor> AppSyncRealtime<E> {
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
