//! What one route requires of an authenticated caller: a token use, groups,
//! scopes, a predicate.

use std::fmt;
use std::sync::Arc;

use portcullis_core::context::Caller;
use serde::{Deserialize, Serialize};

use crate::claims::JwtClaims;
use crate::issuer::TokenUse;
use crate::reject::JwtRefusal;

/// Whether any one, or all, of a list must match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// At least one (API Gateway's rule for scopes).
    #[default]
    Any,
    /// Every one.
    All,
}

impl Match {
    fn check(self, required: &[String], held: impl Fn(&str) -> bool) -> bool {
        match self {
            Match::Any => required.iter().any(|r| held(r)),
            Match::All => required.iter().all(|r| held(r)),
        }
    }
}

type Predicate = Arc<dyn Fn(&Caller, &JwtClaims) -> bool + Send + Sync>;

/// The requirements of one route. Several requirements must all hold.
#[derive(Clone, Default)]
pub(crate) struct RoutePolicy {
    pub(crate) token_use: Option<TokenUse>,
    groups: Vec<(Match, Vec<String>)>,
    scopes: Vec<(Match, Vec<String>)>,
    predicates: Vec<Predicate>,
}

impl RoutePolicy {
    pub(crate) fn with_token_use(mut self, token_use: TokenUse) -> Self {
        self.token_use = Some(token_use);
        self
    }

    pub(crate) fn with_groups(mut self, how: Match, groups: Vec<String>) -> Self {
        self.groups.push((how, groups));
        self
    }

    pub(crate) fn with_scopes(mut self, how: Match, scopes: Vec<String>) -> Self {
        self.scopes.push((how, scopes));
        self
    }

    pub(crate) fn with_predicate(mut self, predicate: Predicate) -> Self {
        self.predicates.push(predicate);
        self
    }

    /// Checks an authenticated caller against the route.
    pub(crate) fn check(&self, caller: &Caller, claims: &JwtClaims) -> Result<(), JwtRefusal> {
        if let Some(token_use) = self.token_use
            && !claims.token_use().is_some_and(|t| token_use.accepts(t))
        {
            return Err(JwtRefusal::WrongTokenUse);
        }
        for (how, groups) in &self.groups {
            if !how.check(groups, |g| caller.in_group(g)) {
                return Err(JwtRefusal::MissingGroup);
            }
        }
        for (how, scopes) in &self.scopes {
            if !how.check(scopes, |s| caller.has_scope(s)) {
                return Err(JwtRefusal::MissingScope);
            }
        }
        if self.predicates.iter().any(|p| !p(caller, claims)) {
            return Err(JwtRefusal::PredicateFailed);
        }
        Ok(())
    }
}

impl fmt::Debug for RoutePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutePolicy")
            .field("token_use", &self.token_use)
            .field("groups", &self.groups)
            .field("scopes", &self.scopes)
            .field("predicates", &self.predicates.len())
            .finish()
    }
}
