//! Errors of loading a policy.

/// Why a policy document was refused at load time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyDocumentError {
    /// The document is larger than the limit, so it was not parsed.
    #[error("policy document is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The document's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The document is not JSON.
    #[error("policy document is not valid JSON: {0}")]
    Json(String),
    /// The document is JSON but not a valid policy.
    #[error("invalid policy at `{path}`: {message}")]
    Invalid {
        /// The path of the bad field, such as `Statement[1].Condition.IpAddress.aws:SourceIp`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl PolicyDocumentError {
    /// The path of the bad field, for [`PolicyDocumentError::Invalid`].
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        match self {
            PolicyDocumentError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}
