//! Building a pool from its configuration, checked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use dashmap::DashMap;
use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::config::ConfigError;
use portcullis_jwt::JwtLayer;

use crate::config::{
    IdentityPoolConfig, MAX_LIFETIME_SECONDS, MIN_LIFETIME_SECONDS, invalid, valid_key_id,
    valid_role_name,
};
use crate::token::{KeyRing, MIN_KEY_BYTES, PoolKey};

use super::exchange::IdentityPool;
use super::shared::{Role, Shared};

/// Builds an [`IdentityPool`] from its configuration.
#[derive(Debug)]
#[must_use]
pub struct IdentityPoolBuilder {
    pub(super) config: IdentityPoolConfig,
    pub(super) clock: Option<SharedClock>,
    pub(super) jwt: Option<JwtLayer>,
}

impl IdentityPoolBuilder {
    /// Takes time from `clock` (a manual clock in tests). The pool's JWT
    /// verifier uses it too, unless one is given with [`jwt`](Self::jwt).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Verifies tokens with `layer` instead of one built from the
    /// configuration's `jwt` table.
    pub fn jwt(mut self, layer: JwtLayer) -> Self {
        self.jwt = Some(layer);
        self
    }

    /// Builds the pool.
    ///
    /// # Errors
    ///
    /// An [`ConfigError`] naming the bad field: no key, a short
    /// key, a bad key id, a lifetime outside 15 min..12 h, a role that is not
    /// declared, an invalid `jwt` table.
    pub fn build(self) -> Result<IdentityPool, ConfigError> {
        let config = self.config;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        if config.region.is_empty()
            || config.region.len() > 32
            || !config
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid("region", "must be a region name such as us-east-1"));
        }
        if config.account_id.len() != 12 || !config.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("account_id", "must be 12 digits"));
        }
        if !(MIN_LIFETIME_SECONDS..=MAX_LIFETIME_SECONDS)
            .contains(&config.credential_lifetime_seconds)
        {
            return Err(invalid(
                "credential_lifetime_seconds",
                "must be from 900 (15 minutes) to 43200 (12 hours)",
            ));
        }
        if config.keys.is_empty() {
            return Err(invalid("keys", "must hold at least one key"));
        }
        let mut keys = Vec::with_capacity(config.keys.len());
        for (i, key) in config.keys.iter().enumerate() {
            if !valid_key_id(&key.id) {
                return Err(invalid(
                    format!("keys[{i}].id"),
                    "must be 1 to 32 of A-Za-z0-9_-",
                ));
            }
            if config.keys[..i].iter().any(|k| k.id == key.id) {
                return Err(invalid(format!("keys[{i}].id"), "is given twice"));
            }
            if key.secret.len() < MIN_KEY_BYTES {
                return Err(invalid(
                    format!("keys[{i}].secret"),
                    "must be at least 32 bytes",
                ));
            }
            keys.push(PoolKey::new(&key.id, key.secret.as_bytes()));
        }
        let active = match &config.active_key {
            None => keys.len() - 1,
            Some(id) => keys
                .iter()
                .position(|k| k.id() == id)
                .ok_or_else(|| invalid("active_key", "names no key of `keys`"))?,
        };
        let identity_material = match &config.identity_key {
            Some(key) if key.len() < MIN_KEY_BYTES => {
                return Err(invalid("identity_key", "must be at least 32 bytes"));
            }
            Some(key) => key.clone(),
            None => format!(
                "portcullis-identity-pool:{}",
                config.pool_id.as_deref().unwrap_or(&config.region)
            ),
        };
        let identity_key = hmac::Key::new(hmac::HMAC_SHA256, identity_material.as_bytes());

        let mut roles = HashMap::with_capacity(config.roles.len());
        for (name, role) in &config.roles {
            if !valid_role_name(name) {
                return Err(invalid(
                    format!("roles.{name}"),
                    "must be an IAM role name: 1 to 64 of A-Za-z0-9+=,.@_-",
                ));
            }
            roles.insert(
                name.clone(),
                Arc::new(Role {
                    name: name.as_str().into(),
                    policies: role.policies.iter().cloned().map(Arc::new).collect(),
                }),
            );
        }
        let role = |path: String, name: &str| {
            roles
                .get(name)
                .cloned()
                .ok_or_else(|| invalid(path, "names no role of `roles`"))
        };
        let authenticated_role = role("authenticated_role".into(), &config.authenticated_role)?;
        let unauthenticated_role = match &config.unauthenticated_role {
            Some(name) => Some(role("unauthenticated_role".into(), name)?),
            None => None,
        };
        if config.allow_unauthenticated && unauthenticated_role.is_none() {
            return Err(invalid(
                "unauthenticated_role",
                "is required when allow_unauthenticated is true",
            ));
        }
        for (i, rule) in config.role_mappings.iter().enumerate() {
            role(format!("role_mappings[{i}].role"), &rule.role)?;
            if rule.claim.is_empty() {
                return Err(invalid(
                    format!("role_mappings[{i}].claim"),
                    "must not be empty",
                ));
            }
        }

        let jwt = match self.jwt {
            Some(layer) => Some(layer),
            None if config.jwt.issuers.is_empty() => None,
            None => Some(
                JwtLayer::builder()
                    .max_token_bytes(config.jwt.max_token_bytes)
                    .cache(config.jwt.cache.clone())
                    .clock(clock.clone())
                    .issuers(config.jwt.issuers.iter().cloned())
                    .build()
                    .map_err(|e| e.within("jwt"))?,
            ),
        };
        let jwt = match (jwt, config.token_use) {
            (Some(layer), Some(token_use)) => Some(layer.token_use(token_use)),
            (jwt, _) => jwt,
        };

        Ok(IdentityPool {
            shared: Arc::new(Shared {
                pool_id: config.pool_id,
                region: config.region,
                account_id: config.account_id,
                keys: KeyRing::new(keys, active),
                identity_key,
                allow_unauthenticated: config.allow_unauthenticated,
                lifetime: Duration::from_secs(config.credential_lifetime_seconds),
                roles,
                authenticated_role,
                unauthenticated_role,
                rules: config.role_mappings,
                ambiguous: config.ambiguous_role_resolution,
                jwt,
                max_body_bytes: config.max_body_bytes,
                clock,
                cache: DashMap::new(),
                cache_entries: config.cache_entries,
            }),
        })
    }
}

trait IssuersExt {
    fn issuers(self, issuers: impl Iterator<Item = portcullis_jwt::Issuer>) -> Self;
}

impl IssuersExt for portcullis_jwt::JwtLayerBuilder {
    fn issuers(self, issuers: impl Iterator<Item = portcullis_jwt::Issuer>) -> Self {
        issuers.fold(self, portcullis_jwt::JwtLayerBuilder::issuer)
    }
}

impl IdentityPool {
    /// Starts building a pool from `config`.
    pub fn builder(config: IdentityPoolConfig) -> IdentityPoolBuilder {
        IdentityPoolBuilder {
            config,
            clock: None,
            jwt: None,
        }
    }

    /// Builds a pool from `config` with the system clock.
    ///
    /// # Errors
    ///
    /// See [`IdentityPoolBuilder::build`].
    pub fn from_config(config: IdentityPoolConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }
}
