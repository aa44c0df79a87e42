//! Why an exchange was refused, and the response for it.

use std::fmt;

use http::StatusCode;
use portcullis_core::refusal::Refusal;
use portcullis_core::{GatewayResponse, GatewayResponseType};
use portcullis_jwt::JwtRefusal;

/// Why the credentials service refused an exchange. Each variant renders as a
/// gateway response ([`ExchangeError::gateway_response`]); the credentials
/// service refuses through [`Refusal::into_response`], so the refused response
/// carries the `ExchangeError` in its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The method is not `POST`: 405, `Method Not Allowed`.
    MethodNotAllowed,
    /// The body is larger than the limit: REQUEST_TOO_LARGE (413).
    TooLarge,
    /// The body is not the JSON request, or could not be read:
    /// BAD_REQUEST_BODY (400).
    Malformed,
    /// More than one login: BAD_REQUEST_BODY (400); one token per request.
    TooManyLogins,
    /// The `IdentityPoolId` names another pool: RESOURCE_NOT_FOUND (404).
    WrongPool,
    /// The ID token was refused: UNAUTHORIZED (401), with `The incoming token
    /// has expired` for an expired one.
    Token(JwtRefusal),
    /// The login's provider name is not the token's issuer: UNAUTHORIZED
    /// (401).
    ProviderMismatch,
    /// The token has no `sub`: UNAUTHORIZED (401).
    NoSubject,
    /// The given `IdentityId` is not the one of these logins (or, for a
    /// guest, not one this pool issued): UNAUTHORIZED (401).
    IdentityMismatch,
    /// No token, and the pool takes no guests: UNAUTHORIZED (401),
    /// `Unauthenticated access is not supported for this identity pool.`
    GuestsNotAllowed,
    /// No role-mapping rule matched and the pool denies such identities:
    /// ACCESS_DENIED (403).
    NoRole,
    /// The token could not be sealed (the system's random source failed):
    /// API_CONFIGURATION_ERROR (500).
    Internal,
}

impl ExchangeError {
    /// A short, stable name for logs and metrics.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::TooManyLogins => "too_many_logins",
            Self::WrongPool => "wrong_pool",
            Self::Token(reason) => reason.as_str(),
            Self::ProviderMismatch => "provider_mismatch",
            Self::NoSubject => "no_subject",
            Self::IdentityMismatch => "identity_mismatch",
            Self::GuestsNotAllowed => "guests_not_allowed",
            Self::NoRole => "no_role",
            Self::Internal => "internal",
        }
    }

    /// The gateway response for this refusal.
    pub fn gateway_response(&self) -> GatewayResponse {
        match self {
            Self::MethodNotAllowed => GatewayResponse::new(GatewayResponseType::Default4xx)
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
                .with_message("Method Not Allowed"),
            Self::TooLarge => GatewayResponse::new(GatewayResponseType::RequestTooLarge),
            Self::Malformed => GatewayResponse::new(GatewayResponseType::BadRequestBody),
            Self::TooManyLogins => GatewayResponse::new(GatewayResponseType::BadRequestBody)
                .with_message("Only one login per request is supported"),
            Self::WrongPool => GatewayResponse::new(GatewayResponseType::ResourceNotFound)
                .with_message("IdentityPool not found"),
            Self::Token(JwtRefusal::Expired) => JwtRefusal::Expired.gateway_response(),
            Self::Token(_) | Self::ProviderMismatch | Self::NoSubject => {
                GatewayResponse::new(GatewayResponseType::Unauthorized)
            }
            Self::IdentityMismatch => GatewayResponse::new(GatewayResponseType::Unauthorized)
                .with_message("Invalid login token. Logins don't match the identity."),
            Self::GuestsNotAllowed => GatewayResponse::new(GatewayResponseType::Unauthorized)
                .with_message("Unauthenticated access is not supported for this identity pool."),
            Self::NoRole => GatewayResponse::new(GatewayResponseType::AccessDenied),
            Self::Internal => GatewayResponse::new(GatewayResponseType::ApiConfigurationError),
        }
    }
}

impl Refusal for ExchangeError {
    fn gateway_response(&self) -> GatewayResponse {
        ExchangeError::gateway_response(self)
    }

    fn detail(&self) -> &'static str {
        self.reason()
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let response = self.gateway_response();
        write!(f, "{}: {}", response.error_type(), response.message())
    }
}

impl std::error::Error for ExchangeError {}
