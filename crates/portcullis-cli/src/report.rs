//! A command's answer, and the failures that end in exit 2.

use serde_json::{Value, json};

/// A command's answer: JSON and an exit code (0 or 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// 0 (valid) or 1 (refused).
    pub code: u8,
    /// What is printed.
    pub output: Value,
}

impl Report {
    /// A success (exit 0).
    #[must_use]
    pub fn ok(output: Value) -> Self {
        Self { code: 0, output }
    }

    /// A refusal (exit 1).
    #[must_use]
    pub fn refused(output: Value) -> Self {
        Self { code: 1, output }
    }
}

/// A usage, input or I/O error (exit 2).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// A short kind: `usage`, `io`, `bad_request`, `load_error`, ...
    pub error: String,
    /// What went wrong.
    pub message: String,
    /// More fields merged into the JSON (a load error's `path`).
    pub extra: Value,
}

impl Failure {
    /// A failure of this kind.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
            extra: Value::Null,
        }
    }

    /// Adds fields to the JSON.
    #[must_use]
    pub fn with(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }

    /// The JSON printed.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut value = json!({"error": self.error, "message": self.message});
        if let (Some(map), Value::Object(extra)) = (value.as_object_mut(), &self.extra) {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        value
    }
}

impl From<std::convert::Infallible> for Failure {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
