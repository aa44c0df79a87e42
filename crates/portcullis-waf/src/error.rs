//! Load errors, each with the JSON path of the fault.

use std::fmt;

/// Why a web ACL (or a rule group, IP set or regex pattern set) did not load.
///
/// Every error names the document and the JSON path inside it, in the form
/// `Rules[3].Statement.AndStatement.Statements[1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadError {
    /// `web ACL`, or `rule group <ARN>`, `IP set <ARN>`, ...
    pub document: String,
    /// The JSON path of the fault (empty for the document itself).
    pub path: String,
    /// What is wrong.
    pub kind: LoadErrorKind,
    /// A human-readable explanation.
    pub message: String,
}

/// The kind of a [`LoadError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The JSON is malformed or a field has the wrong type or value.
    Syntax,
    /// A value is out of AWS's bounds or inconsistent.
    Invalid,
    /// A statement, field or action this engine does not support.
    Unsupported,
    /// An ARN names no supplied set or group.
    UnresolvedReference,
}

impl LoadError {
    pub(crate) fn new(
        document: &str,
        path: &str,
        kind: LoadErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            document: document.to_owned(),
            path: path.to_owned(),
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn from_json(
        document: &str,
        error: serde_path_to_error::Error<serde_json::Error>,
    ) -> Self {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Self::new(
            document,
            &path,
            LoadErrorKind::Syntax,
            error.inner().to_string(),
        )
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.document, self.message)
        } else {
            write!(f, "{} at {}: {}", self.document, self.path, self.message)
        }
    }
}

impl std::error::Error for LoadError {}
