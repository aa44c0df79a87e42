//! The state every clone of a pool shares.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use dashmap::DashMap;
use portcullis_core::clock::SharedClock;
use portcullis_iam::PolicyDocument;
use portcullis_jwt::JwtLayer;
use portcullis_sigv4::Credential;

use crate::config::{AmbiguousRoleResolution, RoleMappingRule};
use crate::token::KeyRing;

/// One role: its name and policies.
#[derive(Debug)]
pub(crate) struct Role {
    pub(crate) name: Arc<str>,
    pub(crate) policies: Vec<Arc<PolicyDocument>>,
}

pub(crate) struct Shared {
    pub(crate) pool_id: Option<String>,
    pub(crate) region: String,
    pub(crate) account_id: String,
    pub(crate) keys: KeyRing,
    pub(super) identity_key: hmac::Key,
    pub(super) allow_unauthenticated: bool,
    pub(super) lifetime: Duration,
    pub(super) roles: HashMap<String, Arc<Role>>,
    pub(super) authenticated_role: Arc<Role>,
    pub(super) unauthenticated_role: Option<Arc<Role>>,
    pub(super) rules: Vec<RoleMappingRule>,
    pub(super) ambiguous: AmbiguousRoleResolution,
    pub(super) jwt: Option<JwtLayer>,
    pub(crate) max_body_bytes: usize,
    pub(crate) clock: SharedClock,
    pub(super) cache: DashMap<Box<str>, Arc<Credential>>,
    pub(super) cache_entries: usize,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityPool")
            .field("pool_id", &self.pool_id)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("keys", &self.keys)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("lifetime", &self.lifetime)
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .field("authenticated_role", &self.authenticated_role.name)
            .field(
                "unauthenticated_role",
                &self.unauthenticated_role.as_ref().map(|r| &r.name),
            )
            .field("rules", &self.rules)
            .field("ambiguous", &self.ambiguous)
            .field("cached_credentials", &self.cache.len())
            .finish_non_exhaustive()
    }
}
