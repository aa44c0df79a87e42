//! [`AuthPolicy`]: an API's default mode and the rules of its types and
//! fields, and AppSync's decision for one field.

use std::collections::HashMap;
use std::sync::Arc;

use super::request_auth::RequestAuth;
use super::rule_set::Rules;
use crate::mode::AuthMode;

/// What decided a field: for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The field's own directives.
    Field,
    /// The directives on the type that holds the field.
    Type,
    /// No directive on either: only the default mode may read it.
    DefaultMode,
}

/// An API's authorization: its default mode, and the `@aws_*` directives
/// on its types and fields.
///
/// AppSync's rules:
/// - a field's directives override its type's;
/// - with no directive on either, only the default mode may read the field;
/// - once directives name modes, the default mode is not implied;
/// - groups must intersect the caller's `cognito:groups`.
///
/// ```
/// use portcullis_graphql::{AuthMode, AuthPolicy, RequestAuth};
///
/// let policy = AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, r#"
///     type Query {
///         searchFlights(from: String!, to: String!): [Flight] @aws_api_key @aws_cognito_user_pools
///         listBookings: [String] @aws_cognito_user_pools(cognito_groups: ["Admin"])
///         me: String
///     }
///     type Flight @aws_api_key @aws_cognito_user_pools { id: ID! }
/// "#).unwrap();
/// let key = RequestAuth::new(AuthMode::ApiKey);
/// assert!(policy.allows("Query", "searchFlights", &key));
/// assert!(policy.allows("Flight", "id", &key));
/// assert!(!policy.allows("Query", "listBookings", &key));
/// assert!(!policy.allows("Query", "me", &key)); // no directive: the default mode only
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPolicy {
    pub(super) default_mode: AuthMode,
    pub(super) types: HashMap<String, Rules>,
    pub(super) fields: HashMap<String, HashMap<String, Rules>>,
    pub(super) subscription_type: Option<String>,
}

impl AuthPolicy {
    /// A policy with no directive: only `default_mode` may read anything.
    #[must_use]
    pub fn new(default_mode: AuthMode) -> Self {
        Self {
            default_mode,
            types: HashMap::new(),
            fields: HashMap::new(),
            subscription_type: None,
        }
    }

    /// The directives on a type (code-first).
    #[must_use]
    pub fn type_rules(mut self, type_name: impl Into<String>, rules: Rules) -> Self {
        self.types.insert(type_name.into(), rules);
        self
    }

    /// The directives on a field (code-first).
    #[must_use]
    pub fn field_rules(
        mut self,
        type_name: impl Into<String>,
        field: impl Into<String>,
        rules: Rules,
    ) -> Self {
        self.fields
            .entry(type_name.into())
            .or_default()
            .insert(field.into(), rules);
        self
    }

    /// The API's default mode.
    #[must_use]
    pub fn default_mode(&self) -> AuthMode {
        self.default_mode
    }

    /// The subscription type's name, when the SDL's `schema { ... }` names
    /// one (async-graphql's SDL does when it is not `Subscription`).
    #[must_use]
    pub fn subscription_type(&self) -> Option<&str> {
        self.subscription_type.as_deref()
    }

    /// Names the subscription type (code-first policies whose subscription
    /// type is not called `Subscription`).
    #[must_use]
    pub fn with_subscription_type(mut self, name: impl Into<String>) -> Self {
        self.subscription_type = Some(name.into());
        self
    }

    /// The rules that decide `type_name.field`, and where they come from.
    /// [`Source::DefaultMode`] comes with rules naming the default mode only.
    #[must_use]
    pub fn effective_rules(&self, type_name: &str, field: &str) -> (Rules, Source) {
        if let Some(rules) = self.fields.get(type_name).and_then(|f| f.get(field)) {
            return (rules.clone(), Source::Field);
        }
        if let Some(rules) = self.types.get(type_name) {
            return (rules.clone(), Source::Type);
        }
        (Rules::new().allow(self.default_mode), Source::DefaultMode)
    }

    /// Whether `auth` may read `type_name.field`.
    #[must_use]
    pub fn allows(&self, type_name: &str, field: &str, auth: &RequestAuth) -> bool {
        if let Some(rules) = self.fields.get(type_name).and_then(|f| f.get(field)) {
            return rules.allows(auth);
        }
        if let Some(rules) = self.types.get(type_name) {
            return rules.allows(auth);
        }
        auth.mode() == self.default_mode
    }
}

/// A policy shared by the extension's per-request instances.
pub(crate) type SharedPolicy = Arc<AuthPolicy>;
