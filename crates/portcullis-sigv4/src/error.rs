//! Why the layer refused a request, and the API Gateway response for it.

use std::borrow::Cow;
use std::fmt;

use portcullis_core::path::PathRefusal;
use portcullis_core::refusal::Refusal;
use portcullis_core::response::messages;
use portcullis_core::{GatewayResponse, GatewayResponseType};

/// Why a request was refused. Each variant renders as the gateway response
/// API Gateway sends for it ([`SigV4Error::gateway_response`]); the layer
/// refuses through [`Refusal::into_response`], so the refused response carries
/// the `SigV4Error` in its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigV4Error {
    /// No signature at all: MISSING_AUTHENTICATION_TOKEN (403).
    MissingAuthenticationToken,
    /// A malformed `Authorization` header or presigned query: 403
    /// `IncompleteSignatureException` with AWS's message.
    IncompleteSignature(Cow<'static, str>),
    /// The credential scope names another date, region or service, or the
    /// date is malformed: 403 `InvalidSignatureException` with AWS's message.
    InvalidScope(String),
    /// An access key id no provider knows, or a session token that does not
    /// belong to it: 403 `UnrecognizedClientException`, `The security token
    /// included in the request is invalid.`
    UnrecognizedClient,
    /// Temporary credentials past their expiry: EXPIRED_TOKEN (403).
    ExpiredToken,
    /// The signature does not match: INVALID_SIGNATURE (403). With debugging
    /// on, the message adds the canonical request and string to sign.
    SignatureDoesNotMatch {
        /// AWS's debugging text, when the layer's debug mode is on.
        debug: Option<String>,
    },
    /// The body does not hash to the signed `x-amz-content-sha256`:
    /// INVALID_SIGNATURE (403).
    PayloadHashMismatch,
    /// The signature is older than the allowed clock skew, or than its
    /// `X-Amz-Expires`: 403 `InvalidSignatureException`, `Signature expired:
    /// ...`.
    SignatureExpired(String),
    /// The signature is dated after now plus the allowed clock skew: 403
    /// `InvalidSignatureException`, `Signature not yet current: ...`.
    SignatureNotYetCurrent(String),
    /// The body is larger than the layer's limit: REQUEST_TOO_LARGE (413).
    RequestTooLarge,
    /// The body must be read before the signature can be verified, and the
    /// bytes the layer buffers across all its in-flight requests are at their
    /// limit: THROTTLED (429, `TooManyRequestsException`), which clients
    /// retry with backoff, as they do API Gateway's own throttling.
    BodyBufferFull,
    /// The body could not be read: BAD_REQUEST_BODY (400).
    BodyRead,
    /// The credential provider failed: AUTHORIZER_FAILURE (500).
    CredentialProvider,
    /// The request path has no canonical form, so it names no resource a
    /// policy could be evaluated against: see
    /// [`portcullis_core::path`] for the rules and the response.
    NonCanonicalPath(PathRefusal),
    /// The principal's policies do not allow `execute-api:Invoke` on the
    /// resource: ACCESS_DENIED (403) with IAM's message.
    AccessDenied {
        /// The caller.
        principal_arn: String,
        /// The execute-api ARN of the request.
        resource_arn: String,
        /// Whether a Deny statement matched.
        explicit_deny: bool,
    },
}

impl SigV4Error {
    /// A short, stable name for logs and metrics.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "missing_authentication_token",
            Self::IncompleteSignature(_) => "incomplete_signature",
            Self::InvalidScope(_) => "invalid_scope",
            Self::UnrecognizedClient => "unrecognized_client",
            Self::ExpiredToken => "expired_token",
            Self::SignatureDoesNotMatch { .. } => "signature_mismatch",
            Self::PayloadHashMismatch => "payload_hash_mismatch",
            Self::SignatureExpired(_) => "signature_expired",
            Self::SignatureNotYetCurrent(_) => "signature_not_yet_current",
            Self::RequestTooLarge => "request_too_large",
            Self::BodyBufferFull => "body_buffer_full",
            Self::BodyRead => "body_read_error",
            Self::CredentialProvider => "credential_provider_error",
            Self::NonCanonicalPath(_) => "non_canonical_path",
            Self::AccessDenied {
                explicit_deny: true,
                ..
            } => "explicit_deny",
            Self::AccessDenied { .. } => "implicit_deny",
        }
    }

    /// The gateway response API Gateway sends for this refusal.
    pub fn gateway_response(&self) -> GatewayResponse {
        const INVALID_SIGNATURE_EXCEPTION: &str = "InvalidSignatureException";
        match self {
            Self::MissingAuthenticationToken => {
                GatewayResponse::new(GatewayResponseType::MissingAuthenticationToken)
            }
            Self::IncompleteSignature(message) => {
                GatewayResponse::new(GatewayResponseType::InvalidSignature)
                    .with_error_type(messages::INCOMPLETE_SIGNATURE_ERROR_TYPE)
                    .with_message(message.clone())
            }
            Self::InvalidScope(message)
            | Self::SignatureExpired(message)
            | Self::SignatureNotYetCurrent(message) => {
                GatewayResponse::new(GatewayResponseType::InvalidSignature)
                    .with_error_type(INVALID_SIGNATURE_EXCEPTION)
                    .with_message(message.clone())
            }
            Self::UnrecognizedClient => GatewayResponse::new(GatewayResponseType::InvalidSignature)
                .with_error_type(messages::UNRECOGNIZED_CLIENT_ERROR_TYPE)
                .with_message(messages::UNRECOGNIZED_CLIENT),
            Self::ExpiredToken => GatewayResponse::new(GatewayResponseType::ExpiredToken),
            Self::SignatureDoesNotMatch { debug: None } | Self::PayloadHashMismatch => {
                GatewayResponse::new(GatewayResponseType::InvalidSignature)
            }
            Self::SignatureDoesNotMatch { debug: Some(debug) } => {
                let kind = GatewayResponseType::InvalidSignature;
                GatewayResponse::new(kind)
                    .with_message(format!("{}\n\n{debug}", kind.default_message()))
            }
            Self::RequestTooLarge => GatewayResponse::new(GatewayResponseType::RequestTooLarge),
            Self::BodyBufferFull => GatewayResponse::new(GatewayResponseType::Throttled),
            Self::BodyRead => GatewayResponse::new(GatewayResponseType::BadRequestBody),
            Self::CredentialProvider => {
                GatewayResponse::new(GatewayResponseType::AuthorizerFailure)
            }
            Self::NonCanonicalPath(refusal) => refusal.gateway_response(),
            Self::AccessDenied {
                principal_arn,
                resource_arn,
                explicit_deny,
            } => GatewayResponse::new(GatewayResponseType::AccessDenied).with_message(
                messages::iam_access_denied(principal_arn, resource_arn, *explicit_deny),
            ),
        }
    }
}

impl Refusal for SigV4Error {
    fn gateway_response(&self) -> GatewayResponse {
        SigV4Error::gateway_response(self)
    }

    fn detail(&self) -> &'static str {
        self.reason()
    }
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let response = self.gateway_response();
        write!(f, "{}: {}", response.error_type(), response.message())
    }
}

impl std::error::Error for SigV4Error {}
