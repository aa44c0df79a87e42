//! [`ConfigError`]: the one error every Portcullis crate returns for a
//! configuration it cannot use.
//!
//! A configuration error names *where* the problem is (a dotted path into the
//! configuration, as a user would write it in the facade's YAML or in a layer's
//! serde config) and *what* is wrong with it. Each layer used to have its own
//! type for this one idea; they are all this type now, so an application that
//! assembles several layers handles one error, and the facade prefixes a
//! layer's paths with [`ConfigError::within`] instead of translating.
//!
//! ```
//! use portcullis_core::config::ConfigError;
//!
//! let error = ConfigError::new("issuer", "must be an https URL")
//!     .within("jwt")
//!     .within("layers");
//! assert_eq!(error.path(), "layers.jwt.issuer");
//! assert_eq!(error.message(), "must be an https URL");
//! assert_eq!(error.to_string(), "layers.jwt.issuer: must be an https URL");
//!
//! // An error about the configuration as a whole has an empty path.
//! assert_eq!(ConfigError::whole("no layer is enabled").to_string(), "no layer is enabled");
//! ```

use std::borrow::Cow;
use std::fmt;

/// A configuration that cannot be used: where, and why.
///
/// `path` is dotted (`usage_plans.gold.throttle.rate_limit`), with list
/// positions as `[n]` (`rules[3].statement`); it is empty when the error is
/// about the configuration as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// Where the problem is: a dotted path, or empty for the whole
    /// configuration.
    pub path: Cow<'static, str>,
    /// What is wrong, in words for the person who wrote the configuration.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An error about the configuration as a whole (an empty path).
    pub fn whole(message: impl Into<String>) -> Self {
        Self::new("", message)
    }

    /// The same error, seen from one level up: `parent` is put in front of
    /// the path (`"jwt"` turns `issuer` into `jwt.issuer`, and `rules[3]`
    /// turns `statement` into `rules[3].statement`).
    #[must_use]
    pub fn within(mut self, parent: impl AsRef<str>) -> Self {
        let parent = parent.as_ref();
        if parent.is_empty() {
            return self;
        }
        self.path = if self.path.is_empty() {
            Cow::Owned(parent.to_owned())
        } else if self.path.starts_with('[') {
            Cow::Owned(format!("{parent}{}", self.path))
        } else {
            Cow::Owned(format!("{parent}.{}", self.path))
        };
        self
    }

    /// Where the problem is (empty for the whole configuration).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::ConfigError;

    #[test]
    fn within_joins_fields_with_dots_and_list_positions_without() {
        let error = ConfigError::new("[2]", "bad").within("rules").within("acl");
        assert_eq!(error.path(), "acl.rules[2]");
        let error = ConfigError::whole("bad").within("acl");
        assert_eq!(error.path(), "acl");
        assert_eq!(ConfigError::new("a", "bad").within("").path(), "a");
    }
}
