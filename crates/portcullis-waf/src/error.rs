//! Load errors: a configuration that does not fit ([`ConfigError`], with the
//! JSON path of the fault), text that is not JSON, or a geolocation
//! database that cannot be read.

use std::fmt;

use portcullis_core::config::ConfigError;

/// Why a web ACL (or a rule group, IP set, regex pattern set or geolocation
/// database) did not load.
///
/// A document that is JSON but does not fit is a [`LoadError::Config`]: a
/// [`ConfigError`] whose path is the JSON path of the fault, in the form
/// `Rules[3].Statement.AndStatement.Statements[1]`. A fault inside a rule
/// group, IP set or regex pattern set that the web ACL refers to is named by
/// the path of the statement that refers to it, followed by the path inside
/// that document (`Rules[0].Statement.IPSetReferenceStatement.Addresses[1]`).
///
/// ```
/// use portcullis_waf::{AclSources, LoadError};
///
/// let acl = r#"{"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
///   {"Name": "r", "Priority": "one", "Action": {"Block": {}}, "Statement": {}}]}"#;
/// let Err(LoadError::Config(error)) = AclSources::from_json(acl) else {
///     panic!("a priority that is not a number does not load");
/// };
/// assert_eq!(error.path(), "Rules[0].Priority");
///
/// let Err(LoadError::Json { document, .. }) = AclSources::from_json("{") else {
///     panic!("text that is not JSON does not load");
/// };
/// assert_eq!(document, "web ACL");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// The document is JSON but does not fit: a field of the wrong type or
    /// value, a value out of AWS's bounds or inconsistent with another, a
    /// statement, field or action this engine does not support, or an ARN
    /// that names no supplied set or group.
    Config(ConfigError),
    /// The text is not JSON at all.
    Json {
        /// `web ACL`, `rule group`, `IP set` or `regex pattern set`.
        document: String,
        /// serde_json's message, with the line and column.
        message: String,
    },
    /// A geolocation database file could not be read.
    Io {
        /// `MaxMind database <path>`.
        source: String,
        /// The I/O error.
        message: String,
    },
    /// Bytes that are not a MaxMind database.
    Database {
        /// `MaxMind database <path>`, or `MaxMind database` for bytes.
        source: String,
        /// The reader's message.
        message: String,
    },
}

impl LoadError {
    /// A configuration error at `path` (a JSON path).
    pub(crate) fn config(path: &str, message: impl Into<String>) -> Self {
        Self::Config(ConfigError::new(path.to_owned(), message))
    }

    /// The error serde reports for JSON that does not fit the model: its
    /// JSON path and message.
    pub(crate) fn from_json(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = error.path().to_string();
        let path = if path == "." { "" } else { path.as_str() };
        Self::config(path, error.inner().to_string())
    }

    /// The configuration error, when the document did not fit.
    #[must_use]
    pub fn as_config(&self) -> Option<&ConfigError> {
        match self {
            Self::Config(error) => Some(error),
            _ => None,
        }
    }
}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(error) => error.fmt(f),
            Self::Json { document, message } => write!(f, "{document}: {message}"),
            Self::Io { source, message } => write!(f, "{source}: {message}"),
            Self::Database { source, message } => write!(f, "{source}: {message}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(error) => Some(error),
            _ => None,
        }
    }
}
