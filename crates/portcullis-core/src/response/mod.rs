//! Gateway responses: how every Portcullis layer says "no".
//!
//! A layer that refuses a request builds a [`GatewayResponse`] (a
//! [`GatewayResponseType`] plus, where API Gateway gives one, a message of its
//! own and extra headers such as `Retry-After`) and renders it against the
//! request. Rendering follows API Gateway:
//!
//! - plain HTTP gets `{"message": "..."}` with `content-type: application/json`
//!   and `x-amzn-ErrorType`;
//! - a gRPC request (`content-type: application/grpc...`) gets the shape of
//!   tonic's `Status::into_http`: HTTP 200, `content-type: application/grpc`,
//!   `grpc-status` and a percent-encoded `grpc-message`;
//! - [`GatewayResponses`] overrides of status, headers and body template, placed
//!   in the request's context once by [`GatewayResponsesLayer`], apply to every
//!   layer's refusals.
//!
//! ```
//! use portcullis_core::response::{GatewayResponse, GatewayResponseType};
//!
//! let request = http::Request::new(());
//! let response = GatewayResponse::new(GatewayResponseType::Throttled)
//!     .with_header(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"))
//!     .render(&request);
//! assert_eq!(response.status(), 429);
//! assert_eq!(response.headers()["x-amzn-ErrorType"], "TooManyRequestsException");
//! assert_eq!(response.headers()["retry-after"], "1");
//! assert_eq!(response.body().as_ref(), br#"{"message":"Too Many Requests"}"#);
//! ```

mod grpc;
mod kind;
mod layer;
mod overrides;

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};

pub use grpc::{GrpcCode, is_grpc_request};
pub use kind::{GatewayResponseType, UnknownResponseType};
pub use layer::{GatewayResponsesLayer, GatewayResponsesService};
pub use overrides::{BodyTemplate, GatewayResponses, ResponseOverride, ResponseOverrideError};

use crate::body::ResponseBody;
use crate::context::{RequestContext, RequestContextExt};

/// The `x-amzn-ErrorType` header that API Gateway puts on its own responses.
pub const X_AMZN_ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// One refusal: a response type, and what this particular refusal adds to it.
///
/// Build it with [`GatewayResponse::new`] and the `with_*` methods, then
/// [`render`](GatewayResponse::render) it against the request being refused.
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct GatewayResponse {
    kind: GatewayResponseType,
    message: Option<Cow<'static, str>>,
    error_type: Option<Cow<'static, str>>,
    status: Option<StatusCode>,
    headers: HeaderMap,
    body: Option<(HeaderValue, Bytes)>,
}

impl GatewayResponse {
    /// A refusal of the given type, with that type's default status and message.
    pub fn new(kind: GatewayResponseType) -> Self {
        Self {
            kind,
            message: None,
            error_type: None,
            status: None,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// A refusal with a message of its own in place of the type's default, such
    /// as IAM's `User: ... is not authorized to perform: ...`.
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// A refusal with its own `x-amzn-ErrorType`, for the cases where API
    /// Gateway sends one that differs from its type's (for example
    /// `UnrecognizedClientException` for an unknown access key).
    pub fn with_error_type(mut self, error_type: impl Into<Cow<'static, str>>) -> Self {
        self.error_type = Some(error_type.into());
        self
    }

    /// A refusal with a status of its own, such as a WAF custom response code.
    /// It wins over the type's default and over any configured override.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds a header that survives rendering, such as `Retry-After`,
    /// `WWW-Authenticate` or a rate-limit header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Adds every header of `headers` (see [`with_header`](Self::with_header)).
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers.extend(headers);
        self
    }

    /// Replaces the JSON body with a body of its own, such as a WAF custom
    /// response body. It wins over any configured body template.
    pub fn with_body(mut self, content_type: HeaderValue, body: impl Into<Bytes>) -> Self {
        self.body = Some((content_type, body.into()));
        self
    }

    /// The response type.
    #[must_use]
    pub fn kind(&self) -> GatewayResponseType {
        self.kind
    }

    /// The message: this refusal's own, or the type's default.
    #[must_use]
    pub fn message(&self) -> &str {
        self.message
            .as_deref()
            .unwrap_or_else(|| self.kind.default_message())
    }

    /// The `x-amzn-ErrorType` value: this refusal's own, or the type's.
    #[must_use]
    pub fn error_type(&self) -> &str {
        self.error_type
            .as_deref()
            .unwrap_or_else(|| self.kind.error_type())
    }

    /// The extra headers this refusal carries.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Renders the refusal for `request`: as gRPC when the request is gRPC, and
    /// with the [`GatewayResponses`] overrides found in its
    /// [`RequestContext`].
    pub fn render<B>(&self, request: &Request<B>) -> Response<Bytes> {
        self.render_with(
            request
                .request_context()
                .and_then(RequestContext::gateway_responses),
            is_grpc_request(request.headers()),
        )
    }

    /// Renders the refusal for a request already split into parts.
    pub fn render_parts(&self, parts: &http::request::Parts) -> Response<Bytes> {
        self.render_with(
            parts
                .request_context()
                .and_then(RequestContext::gateway_responses),
            is_grpc_request(&parts.headers),
        )
    }

    /// Renders the refusal as a response whose body type fits a layer's
    /// response: [`ResponseBody::rejection`].
    pub fn into_response<ReqBody, ResBody>(
        self,
        request: &Request<ReqBody>,
    ) -> Response<ResponseBody<ResBody>> {
        self.render(request).map(ResponseBody::rejection)
    }

    /// Renders the refusal with explicit overrides, as plain HTTP or as gRPC.
    pub fn render_with(&self, overrides: Option<&GatewayResponses>, grpc: bool) -> Response<Bytes> {
        let own = overrides.and_then(|o| o.get(self.kind));
        let fallback = overrides.and_then(|o| o.get(self.kind.fallback()));
        let status = self
            .status
            .or_else(|| own.and_then(ResponseOverride::status))
            .unwrap_or_else(|| self.kind.default_status());
        let extra_headers = own
            .or(fallback)
            .map(ResponseOverride::headers)
            .into_iter()
            .flatten();

        let mut response = if grpc {
            grpc::render(GrpcCode::from_http_status(status), self.message())
        } else {
            let (content_type, body) = match (
                &self.body,
                own.or(fallback).and_then(ResponseOverride::template),
            ) {
                (Some((content_type, body)), _) => (content_type.clone(), body.clone()),
                (None, Some(template)) => (
                    template.content_type().clone(),
                    Bytes::from(template.render(self.kind, self.message())),
                ),
                (None, None) => (APPLICATION_JSON, default_body(self.message())),
            };
            let mut response = Response::new(body);
            *response.status_mut() = status;
            response.headers_mut().insert(CONTENT_TYPE, content_type);
            response
        };

        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(self.error_type()) {
            headers.insert(X_AMZN_ERROR_TYPE, value);
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        for (name, value) in extra_headers {
            headers.insert(name, value.clone());
        }
        response
    }
}

fn default_body(message: &str) -> Bytes {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        message: &'a str,
    }
    // Serialising a struct of one string field into a Vec cannot fail.
    serde_json::to_vec(&Body { message })
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(br#"{"message":null}"#))
}

impl fmt::Debug for GatewayResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayResponse")
            .field("kind", &self.kind)
            .field("message", &self.message())
            .field("error_type", &self.error_type())
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field(
                "custom_body",
                &self.body.as_ref().map(|(ct, b)| (ct, b.len())),
            )
            .finish()
    }
}

impl fmt::Display for GatewayResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message())
    }
}

impl From<GatewayResponseType> for GatewayResponse {
    fn from(kind: GatewayResponseType) -> Self {
        GatewayResponse::new(kind)
    }
}

/// Messages API Gateway uses that are not the default of a type.
pub mod messages {
    /// The message for an access key id no credential provider knows.
    pub const UNRECOGNIZED_CLIENT: &str = "The security token included in the request is invalid.";
    /// The `x-amzn-ErrorType` for an access key id no credential provider knows.
    pub const UNRECOGNIZED_CLIENT_ERROR_TYPE: &str = "UnrecognizedClientException";
    /// The `x-amzn-ErrorType` for a malformed SigV4 `Authorization` header.
    pub const INCOMPLETE_SIGNATURE_ERROR_TYPE: &str = "IncompleteSignatureException";
    /// The message of a Cognito authorizer for an expired token.
    pub const EXPIRED_USER_POOL_TOKEN: &str = "The incoming token has expired";
    /// The message of a custom authorizer's Deny.
    pub const AUTHORIZER_DENIED: &str = "User is not authorized to access this resource";

    /// IAM's refusal: `User: <principal> is not authorized to perform:
    /// execute-api:Invoke on resource: <resource>`, ending in ` with an explicit
    /// deny` when a Deny statement matched.
    #[must_use]
    pub fn iam_access_denied(
        principal_arn: &str,
        resource_arn: &str,
        explicit_deny: bool,
    ) -> String {
        let mut message = format!(
            "User: {principal_arn} is not authorized to perform: execute-api:Invoke on resource: {resource_arn}"
        );
        if explicit_deny {
            message.push_str(" with an explicit deny");
        }
        message
    }
}

#[cfg(test)]
mod tests;
