//! Why a store operation failed, in the terms API Gateway answers with.

/// Why a control-plane operation failed.
///
/// Each variant maps onto the exception API Gateway's management API answers
/// with ([`error_type`](Self::error_type)), so the management API can render
/// it as `{"message": ...}` with `x-amzn-ErrorType`. No message carries an
/// API key's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named thing does not exist (NotFoundException, 404).
    #[error("Invalid {what} identifier specified")]
    NotFound {
        /// What was looked for: `API Key`, `Usage Plan`, `Usage Plan Key`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The input is invalid (BadRequestException, 400). Nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    /// The change clashes with stored state (ConflictException, 409), such as
    /// adding a key to a plan twice or a duplicate key value. Nothing was
    /// changed.
    #[error("{0}")]
    Conflict(String),
    /// A configured limit would be exceeded (LimitExceededException, 429).
    /// Nothing was changed.
    #[error("{0}")]
    LimitExceeded(String),
    /// The backend is known to be unreachable (a circuit breaker is open):
    /// the call was not sent, so nothing was changed
    /// (ServiceUnavailableException, 503).
    #[error("control-plane store unavailable: {0}")]
    Unavailable(String),
    /// The backend could not be reached or did not answer in time (a
    /// dropped connection, a timeout): it is down or overloaded, and whether
    /// the change was made is unknown (ServiceUnavailableException, 503).
    /// Retrying later is the remedy, as for [`Unavailable`](Self::Unavailable).
    #[error("control-plane store unreachable: {0}")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend failed (I/O, a corrupt database, a lost task). Whether the
    /// change was made is unknown for this variant and for
    /// [`Unreachable`](Self::Unreachable).
    #[error("control-plane store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// The exception name API Gateway answers with, for `x-amzn-ErrorType`.
    #[must_use]
    pub fn error_type(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "NotFoundException",
            StoreError::BadRequest(_) => "BadRequestException",
            StoreError::Conflict(_) => "ConflictException",
            StoreError::LimitExceeded(_) => "LimitExceededException",
            StoreError::Unavailable(_) | StoreError::Unreachable(_) => {
                "ServiceUnavailableException"
            }
            StoreError::Backend(_) => "InternalFailure",
        }
    }

    /// The HTTP status API Gateway answers with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            StoreError::NotFound { .. } => 404,
            StoreError::BadRequest(_) => 400,
            StoreError::Conflict(_) => 409,
            StoreError::LimitExceeded(_) => 429,
            StoreError::Unavailable(_) | StoreError::Unreachable(_) => 503,
            StoreError::Backend(_) => 500,
        }
    }

    pub(crate) fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        StoreError::BadRequest(message.into())
    }
}
