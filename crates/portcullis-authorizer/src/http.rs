//! An authorizer behind an HTTP endpoint: the event is POSTed as JSON, the
//! answer read back.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::authorizer::Authorizer;
use crate::error::AuthorizerError;
use crate::event::{AuthorizerEvent, AuthorizerResponse};

/// The default timeout of an HTTP authorizer call: 10 seconds.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read from an HTTP authorizer: 256 KiB.
pub const MAX_HTTP_ANSWER_BYTES: usize = 256 * 1024;

/// Runs an existing Lambda authorizer's logic behind any HTTP endpoint: the
/// [`AuthorizerEvent`] is POSTed as JSON to a URL, and the
/// [`AuthorizerResponse`] read from the answer.
///
/// | the endpoint answers | becomes |
/// |---|---|
/// | 2xx with an authorizer answer | that answer |
/// | 401, or a body of `"Unauthorized"` or `{"errorMessage":"Unauthorized"}` (Lambda's error shape) | [`AuthorizerError::Unauthorized`] (401) |
/// | any other status, malformed JSON, a connection error, or no answer within the timeout | [`AuthorizerError::Failed`] / [`Malformed`](AuthorizerError::Malformed) (500 AUTHORIZER_FAILURE) |
///
/// The client is hyper-util's pooled HTTP/1.1 client over plain TCP
/// (`http://` URLs): it is the client hyper's own stack offers, so the
/// layer adds no HTTP client of a different lineage. Reach an `https://`
/// authorizer through a local TLS-originating proxy or sidecar.
#[derive(Clone)]
pub struct HttpAuthorizer {
    uri: Uri,
    timeout: Duration,
    headers: HeaderMap,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpAuthorizer {
    /// An authorizer at `uri` (`http://host:port/path`), with a 10 s timeout.
    pub fn new(uri: Uri) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            uri,
            timeout: DEFAULT_HTTP_TIMEOUT,
            headers: HeaderMap::new(),
            client,
        }
    }

    /// The timeout of one call, connection included.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A header sent with every call, such as a shared secret the endpoint
    /// checks. `Debug` does not show header values.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    async fn call(&self, event: AuthorizerEvent) -> Result<AuthorizerResponse, AuthorizerError> {
        let body = serde_json::to_vec(&event).map_err(AuthorizerError::failed)?;
        let mut request = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::from(body)))
            .map_err(AuthorizerError::failed)?;
        request.headers_mut().extend(self.headers.clone());
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| AuthorizerError::failed(format!("calling the authorizer: {e}")))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_HTTP_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| AuthorizerError::failed(format!("reading the authorizer's answer: {e}")))?
            .to_bytes();
        interpret(status, &body)
    }
}

/// What an endpoint's answer means.
fn interpret(status: StatusCode, body: &[u8]) -> Result<AuthorizerResponse, AuthorizerError> {
    if status == StatusCode::UNAUTHORIZED || says_unauthorized(body) {
        return Err(AuthorizerError::Unauthorized);
    }
    if !status.is_success() {
        return Err(AuthorizerError::failed(format!(
            "the authorizer answered {status}"
        )));
    }
    AuthorizerResponse::from_slice(body)
}

fn says_unauthorized(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Plain(String),
        Lambda {
            #[serde(rename = "errorMessage")]
            error_message: String,
        },
    }
    let trimmed = body.trim_ascii();
    trimmed == b"Unauthorized"
        || matches!(
            serde_json::from_slice::<Shape>(trimmed),
            Ok(Shape::Plain(m) | Shape::Lambda { error_message: m }) if m == "Unauthorized"
        )
}

impl Authorizer for HttpAuthorizer {
    async fn authorize(
        &self,
        event: AuthorizerEvent,
    ) -> Result<AuthorizerResponse, AuthorizerError> {
        match tokio::time::timeout(self.timeout, self.call(event)).await {
            Ok(result) => result,
            Err(_) => Err(AuthorizerError::failed(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

impl fmt::Debug for HttpAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuthorizer")
            .field("uri", &self.uri)
            .field("timeout", &self.timeout)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_shapes() {
        assert!(says_unauthorized(br#""Unauthorized""#));
        assert!(says_unauthorized(b"Unauthorized\n"));
        assert!(says_unauthorized(
            br#"{"errorMessage":"Unauthorized","errorType":"Error"}"#
        ));
        assert!(!says_unauthorized(br#"{"errorMessage":"boom"}"#));
        assert!(matches!(
            interpret(StatusCode::UNAUTHORIZED, b""),
            Err(AuthorizerError::Unauthorized)
        ));
        assert!(matches!(
            interpret(StatusCode::INTERNAL_SERVER_ERROR, b"{}"),
            Err(AuthorizerError::Failed(_))
        ));
        assert!(matches!(
            interpret(StatusCode::OK, b"{not json"),
            Err(AuthorizerError::Malformed(_))
        ));
    }
}
