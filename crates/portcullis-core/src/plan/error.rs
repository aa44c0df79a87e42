//! Why a plan, or a part of one, is invalid.

/// Why a usage plan, or a part of one, is invalid. The message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
#[non_exhaustive]
pub struct PlanError {
    /// The field at fault, such as `burst_limit`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl PlanError {
    pub(super) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
