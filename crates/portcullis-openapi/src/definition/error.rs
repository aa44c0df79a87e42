//! Why a definition cannot be loaded, and the JSON pointers that say where.

/// Why a definition cannot be loaded. Every variant names the JSON pointer of
/// the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The bytes are neither JSON nor YAML, or too many of them.
    #[error("the definition cannot be read: {0}")]
    Syntax(String),
    /// An extension this crate neither applies nor ignores on purpose.
    #[error("{path}: the extension `{name}` is not supported")]
    UnsupportedExtension {
        /// The JSON pointer of the extension.
        path: String,
        /// The extension's name.
        name: String,
    },
    /// A value is missing or of the wrong shape.
    #[error("{path}: {reason}")]
    Invalid {
        /// The JSON pointer of the value.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

pub(super) fn invalid(path: &str, reason: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

pub(super) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
