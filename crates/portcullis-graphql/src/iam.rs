//! AppSync's per-field IAM authorization: in AWS_IAM mode, each top-level
//! field is an `appsync:GraphQL` action on its own resource ARN, allowed or
//! denied by the caller's IAM policies.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::config::ConfigError;
use portcullis_iam::{Decision, PolicyDocument, RequestContext};

use crate::mode::AuthMode;
use crate::rules::RequestAuth;

/// The IAM action AppSync authorizes a field with.
pub const APPSYNC_GRAPHQL: &str = "appsync:GraphQL";

/// The resource ARNs of one AppSync API's fields:
/// `arn:{partition}:appsync:{region}:{account}:apis/{apiId}/types/{Type}/fields/{field}`.
///
/// ```
/// use portcullis_graphql::GraphqlApiArn;
///
/// let api = GraphqlApiArn::new("us-east-1", "123456789012", "airlinegraphql")?;
/// assert_eq!(
///     api.field("Query", "flightStatus"),
///     "arn:aws:appsync:us-east-1:123456789012:apis/airlinegraphql/types/Query/fields/flightStatus"
/// );
/// assert!(GraphqlApiArn::new("us-east-1", "123456789012", "a/b").is_err());
/// # Ok::<(), portcullis_core::config::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphqlApiArn {
    /// `arn:aws:appsync:{region}:{account}:apis/{apiId}`.
    prefix: Box<str>,
}

impl GraphqlApiArn {
    /// The API `api_id` of `account_id` in `region`, in the `aws` partition.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] at the part (`partition`, `region`, `account_id` or
    /// `api_id`) that is empty or contains `:` or `/`.
    pub fn new(region: &str, account_id: &str, api_id: &str) -> Result<Self, ConfigError> {
        Self::in_partition("aws", region, account_id, api_id)
    }

    /// The same in another partition (`aws-cn`, `aws-us-gov`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] at the part (`partition`, `region`, `account_id` or
    /// `api_id`) that is empty or contains `:` or `/`.
    pub fn in_partition(
        partition: &str,
        region: &str,
        account_id: &str,
        api_id: &str,
    ) -> Result<Self, ConfigError> {
        for (field, value) in [
            ("partition", partition),
            ("region", region),
            ("account_id", account_id),
            ("api_id", api_id),
        ] {
            if value.is_empty() || value.contains([':', '/']) {
                return Err(ConfigError::new(
                    field,
                    "must be non-empty, without `:` or `/`",
                ));
            }
        }
        Ok(Self {
            prefix: format!("arn:{partition}:appsync:{region}:{account_id}:apis/{api_id}").into(),
        })
    }

    /// The API's ARN.
    #[must_use]
    pub fn api(&self) -> &str {
        &self.prefix
    }

    /// The ARN of `type_name.field`.
    #[must_use]
    pub fn field(&self, type_name: &str, field: &str) -> String {
        format!("{}/types/{type_name}/fields/{field}", self.prefix)
    }
}

/// Where [`FieldIam`] finds a principal's identity policies (by the
/// principal ARN the SigV4 layer established). Implemented for closures and
/// for a map from principal ARN to policies.
pub trait PrincipalPolicies: Send + Sync + 'static {
    /// The identity policies of `principal_arn` (none: every field is
    /// denied, IAM's default).
    fn policies_of(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>>;
}

impl<F> PrincipalPolicies for F
where
    F: Fn(&str) -> Vec<Arc<PolicyDocument>> + Send + Sync + 'static,
{
    fn policies_of(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>> {
        self(principal_arn)
    }
}

impl PrincipalPolicies for HashMap<String, Vec<Arc<PolicyDocument>>> {
    fn policies_of(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>> {
        self.get(principal_arn).cloned().unwrap_or_default()
    }
}

/// AppSync's per-field IAM authorization.
///
/// In AWS_IAM mode AppSync authorizes each top-level field (of the query,
/// mutation and subscription types) as the action `appsync:GraphQL` on
/// `arn:aws:appsync:{region}:{account}:apis/{apiId}/types/{Type}/fields/{field}`,
/// against the caller's IAM policies; nested fields are left to the
/// directives. Given to [`AppSyncDirectives::iam`](crate::AppSyncDirectives::iam),
/// a field the policies do not allow (no Allow, or an explicit Deny) is
/// `null` with AppSync's `Unauthorized` error, like a field its directives
/// deny. The `@aws_iam` directives are checked first: IAM decides only what
/// they let the AWS_IAM mode read.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use portcullis_core::context::{AuthMethod, Caller};
/// use portcullis_graphql::{AuthMode, FieldIam, GraphqlApiArn, RequestAuth};
/// use portcullis_iam::PolicyDocument;
///
/// let ops = PolicyDocument::from_json(r#"{"Version": "2012-10-17", "Statement": {
///     "Effect": "Allow", "Action": "appsync:GraphQL",
///     "Resource": "arn:aws:appsync:us-east-1:123456789012:apis/airline/types/Query/fields/flightStatus"}}"#)?;
/// let principal = "arn:aws:iam::123456789012:user/ops";
/// let policies = HashMap::from([(principal.to_owned(), vec![Arc::new(ops)])]);
/// let iam = FieldIam::new(GraphqlApiArn::new("us-east-1", "123456789012", "airline").unwrap(), policies);
///
/// let auth = RequestAuth::new(AuthMode::AwsIam).with_caller(Caller::new(principal, AuthMethod::Iam));
/// assert!(iam.allows("Query", "flightStatus", &auth));
/// assert!(!iam.allows("Query", "listBookings", &auth));
/// // Other modes are not IAM's to decide.
/// assert!(iam.allows("Query", "listBookings", &RequestAuth::new(AuthMode::ApiKey)));
/// # Ok::<(), portcullis_iam::PolicyDocumentError>(())
/// ```
#[derive(Clone)]
pub struct FieldIam {
    api: GraphqlApiArn,
    policies: Arc<dyn PrincipalPolicies>,
    clock: SharedClock,
}

impl fmt::Debug for FieldIam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldIam")
            .field("api", &self.api.api())
            .finish_non_exhaustive()
    }
}

impl FieldIam {
    /// Authorizes the top-level fields of `api` with the policies `policies`
    /// gives each principal.
    pub fn new(api: GraphqlApiArn, policies: impl PrincipalPolicies) -> Self {
        Self {
            api,
            policies: Arc::new(policies),
            clock: Arc::new(SystemClock),
        }
    }

    /// Takes `aws:CurrentTime` from `clock` (a manual clock in tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The API's ARNs.
    #[must_use]
    pub fn api(&self) -> &GraphqlApiArn {
        &self.api
    }

    /// The IAM decision for `auth` on the top-level field `type_name.field`.
    /// `None` when IAM does not decide: the request's mode is not AWS_IAM.
    /// An AWS_IAM request with no caller is denied.
    #[must_use]
    pub fn decide(&self, type_name: &str, field: &str, auth: &RequestAuth) -> Option<Decision> {
        if auth.mode() != AuthMode::AwsIam {
            return None;
        }
        let Some(caller) = auth.caller() else {
            return Some(Decision::ImplicitDeny);
        };
        let resource = self.api.field(type_name, field);
        let ctx = RequestContext::new(caller.principal(), resource.as_str())
            .with_action(APPSYNC_GRAPHQL)
            .with_current_time(self.clock.now());
        let policies = self.policies.policies_of(caller.principal());
        Some(portcullis_iam::evaluate(&policies, None, &ctx))
    }

    /// Whether `auth` may read the top-level field `type_name.field`: always
    /// for modes other than AWS_IAM, else when its policies allow it.
    #[must_use]
    pub fn allows(&self, type_name: &str, field: &str, auth: &RequestAuth) -> bool {
        self.decide(type_name, field, auth)
            .is_none_or(Decision::is_allowed)
    }
}
