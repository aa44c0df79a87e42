//! What the integration tests share.

// Each test file uses a part of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::time::Duration;

use async_graphql::Executor;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_graphql::{AppSyncRealtime, BoxBody, RequestAuth};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::Service;

/// `POST /graphql` behind the layer: runs the JSON GraphQL request on
/// `executor` for the request's [`RequestAuth`] and answers in AppSync's
/// shape.
pub(crate) fn graphql_endpoint<E: Executor>(
    executor: E,
) -> impl Service<
    Request<BoxBody>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |request: Request<BoxBody>| {
        let executor = executor.clone();
        async move {
            let auth = request.extensions().get::<RequestAuth>().cloned();
            let body = request
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes();
            let query: async_graphql::Request = serde_json::from_slice(&body).expect("JSON");
            let answer = portcullis_graphql::execute(&executor, query, auth).await;
            let json = serde_json::to_vec(&answer).expect("serializes");
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(json))))
        }
    })
}

/// A real-time client connected with a `header`, talking to
/// [`AppSyncRealtime::serve`] through channels.
pub(crate) struct RealtimeClient {
    pub(crate) to_server: mpsc::UnboundedSender<String>,
    from_server: mpsc::UnboundedReceiver<String>,
    pub(crate) server: tokio::task::JoinHandle<()>,
}

impl RealtimeClient {
    pub(crate) fn connect<E: Executor>(realtime: AppSyncRealtime<E>, header: &Value) -> Self {
        let query = format!(
            "header={}&payload=e30=",
            base64::engine::general_purpose::STANDARD.encode(header.to_string())
        );
        let (to_server, incoming) = mpsc::unbounded_channel::<String>();
        let (outgoing, from_server) = mpsc::unbounded_channel::<String>();
        let server = tokio::spawn(async move {
            let incoming = frames(incoming);
            let outgoing = futures_util::sink::unfold(outgoing, |tx, frame: String| async move {
                tx.send(frame).map_err(|_| ())?;
                Ok::<_, ()>(tx)
            });
            realtime.serve(Some(&query), incoming, outgoing).await;
        });
        Self {
            to_server,
            from_server,
            server,
        }
    }

    pub(crate) fn send(&self, message: &Value) {
        self.to_server
            .send(message.to_string())
            .expect("the server reads");
    }

    /// The next answer (within 90 s, which tokio's paused clock also allows
    /// for a minute's keep-alive).
    pub(crate) async fn receive(&mut self) -> Value {
        let frame = tokio::time::timeout(Duration::from_secs(90), self.from_server.recv())
            .await
            .expect("an answer in time")
            .expect("the server is up");
        serde_json::from_str(&frame).expect("JSON")
    }

    /// Sends `connection_init` and checks AppSync's `connection_ack`.
    pub(crate) async fn init(&mut self) {
        self.send(&json!({"type": "connection_init"}));
        assert_eq!(
            self.receive().await,
            json!({"type": "connection_ack", "payload": {"connectionTimeoutMs": 300_000}})
        );
    }

    /// Starts subscription `id` to `query`, with the `authorization` headers
    /// `authorize` gives for the start's `data`.
    pub(crate) fn start(&self, id: &str, query: &str, authorize: impl FnOnce(&str) -> Value) {
        let data = json!({"query": query, "variables": {}}).to_string();
        let authorization = authorize(&data);
        self.send(&json!({"id": id, "type": "start",
            "payload": {"data": data, "extensions": {"authorization": authorization}}}));
    }
}

fn frames(mut receiver: mpsc::UnboundedReceiver<String>) -> impl Stream<Item = String> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

impl RealtimeClient {
    /// Checks that the next answers are `expected`, in order.
    pub(crate) async fn expect(&mut self, expected: &[Value]) {
        for message in expected {
            assert_eq!(&self.receive().await, message);
        }
    }
}

/// A response's status and JSON body.
pub(crate) async fn json_answer<B>(response: Response<B>) -> (StatusCode, Value)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON answer"),
    )
}

/// An HS256 ID token of `issuer` (audience `web`, ten minutes) in `groups`.
pub(crate) fn token(issuer: &str, secret: &str, groups: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({"iss": issuer, "sub": "u-1", "exp": now + 600, "iat": now,
        "token_use": "id", "aud": "web", "cognito:groups": groups});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

/// A Lambda-style TOKEN authorizer that admits the token `kiosk-7` only.
pub(crate) async fn kiosk_authorizer(
    event: portcullis_authorizer::AuthorizerEvent,
) -> Result<portcullis_authorizer::AuthorizerResponse, portcullis_authorizer::AuthorizerError> {
    use portcullis_authorizer::{AuthorizerError, AuthorizerResponse};
    if event.token() != Some("kiosk-7") {
        return Err(AuthorizerError::Unauthorized);
    }
    let policy = portcullis_iam::PolicyDocument::from_json(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}}"#,
    )
    .map_err(AuthorizerError::failed)?;
    Ok(AuthorizerResponse::new("kiosk-7", policy))
}
