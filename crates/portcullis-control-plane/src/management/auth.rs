//! Who may call the management API: the principals' IAM policies, evaluated
//! for `apigateway:{METHOD}` on `arn:aws:apigateway:{region}::{path}`.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_iam::PolicyDocument;

/// The IAM policies of a principal, for the management API's authorization.
///
/// Implemented by [`PolicyMap`] and by any
/// `Fn(&str) -> Vec<Arc<PolicyDocument>>` closure (given the principal's
/// ARN). A principal with no policies is refused everything.
pub trait PrincipalPolicies: Send + Sync + 'static {
    /// The identity policies of the principal with this ARN.
    fn policies(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>>;
}

impl<F> PrincipalPolicies for F
where
    F: Fn(&str) -> Vec<Arc<PolicyDocument>> + Send + Sync + 'static,
{
    fn policies(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>> {
        self(principal_arn)
    }
}

/// Principal ARN → IAM policies: the IAM users of a gateway.
#[derive(Clone, Debug, Default)]
pub struct PolicyMap {
    map: HashMap<String, Vec<Arc<PolicyDocument>>>,
}

impl PolicyMap {
    /// An empty map: every caller is refused.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a policy of the principal with this ARN.
    #[must_use]
    pub fn with_policy(
        mut self,
        principal_arn: impl Into<String>,
        policy: impl Into<Arc<PolicyDocument>>,
    ) -> Self {
        self.insert(principal_arn, policy);
        self
    }

    /// Adds a policy of the principal with this ARN.
    pub fn insert(
        &mut self,
        principal_arn: impl Into<String>,
        policy: impl Into<Arc<PolicyDocument>>,
    ) {
        self.map
            .entry(principal_arn.into())
            .or_default()
            .push(policy.into());
    }
}

impl PrincipalPolicies for PolicyMap {
    fn policies(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>> {
        self.map.get(principal_arn).cloned().unwrap_or_default()
    }
}

#[derive(Clone)]
pub(super) enum Authorization {
    /// Evaluate `apigateway:*` policies for the caller.
    Iam(Arc<dyn PrincipalPolicies>),
    /// The layer in front authorized the request.
    InFront,
}
