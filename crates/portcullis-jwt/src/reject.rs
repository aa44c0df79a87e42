//! Why a token was refused, and how each refusal is answered.

use std::fmt;

use http::HeaderValue;
use http::header::WWW_AUTHENTICATE;
use portcullis_core::refusal::Refusal;
use portcullis_core::response::messages::EXPIRED_USER_POOL_TOKEN;
use portcullis_core::{GatewayResponse, GatewayResponseType};

/// Why the layer refused a request.
///
/// Every reason is answered as API Gateway's Cognito authorizer answers:
/// [`Forbidden`](JwtRefusal::is_forbidden) reasons (an authenticated caller
/// who lacks a group, a scope or the predicate) get ACCESS_DENIED (403) with
/// `WWW-Authenticate: Bearer error="insufficient_scope"`; an expired token gets
/// UNAUTHORIZED (401) `The incoming token has expired`; every other reason gets
/// UNAUTHORIZED (401) `Unauthorized`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtRefusal {
    /// No token where the layer looks for one.
    MissingToken,
    /// The token is longer than the configured limit; it was not parsed.
    TokenTooLarge,
    /// Not three base64url parts, or a header or payload that is not a JSON
    /// object of the expected shape.
    Malformed,
    /// `alg: none`.
    AlgorithmNone,
    /// An algorithm this layer does not implement.
    UnsupportedAlgorithm,
    /// An algorithm the issuer's allow-list does not hold.
    AlgorithmNotAllowed,
    /// A `crit` header parameter: no extension is understood, so any is refused.
    CriticalHeader,
    /// The `iss` claim names no configured issuer.
    UnknownIssuer,
    /// No key of the issuer has the token's `kid`, even after a refetch.
    UnknownKeyId,
    /// The key named by `kid` cannot verify the token's `alg` (key confusion).
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The issuer's keys could not be loaded yet (issuer unreachable at start).
    KeysUnavailable,
    /// `exp` is past.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `exp - iat` is longer than the configured maximum lifetime.
    LifetimeTooLong,
    /// A required claim (or `exp`) is missing or has the wrong type.
    MissingClaim,
    /// `aud` is not one of the configured audiences (or Cognito app clients).
    WrongAudience,
    /// The Cognito access token's `client_id` is not a configured app client.
    WrongClientId,
    /// `token_use` is not what the issuer or the route expects.
    WrongTokenUse,
    /// The caller is in none (or not all) of the required groups.
    MissingGroup,
    /// The caller lacks the required scopes.
    MissingScope,
    /// The route's predicate over the claims refused the caller.
    PredicateFailed,
}

impl JwtRefusal {
    /// A short snake_case name, used in logs and as the `reason` metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            JwtRefusal::MissingToken => "missing_token",
            JwtRefusal::TokenTooLarge => "token_too_large",
            JwtRefusal::Malformed => "malformed",
            JwtRefusal::AlgorithmNone => "alg_none",
            JwtRefusal::UnsupportedAlgorithm => "unsupported_alg",
            JwtRefusal::AlgorithmNotAllowed => "alg_not_allowed",
            JwtRefusal::CriticalHeader => "crit_header",
            JwtRefusal::UnknownIssuer => "unknown_issuer",
            JwtRefusal::UnknownKeyId => "unknown_kid",
            JwtRefusal::KeyAlgorithmMismatch => "key_alg_mismatch",
            JwtRefusal::BadSignature => "bad_signature",
            JwtRefusal::KeysUnavailable => "keys_unavailable",
            JwtRefusal::Expired => "expired",
            JwtRefusal::NotYetValid => "not_yet_valid",
            JwtRefusal::IssuedInFuture => "issued_in_future",
            JwtRefusal::LifetimeTooLong => "lifetime_too_long",
            JwtRefusal::MissingClaim => "missing_claim",
            JwtRefusal::WrongAudience => "wrong_audience",
            JwtRefusal::WrongClientId => "wrong_client_id",
            JwtRefusal::WrongTokenUse => "wrong_token_use",
            JwtRefusal::MissingGroup => "missing_group",
            JwtRefusal::MissingScope => "missing_scope",
            JwtRefusal::PredicateFailed => "predicate_failed",
        }
    }

    /// Whether the caller was authenticated but is not allowed (403), rather
    /// than not authenticated (401).
    #[must_use]
    pub const fn is_forbidden(self) -> bool {
        matches!(
            self,
            JwtRefusal::MissingGroup | JwtRefusal::MissingScope | JwtRefusal::PredicateFailed
        )
    }

    /// The gateway response for this reason (see the type's docs).
    pub fn gateway_response(self) -> GatewayResponse {
        match self {
            JwtRefusal::MissingToken => GatewayResponse::new(GatewayResponseType::Unauthorized)
                .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            JwtRefusal::Expired => GatewayResponse::new(GatewayResponseType::Unauthorized)
                .with_message(EXPIRED_USER_POOL_TOKEN)
                .with_header(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer error="invalid_token", error_description="The token has expired""#,
                    ),
                ),
            reason if reason.is_forbidden() => {
                GatewayResponse::new(GatewayResponseType::AccessDenied).with_header(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="insufficient_scope""#),
                )
            }
            _ => GatewayResponse::new(GatewayResponseType::Unauthorized).with_header(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            ),
        }
    }
}

/// The layer refuses through [`Refusal::into_response`], so the reason is in
/// the refused response's extensions.
impl Refusal for JwtRefusal {
    fn gateway_response(&self) -> GatewayResponse {
        JwtRefusal::gateway_response(*self)
    }

    fn detail(&self) -> &'static str {
        self.as_str()
    }
}

impl fmt::Display for JwtRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for JwtRefusal {}
