//! [`Rules`]: the modes (and groups) one type or field allows.

use std::collections::{BTreeMap, BTreeSet};

use super::request_auth::RequestAuth;
use crate::mode::AuthMode;

/// The modes (and, for Cognito user pools, the groups) one type or field
/// allows: the `@aws_*` directives on it.
///
/// ```
/// use portcullis_graphql::{AuthMode, Rules};
///
/// // @aws_api_key @aws_cognito_user_pools(cognito_groups: ["Admin"])
/// let rules = Rules::new()
///     .allow(AuthMode::ApiKey)
///     .allow_groups(["Admin"]);
/// assert!(rules.names(AuthMode::ApiKey));
/// assert!(!rules.names(AuthMode::AwsIam));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Per mode: the groups required (empty: any caller of the mode).
    pub(super) modes: BTreeMap<AuthMode, BTreeSet<String>>,
}

impl Rules {
    /// No directive.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `mode` (`@aws_api_key`, `@aws_iam`, `@aws_oidc`, `@aws_lambda`,
    /// `@aws_cognito_user_pools`).
    #[must_use]
    pub fn allow(mut self, mode: AuthMode) -> Self {
        self.modes.entry(mode).or_default();
        self
    }

    /// Allows Cognito user-pool callers in any of `groups`
    /// (`@aws_cognito_user_pools(cognito_groups: [...])` or
    /// `@aws_auth(cognito_groups: [...])`). Several group directives on one
    /// type or field add up, as in Amplify's simulator.
    #[must_use]
    pub fn allow_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.modes
            .entry(AuthMode::AmazonCognitoUserPools)
            .or_default()
            .extend(groups.into_iter().map(Into::into));
        self
    }

    /// Whether no directive is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.modes.is_empty()
    }

    /// Whether the rules name `mode`.
    #[must_use]
    pub fn names(&self, mode: AuthMode) -> bool {
        self.modes.contains_key(&mode)
    }

    /// The groups required of `mode`'s callers (empty: any).
    #[must_use]
    pub fn groups(&self, mode: AuthMode) -> Option<&BTreeSet<String>> {
        self.modes.get(&mode)
    }

    /// Whether `auth` passes these rules: its mode is named, and, when groups
    /// are named for it, the caller is in one of them.
    #[must_use]
    pub fn allows(&self, auth: &RequestAuth) -> bool {
        match self.modes.get(&auth.mode()) {
            None => false,
            Some(groups) if groups.is_empty() => true,
            Some(groups) => auth.in_any_group(groups),
        }
    }
}
