//! [`RequestAuth`]: who made a GraphQL request, and by which mode.

use std::collections::BTreeSet;

use portcullis_core::context::{ApiKeyContext, Caller};
use serde_json::Value as Json;

use crate::mode::AuthMode;

/// Who made a GraphQL request, and by which mode: what the
/// [`AppSyncAuthLayer`](crate::AppSyncAuthLayer) leaves in the request's
/// extensions, and what the [`AppSyncDirectives`](crate::AppSyncDirectives)
/// extension reads from the GraphQL request's data.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestAuth {
    mode: AuthMode,
    caller: Option<Caller>,
    api_key: Option<ApiKeyContext>,
}

impl RequestAuth {
    /// A request authorized by `mode`.
    #[must_use]
    pub fn new(mode: AuthMode) -> Self {
        Self {
            mode,
            caller: None,
            api_key: None,
        }
    }

    /// Sets the caller the mode's layer established.
    #[must_use]
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = Some(caller);
        self
    }

    /// Sets the API key the API-key layer accepted.
    #[must_use]
    pub fn with_api_key(mut self, key: ApiKeyContext) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The mode that authorized the request.
    #[must_use]
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The caller (IAM principal, token subject, authorizer principal), when
    /// the mode has one.
    #[must_use]
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// The API key, in API_KEY mode.
    #[must_use]
    pub fn api_key(&self) -> Option<&ApiKeyContext> {
        self.api_key.as_ref()
    }

    /// Whether the caller is in any of `groups`: the caller's groups (the
    /// JWT layer reads `cognito:groups`), or else the token's
    /// `cognito:groups` claim.
    #[must_use]
    pub fn in_any_group(&self, groups: &BTreeSet<String>) -> bool {
        let Some(caller) = &self.caller else {
            return false;
        };
        if !caller.groups().is_empty() {
            return caller.groups().iter().any(|g| groups.contains(g));
        }
        match caller.claim("cognito:groups") {
            Some(Json::Array(items)) => items
                .iter()
                .any(|g| g.as_str().is_some_and(|g| groups.contains(g))),
            Some(Json::String(one)) => groups.contains(one),
            _ => false,
        }
    }
}
