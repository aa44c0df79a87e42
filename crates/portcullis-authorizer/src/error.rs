//! Why an authorizer gave no answer.

/// Why an authorizer gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizerError {
    /// The caller is not authenticated: API Gateway's `"Unauthorized"`,
    /// answered with 401 UNAUTHORIZED.
    #[error("Unauthorized")]
    Unauthorized,
    /// The authorizer's answer was not a valid answer: 500
    /// AUTHORIZER_FAILURE.
    #[error("malformed authorizer answer: {0}")]
    Malformed(String),
    /// The authorizer failed (an error, a timeout, an unreachable endpoint):
    /// 500 AUTHORIZER_FAILURE.
    #[error("authorizer failed: {0}")]
    Failed(String),
}

impl AuthorizerError {
    /// A failure with this reason.
    pub fn failed(reason: impl std::fmt::Display) -> Self {
        AuthorizerError::Failed(reason.to_string())
    }

    /// A short name for logs and metrics.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthorizerError::Unauthorized => "unauthorized",
            AuthorizerError::Malformed(_) => "malformed",
            AuthorizerError::Failed(_) => "failed",
        }
    }
}
