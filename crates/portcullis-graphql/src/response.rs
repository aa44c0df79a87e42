//! AppSync's response shapes: GraphQL errors with a top-level `errorType`,
//! and the 401 a request without valid credentials gets.

use async_graphql::{Executor, Response, ServerError};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use portcullis_core::refusal::Refusal;
use portcullis_core::{GatewayResponse, GatewayResponseType};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value as Json, json};

use crate::mode::NoMode;
use crate::rules::RequestAuth;

/// AppSync's `errorType` for a request whose credentials are missing or bad.
pub const UNAUTHORIZED_EXCEPTION: &str = "UnauthorizedException";

/// AppSync's message for a request whose credentials are missing or bad.
pub const UNAUTHORIZED_MESSAGE: &str = "You are not authorized to make this call.";

/// The JSON body of AppSync's 401:
/// `{"errors": [{"errorType": "UnauthorizedException", "message": "You are not authorized to make this call."}]}`.
#[must_use]
pub fn unauthorized_body() -> Bytes {
    Bytes::from(
        json!({"errors": [{"errorType": UNAUTHORIZED_EXCEPTION, "message": UNAUTHORIZED_MESSAGE}]})
            .to_string(),
    )
}

/// AppSync's 401 for missing or bad credentials, with the body of
/// [`unauthorized_body`], `content-type: application/json` and
/// `x-amzn-ErrorType: UnauthorizedException`.
#[must_use]
pub fn unauthorized_response() -> http::Response<Bytes> {
    let mut response = http::Response::new(unauthorized_body());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_static(UNAUTHORIZED_EXCEPTION),
    );
    response
}

/// Why [`AppSyncAuthLayer`](crate::AppSyncAuthLayer) refused a request.
/// Every reason gets AppSync's 401 `UnauthorizedException`
/// ([`unauthorized_response`]); the refused response carries the reason in
/// its extensions, so an outer layer, a test or the application can tell
/// why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppSyncRefusal {
    /// The request carries no credentials an accepted mode takes.
    NoMode(NoMode),
    /// The selected mode has no layer.
    ModeNotConfigured,
    /// The mode's layer refused the credentials (with a 401 or 403 of its
    /// own).
    ModeRefused,
    /// The mode's layer let the request through without a caller (or, in
    /// API_KEY mode, without a key): the layer fails closed.
    NoCaller,
    /// The API key has expired
    /// ([`api_key_expires`](crate::AppSyncAuthLayer::api_key_expires)).
    ApiKeyExpired {
        /// The key's id.
        key_id: String,
    },
}

impl Refusal for AppSyncRefusal {
    fn gateway_response(&self) -> GatewayResponse {
        GatewayResponse::new(GatewayResponseType::Unauthorized)
            .with_status(StatusCode::UNAUTHORIZED)
            .with_error_type(UNAUTHORIZED_EXCEPTION)
            .with_message(UNAUTHORIZED_MESSAGE)
            .with_body(
                HeaderValue::from_static("application/json; charset=UTF-8"),
                unauthorized_body(),
            )
    }

    fn detail(&self) -> &'static str {
        match self {
            Self::NoMode(_) => "no_mode",
            Self::ModeNotConfigured => "mode_not_configured",
            Self::ModeRefused => "mode_refused",
            Self::NoCaller => "no_caller",
            Self::ApiKeyExpired { .. } => "api_key_expired",
        }
    }
}

/// A GraphQL response as AppSync writes it: `data`, then `errors`, each
/// error with `path`, `data`, `errorType`, `errorInfo`, `locations` (with
/// `sourceName`) and `message`. An error's `errorType`, `data` and
/// `errorInfo` come from its extensions of those names (AppSync's
/// `$util.error(message, errorType, data, errorInfo)`); other extensions stay
/// under `extensions`.
#[derive(Debug)]
pub struct AppSyncResponse(pub Response);

impl From<Response> for AppSyncResponse {
    fn from(response: Response) -> Self {
        Self(response)
    }
}

impl AppSyncResponse {
    /// The response as JSON.
    #[must_use]
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

impl Serialize for AppSyncResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = &self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("data", &response.data)?;
        if !response.errors.is_empty() {
            let errors: Vec<Json> = response.errors.iter().map(appsync_error).collect();
            map.serialize_entry("errors", &errors)?;
        }
        if !response.extensions.is_empty() {
            map.serialize_entry("extensions", &response.extensions)?;
        }
        map.end()
    }
}

pub(crate) fn appsync_error(error: &ServerError) -> Json {
    let mut extensions = error
        .extensions
        .as_ref()
        .and_then(|e| serde_json::to_value(e).ok())
        .and_then(|v| match v {
            Json::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    let path = if error.path.is_empty() {
        Json::Null
    } else {
        serde_json::to_value(&error.path).unwrap_or(Json::Null)
    };
    let locations: Vec<Json> = error
        .locations
        .iter()
        .map(|pos| json!({"line": pos.line, "column": pos.column, "sourceName": null}))
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("path".to_owned(), path);
    out.insert(
        "data".to_owned(),
        extensions.remove("data").unwrap_or(Json::Null),
    );
    if let Some(error_type) = extensions.remove("errorType") {
        out.insert("errorType".to_owned(), error_type);
    }
    out.insert(
        "errorInfo".to_owned(),
        extensions.remove("errorInfo").unwrap_or(Json::Null),
    );
    out.insert("locations".to_owned(), Json::Array(locations));
    out.insert("message".to_owned(), Json::String(error.message.clone()));
    if !extensions.is_empty() {
        out.insert("extensions".to_owned(), Json::Object(extensions));
    }
    Json::Object(out)
}

/// Executes `request` on `executor` (an async-graphql `Schema` or dynamic
/// `Schema`) for the caller `auth` found in the HTTP request's extensions
/// (`None` when no [`AppSyncAuthLayer`](crate::AppSyncAuthLayer) ran: then
/// every field is denied), and shapes the answer as AppSync does.
pub async fn execute<E: Executor>(
    executor: &E,
    request: async_graphql::Request,
    auth: Option<RequestAuth>,
) -> AppSyncResponse {
    let request = match auth {
        Some(auth) => request.data(auth),
        None => request,
    };
    AppSyncResponse(executor.execute(request).await)
}
