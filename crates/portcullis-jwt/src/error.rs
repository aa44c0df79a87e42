//! Configuration errors: every one names the field at fault.

/// Why a [`JwtConfig`](crate::JwtConfig) or builder could not become a layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration is not valid JSON of the expected shape.
    #[error("invalid JWT configuration at `{path}`: {message}")]
    Parse {
        /// The path of the bad field, such as `issuers[0].algorithms[1]`.
        path: String,
        /// What was wrong with it.
        message: String,
    },
    /// No issuer is configured.
    #[error("invalid JWT configuration at `issuers`: at least one issuer is required")]
    NoIssuer,
    /// A field has a value that cannot work.
    #[error("invalid JWT configuration at `{field}`: {message}")]
    Invalid {
        /// The path of the bad field, such as `issuers[0].keys.jwks_url`.
        field: String,
        /// What was wrong with it.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The path of the field at fault.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Parse { path, .. } => path,
            ConfigError::NoIssuer => "issuers",
            ConfigError::Invalid { field, .. } => field,
        }
    }
}
