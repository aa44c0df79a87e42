//! The pool: identity ids, role mapping, issuing and opening credentials.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::{hmac, rand};
use dashmap::DashMap;
use portcullis_core::clock::{SharedClock, SystemClock};
use portcullis_iam::PolicyDocument;
use portcullis_jwt::{JwtClaims, JwtLayer};
use portcullis_sigv4::{Credential, Secret};
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::config::{
    AmbiguousRoleResolution, IdentityPoolConfig, IdentityPoolConfigError, MAX_LIFETIME_SECONDS,
    MIN_LIFETIME_SECONDS, MatchType, RoleMappingRule, invalid, valid_key_id, valid_role_name,
};
use crate::error::ExchangeError;
use crate::token::{KeyRing, MIN_KEY_BYTES, PoolKey, SessionClaims};

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
    identity_key: hmac::Key,
    allow_unauthenticated: bool,
    lifetime: Duration,
    roles: HashMap<String, Arc<Role>>,
    authenticated_role: Arc<Role>,
    unauthenticated_role: Option<Arc<Role>>,
    rules: Vec<RoleMappingRule>,
    ambiguous: AmbiguousRoleResolution,
    jwt: Option<JwtLayer>,
    pub(crate) max_body_bytes: usize,
    pub(crate) clock: SharedClock,
    cache: DashMap<Box<str>, Arc<Credential>>,
    cache_entries: usize,
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

/// A Cognito-style identity pool: it exchanges a user-pool ID token (or
/// nothing, for a guest) for temporary credentials that
/// [`SigV4Layer`](portcullis_sigv4::SigV4Layer) accepts through
/// [`IdentityPool::provider`].
///
/// Cloning is cheap; every clone shares the same state.
#[derive(Clone, Debug)]
pub struct IdentityPool {
    pub(crate) shared: Arc<Shared>,
}

/// Builds an [`IdentityPool`] from its configuration.
#[derive(Debug)]
#[must_use]
pub struct IdentityPoolBuilder {
    config: IdentityPoolConfig,
    clock: Option<SharedClock>,
    jwt: Option<JwtLayer>,
}

impl IdentityPoolBuilder {
    /// Takes time from `clock` (a manual clock in tests). The pool's JWT
    /// verifier uses it too, unless one is given with [`jwt`](Self::jwt).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
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
    /// An [`IdentityPoolConfigError`] naming the bad field: no key, a short
    /// key, a bad key id, a lifetime outside 15 min..12 h, a role that is not
    /// declared, an invalid `jwt` table.
    pub fn build(self) -> Result<IdentityPool, IdentityPoolConfigError> {
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
                    .build()?,
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

/// Temporary credentials, as the credentials service returns them.
#[derive(Clone)]
pub struct IssuedCredentials {
    identity_id: String,
    access_key_id: String,
    secret_key: Secret,
    session_token: Secret,
    expiration: OffsetDateTime,
    principal_arn: String,
    role: Arc<str>,
}

impl IssuedCredentials {
    /// The identity id (`{region}:{uuid}`).
    #[must_use]
    pub fn identity_id(&self) -> &str {
        &self.identity_id
    }

    /// The access key id (`ASIA` and 16 base32 characters).
    #[must_use]
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key.
    #[must_use]
    pub fn secret_key(&self) -> &Secret {
        &self.secret_key
    }

    /// The session token, for `X-Amz-Security-Token`.
    #[must_use]
    pub fn session_token(&self) -> &Secret {
        &self.session_token
    }

    /// When the credentials expire.
    #[must_use]
    pub fn expiration(&self) -> OffsetDateTime {
        self.expiration
    }

    /// The principal the credentials authenticate:
    /// `arn:aws:sts::{account}:assumed-role/{role}/{identity-id}`.
    #[must_use]
    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    /// The role's name.
    #[must_use]
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The response body of the credentials service, in the shape of
    /// Cognito's GetCredentialsForIdentity: `{"IdentityId": ..,
    /// "Credentials": {"AccessKeyId", "SecretKey", "SessionToken",
    /// "Expiration"}}`, with `Expiration` in Unix seconds.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "IdentityId": self.identity_id,
            "Credentials": {
                "AccessKeyId": self.access_key_id,
                "SecretKey": self.secret_key.expose(),
                "SessionToken": self.session_token.expose(),
                "Expiration": self.expiration.unix_timestamp(),
            }
        })
        .to_string()
    }
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("identity_id", &self.identity_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &self.secret_key)
            .field("session_token", &self.session_token)
            .field("expiration", &self.expiration)
            .field("principal_arn", &self.principal_arn)
            .finish()
    }
}

/// The request body of the credentials service, in the shape of Cognito's
/// GetId / GetCredentialsForIdentity: `{"IdentityPoolId"?, "IdentityId"?,
/// "Logins"?: {"<provider>": "<id token>"}}`. Unknown fields (such as
/// `CustomRoleArn`) are ignored. An empty body is a guest with no identity id.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialsRequest {
    /// The pool, checked when the pool has an id.
    #[serde(default)]
    pub identity_pool_id: Option<String>,
    /// The identity id the client already has.
    #[serde(default)]
    pub identity_id: Option<String>,
    /// Provider name (the issuer without `https://`) → ID token. At most one.
    #[serde(default)]
    pub logins: BTreeMap<String, String>,
}

impl fmt::Debug for CredentialsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsRequest")
            .field("identity_pool_id", &self.identity_pool_id)
            .field("identity_id", &self.identity_id)
            .field("logins", &self.logins.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The most logins a request may name before it is refused unparsed further.
const MAX_LOGINS: usize = 1;

impl CredentialsRequest {
    /// Parses a request body of at most `max_bytes` bytes.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::TooLarge`] past the limit, [`ExchangeError::Malformed`]
    /// for anything but the JSON object, [`ExchangeError::TooManyLogins`].
    pub fn parse(body: &[u8], max_bytes: usize) -> Result<Self, ExchangeError> {
        if body.len() > max_bytes {
            return Err(ExchangeError::TooLarge);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let request: Self = serde_json::from_slice(body).map_err(|_| ExchangeError::Malformed)?;
        if request.logins.len() > MAX_LOGINS {
            return Err(ExchangeError::TooManyLogins);
        }
        Ok(request)
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `ASIA` and 16 base32 characters of 80 random bits, as STS's temporary
/// access key ids.
fn new_access_key_id() -> Option<String> {
    let mut bytes = [0u8; 10];
    rand::fill(&mut bytes).ok()?;
    let mut bits = bytes
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    let mut chars = [0u8; 16];
    for c in chars.iter_mut().rev() {
        *c = BASE32[(bits & 31) as usize];
        bits >>= 5;
    }
    let mut id = String::with_capacity(20);
    id.push_str("ASIA");
    id.extend(chars.iter().map(|&c| char::from(c)));
    Some(id)
}

/// Formats 16 bytes as a UUID, with version 8 (custom) and the RFC 9562
/// variant bits set.
fn uuid(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// Whether a claim's `value` matches a rule: see [`MatchType`] for the
/// semantics and their sources.
fn claim_matches(value: &Value, match_type: MatchType, expected: &str) -> bool {
    fn text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
        match value {
            Value::String(s) => Some(s.as_str().into()),
            Value::Number(_) | Value::Bool(_) => Some(value.to_string().into()),
            _ => None,
        }
    }
    // A claim is a set of values: an array's scalar elements, or one scalar.
    // Anything else (an object, null, an array of no scalars) has no value
    // and matches nothing, as a missing claim.
    let values: Vec<_> = match value {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        scalar => text(scalar).into_iter().collect(),
    };
    if values.is_empty() {
        return false;
    }
    match match_type {
        // `Contains` is membership, never a substring test: a group named
        // `xloyalty-adminsx` does not contain `loyalty-admins`.
        MatchType::Equals | MatchType::Contains => values.iter().any(|v| v == expected),
        MatchType::StartsWith => values.iter().any(|v| v.starts_with(expected)),
        MatchType::NotEqual => values.iter().all(|v| v != expected),
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
    pub fn from_config(config: IdentityPoolConfig) -> Result<Self, IdentityPoolConfigError> {
        Self::builder(config).build()
    }

    /// The region.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.shared.region
    }

    /// The stable identity id of (`issuer`, `subject`): the region and a UUID
    /// from HMAC-SHA256 under the pool's identity key.
    #[must_use]
    pub fn identity_id_for(&self, issuer: &str, subject: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.shared.identity_key);
        ctx.update(b"authenticated\0");
        ctx.update(issuer.as_bytes());
        ctx.update(b"\0");
        ctx.update(subject.as_bytes());
        let tag = ctx.sign();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag.as_ref()[..16]);
        format!("{}:{}", self.shared.region, uuid(bytes))
    }

    /// The MAC half of a guest identity id, from its random half.
    fn guest_mac(&self, random: &[u8]) -> [u8; 8] {
        let mut ctx = hmac::Context::with_key(&self.shared.identity_key);
        ctx.update(b"guest\0");
        ctx.update(random);
        let tag = ctx.sign();
        let mut mac = [0u8; 8];
        mac.copy_from_slice(&tag.as_ref()[..8]);
        mac[0] = (mac[0] & 0x3f) | 0x80;
        mac
    }

    /// A new guest identity id: 64 random bits and a MAC over them, so that
    /// any replica can tell its pool issued it, without storing it.
    fn new_guest_id(&self) -> Option<String> {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes[..8]).ok()?;
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        let mac = self.guest_mac(&bytes[..8]);
        bytes[8..].copy_from_slice(&mac);
        Some(format!("{}:{}", self.shared.region, uuid(bytes)))
    }

    /// Whether `identity_id` is a guest id this pool issued.
    fn is_guest_id(&self, identity_id: &str) -> bool {
        let Some((region, id)) = identity_id.split_once(':') else {
            return false;
        };
        let Some(bytes) = parse_uuid(id).filter(|_| region == self.shared.region) else {
            return false;
        };
        let mac = self.guest_mac(&bytes[..8]);
        bool::from(mac.ct_eq(&bytes[8..]))
    }

    /// The role a verified token maps to, by the rules in order.
    fn role_for(&self, claims: &JwtClaims) -> Result<Arc<Role>, ExchangeError> {
        let shared = &self.shared;
        for rule in &shared.rules {
            if claims
                .get(&rule.claim)
                .is_some_and(|value| claim_matches(value, rule.match_type, &rule.value))
            {
                // Validated at build time: every rule names a declared role.
                return shared
                    .roles
                    .get(&rule.role)
                    .cloned()
                    .ok_or(ExchangeError::NoRole);
            }
        }
        match shared.ambiguous {
            AmbiguousRoleResolution::AuthenticatedRole => Ok(shared.authenticated_role.clone()),
            AmbiguousRoleResolution::Deny => Err(ExchangeError::NoRole),
        }
    }

    fn principal_arn(&self, role: &str, identity_id: &str) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{role}/{identity_id}",
            self.shared.account_id
        )
    }

    fn issue(
        &self,
        identity_id: String,
        role: &Role,
        authenticated: bool,
    ) -> Result<IssuedCredentials, ExchangeError> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let expiration = (now + shared.lifetime).replace_nanosecond(0).unwrap_or(now);
        let access_key_id = new_access_key_id().ok_or(ExchangeError::Internal)?;
        let key = shared.keys.active();
        let claims = SessionClaims {
            access_key_id: access_key_id.clone(),
            identity_id,
            role: role.name.to_string(),
            expires_at: expiration.unix_timestamp(),
            authenticated,
        };
        let token = key.seal(&claims).ok_or(ExchangeError::Internal)?;
        let secret = key.secret_for(&access_key_id);
        Ok(IssuedCredentials {
            principal_arn: self.principal_arn(&role.name, &claims.identity_id),
            identity_id: claims.identity_id,
            access_key_id,
            secret_key: Secret::new(secret),
            session_token: Secret::new(token),
            expiration,
            role: role.name.clone(),
        })
    }

    /// Exchanges a request for credentials: the ID token of its one login
    /// for the mapped role, or nothing for the unauthenticated role.
    ///
    /// # Errors
    ///
    /// Why the exchange is refused (see [`ExchangeError`]).
    pub async fn get_credentials(
        &self,
        request: &CredentialsRequest,
    ) -> Result<IssuedCredentials, ExchangeError> {
        let shared = &self.shared;
        if let (Some(expected), Some(given)) = (&shared.pool_id, &request.identity_pool_id)
            && expected != given
        {
            return Err(ExchangeError::WrongPool);
        }
        if request.logins.len() > MAX_LOGINS {
            return Err(ExchangeError::TooManyLogins);
        }
        let Some((provider, token)) = request.logins.iter().next() else {
            return self.guest(request.identity_id.as_deref());
        };
        let jwt = shared.jwt.as_ref().ok_or(ExchangeError::Token(
            portcullis_jwt::RejectReason::UnknownIssuer,
        ))?;
        let verified = jwt.verify(token).await.map_err(ExchangeError::Token)?;
        let claims = verified.claims();
        let issuer = claims.issuer().unwrap_or_default();
        let bare = issuer
            .strip_prefix("https://")
            .or_else(|| issuer.strip_prefix("http://"))
            .unwrap_or(issuer);
        if provider != issuer && provider != bare {
            return Err(ExchangeError::ProviderMismatch);
        }
        let subject = claims
            .subject()
            .filter(|s| !s.is_empty())
            .ok_or(ExchangeError::NoSubject)?;
        let identity_id = self.identity_id_for(issuer, subject);
        if request
            .identity_id
            .as_deref()
            .is_some_and(|given| given != identity_id)
        {
            return Err(ExchangeError::IdentityMismatch);
        }
        let role = self.role_for(claims)?;
        self.issue(identity_id, &role, true)
    }

    fn guest(&self, identity_id: Option<&str>) -> Result<IssuedCredentials, ExchangeError> {
        let shared = &self.shared;
        let role = match (&shared.unauthenticated_role, shared.allow_unauthenticated) {
            (Some(role), true) => role.clone(),
            _ => return Err(ExchangeError::GuestsNotAllowed),
        };
        let identity_id = match identity_id {
            Some(id) if self.is_guest_id(id) => id.to_owned(),
            Some(_) => return Err(ExchangeError::IdentityMismatch),
            None => self.new_guest_id().ok_or(ExchangeError::Internal)?,
        };
        self.issue(identity_id, &role, false)
    }

    /// The credential behind `access_key_id` and `session_token`, opened from
    /// the token: `None` when the token does not open under a key of the
    /// pool, belongs to another access key id, or names a role the pool no
    /// longer has. Expiry is left to the SigV4 layer, which answers
    /// EXPIRED_TOKEN from the credential's `expires_at`.
    ///
    /// Opened tokens are cached by access key id (bounded); a hit costs a
    /// hash lookup and a constant-time comparison of the token.
    #[must_use]
    pub fn open(&self, access_key_id: &str, session_token: &str) -> Option<Arc<Credential>> {
        let shared = &self.shared;
        if shared.cache_entries > 0
            && let Some(hit) = shared.cache.get(access_key_id)
            && hit.session_token().is_some_and(|token| {
                // CRYPTO_memcmp: constant time, a word at a time.
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    token.expose().as_bytes(),
                    session_token.as_bytes(),
                )
                .is_ok()
            })
        {
            return Some(hit.clone());
        }
        let (key, claims) = shared.keys.open(session_token)?;
        if claims.access_key_id != access_key_id {
            return None;
        }
        let role = shared.roles.get(&claims.role)?;
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.expires_at).ok()?;
        let credential = Arc::new(
            Credential::new(
                claims.access_key_id.as_str(),
                key.secret_for(&claims.access_key_id),
                self.principal_arn(&role.name, &claims.identity_id),
            )
            .with_policies(role.policies.clone())
            .with_session_token(session_token, Some(expires_at)),
        );
        if shared.cache_entries > 0 {
            if shared.cache.len() >= shared.cache_entries {
                let now = shared.clock.now();
                shared
                    .cache
                    .retain(|_, c| c.expires_at().is_some_and(|e| e > now));
                if shared.cache.len() >= shared.cache_entries {
                    shared.cache.clear();
                }
            }
            shared
                .cache
                .insert(claims.access_key_id.into_boxed_str(), credential.clone());
        }
        Some(credential)
    }

    /// How many opened tokens the provider's cache holds now.
    #[must_use]
    pub fn cached_credentials(&self) -> usize {
        self.shared.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_key_ids_look_like_sts() {
        let id = new_access_key_id().expect("random");
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("ASIA"));
        assert!(id.bytes().all(|b| BASE32.contains(&b)));
        assert_ne!(id, new_access_key_id().expect("random"));
    }

    #[test]
    fn uuids_round_trip() {
        let text = uuid([0xab; 16]);
        assert_eq!(text, "abababab-abab-8bab-abab-abababababab");
        let parsed = parse_uuid(&text).expect("parses");
        assert_eq!(uuid(parsed), text);
        assert!(parse_uuid("abababab-abab-8bab-abab-ababababab").is_none());
        assert!(parse_uuid("abababab_abab-8bab-abab-abababababab").is_none());
    }

    #[test]
    fn claims_match_as_cognito_rules() {
        let groups = json!(["Admins", "Staff"]);
        assert!(claim_matches(&groups, MatchType::Contains, "Admins"));
        assert!(!claim_matches(&groups, MatchType::Contains, "Admin"));
        assert!(claim_matches(&groups, MatchType::StartsWith, "Sta"));
        assert!(claim_matches(&groups, MatchType::NotEqual, "Pilots"));
        assert!(!claim_matches(&groups, MatchType::NotEqual, "Staff"));
        let email = json!("ann@example.com");
        assert!(!claim_matches(&email, MatchType::Contains, "@example."));
        assert!(claim_matches(
            &email,
            MatchType::Contains,
            "ann@example.com"
        ));
        assert!(claim_matches(&email, MatchType::Equals, "ann@example.com"));
        assert!(!claim_matches(&email, MatchType::StartsWith, "bob"));
        assert!(claim_matches(&json!(true), MatchType::Equals, "true"));
        assert!(claim_matches(&json!(3), MatchType::NotEqual, "4"));
        assert!(!claim_matches(&json!({"a": 1}), MatchType::NotEqual, "x"));
        assert!(!claim_matches(&json!([]), MatchType::NotEqual, "x"));
        assert!(!claim_matches(&Value::Null, MatchType::NotEqual, "x"));
    }

    #[test]
    fn requests_parse_with_limits() {
        let body =
            br#"{"IdentityPoolId":"us-east-1:p","Logins":{"issuer.test":"t"},"CustomRoleArn":"x"}"#;
        let request = CredentialsRequest::parse(body, 1024).expect("parses");
        assert_eq!(request.logins["issuer.test"], "t");
        assert_eq!(
            CredentialsRequest::parse(body, 10).err(),
            Some(ExchangeError::TooLarge)
        );
        assert!(CredentialsRequest::parse(b"  ", 10).is_ok());
        assert_eq!(
            CredentialsRequest::parse(b"[1]", 10).err(),
            Some(ExchangeError::Malformed)
        );
        let two = br#"{"Logins":{"a":"t","b":"u"}}"#;
        assert_eq!(
            CredentialsRequest::parse(two, 1024).err(),
            Some(ExchangeError::TooManyLogins)
        );
        let debug = format!("{:?}", CredentialsRequest::parse(body, 1024).expect("ok"));
        assert!(!debug.contains("\"t\""), "{debug}");
    }
}
