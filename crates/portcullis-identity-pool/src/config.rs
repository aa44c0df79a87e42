//! The serde form of an identity pool: what the facade's `[identity_pool]`
//! table holds.

use std::collections::BTreeMap;
use std::fmt;

use portcullis_core::config::ConfigError;
use portcullis_iam::PolicyDocument;
use portcullis_jwt::{JwtConfig, TokenUse};
use serde::{Deserialize, Serialize};

/// The default credential lifetime: one hour, as Cognito's.
pub const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
/// The shortest credential lifetime accepted: 15 minutes.
pub const MIN_LIFETIME_SECONDS: u64 = 900;
/// The longest credential lifetime accepted: 12 hours.
pub const MAX_LIFETIME_SECONDS: u64 = 43_200;

/// An identity pool.
///
/// ```toml
/// region = "us-east-1"
/// account_id = "123456789012"
/// allow_unauthenticated = true
/// credential_lifetime_seconds = 3600
/// authenticated_role = "LoyaltyUser"
/// unauthenticated_role = "LoyaltyGuest"
/// identity_key = "a secret of 32 bytes or more, kept as long as the pool"
///
/// [[keys]]
/// id = "2026-11"
/// secret = "a secret of 32 bytes or more, rotated by adding a key"
///
/// [roles.LoyaltyUser]
/// policies = [{ Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "execute-api:Invoke", Resource = "*" }] }]
///
/// [[role_mappings]]
/// claim = "cognito:groups"
/// match_type = "Contains"
/// value = "Admins"
/// role = "LoyaltyAdmin"
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityPoolConfig {
    /// The identity pool id (`{region}:{uuid}`), checked against a request's
    /// `IdentityPoolId` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    /// The region: the prefix of every identity id.
    pub region: String,
    /// The 12-digit account id of the role and principal ARNs.
    pub account_id: String,
    /// The keys that seal session tokens and derive secret keys. Every key
    /// opens the tokens sealed under its id; remove a key to retire it.
    pub keys: Vec<PoolKeyConfig>,
    /// The id of the key that seals new tokens (default: the last key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_key: Option<String>,
    /// The key of the hash that turns (issuer, subject) into an identity id,
    /// and that marks guest identity ids. Keep it for the pool's life: a new
    /// one gives every user a new identity id. Default: derived from the pool
    /// id (or region), which anyone can compute; set it so that identity ids
    /// cannot be linked to subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key: Option<String>,
    /// Whether guests (no token) get credentials for the unauthenticated
    /// role.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// How long issued credentials last, 900 to 43,200 seconds (default
    /// 3,600).
    #[serde(default = "default_lifetime")]
    pub credential_lifetime_seconds: u64,
    /// The roles, by name (IAM role names: 1 to 64 of `A-Za-z0-9+=,.@_-`).
    pub roles: BTreeMap<String, RoleConfig>,
    /// The role of a signed-in identity that no mapping rule picks.
    pub authenticated_role: String,
    /// The role of guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthenticated_role: Option<String>,
    /// Rules over the token's claims, tried in order; the first match picks
    /// the role.
    #[serde(default)]
    pub role_mappings: Vec<RoleMappingRule>,
    /// What happens when no rule matches (default: the authenticated role).
    #[serde(default)]
    pub ambiguous_role_resolution: AmbiguousRoleResolution,
    /// The user pools (or OIDC issuers) whose ID tokens the pool takes.
    #[serde(default)]
    pub jwt: JwtConfig,
    /// Which `token_use` the pool takes (default: any verified token; set
    /// `"id"` to take only Cognito ID tokens, as Cognito identity pools do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<TokenUse>,
    /// Request bodies larger than this are refused before parsing (default
    /// 16 KiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How many opened session tokens the credential provider keeps (default
    /// 10,000; 0 turns the cache off).
    #[serde(default = "default_cache")]
    pub cache_entries: usize,
}

const fn default_lifetime() -> u64 {
    DEFAULT_LIFETIME_SECONDS
}

const fn default_max_body() -> usize {
    16 * 1024
}

const fn default_cache() -> usize {
    10_000
}

impl fmt::Debug for IdentityPoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityPoolConfig")
            .field("pool_id", &self.pool_id)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("keys", &self.keys)
            .field("active_key", &self.active_key)
            .field(
                "identity_key",
                &self.identity_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field(
                "credential_lifetime_seconds",
                &self.credential_lifetime_seconds,
            )
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .field("authenticated_role", &self.authenticated_role)
            .field("unauthenticated_role", &self.unauthenticated_role)
            .field("role_mappings", &self.role_mappings)
            .field("ambiguous_role_resolution", &self.ambiguous_role_resolution)
            .field("jwt", &self.jwt)
            .field("token_use", &self.token_use)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("cache_entries", &self.cache_entries)
            .finish()
    }
}

/// One pool key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolKeyConfig {
    /// The key id written into each token: 1 to 32 of `A-Za-z0-9_-`.
    pub id: String,
    /// The key material: at least 32 bytes (`openssl rand -base64 32`).
    pub secret: String,
}

impl fmt::Debug for PoolKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolKeyConfig")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One role: its IAM policies.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The identity policies of whoever assumes the role.
    #[serde(default)]
    pub policies: Vec<PolicyDocument>,
}

/// A role-mapping rule, as Cognito's `MappingRule`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMappingRule {
    /// The claim to read, such as `cognito:groups`.
    pub claim: String,
    /// How its value is compared.
    pub match_type: MatchType,
    /// The value compared with.
    pub value: String,
    /// The role picked when the rule matches.
    pub role: String,
}

/// How a rule compares a claim with its value.
///
/// A claim is read as a set of values: a JSON array (such as Cognito's
/// `cognito:groups`) is the set of its string, number and boolean elements; a
/// string, number or boolean is a set of one. Numbers and booleans are
/// compared in their JSON text (`3`, `true`). Comparisons are exact and
/// case-sensitive.
///
/// | match type | matches when | `["Staff","loyalty-admins"]` | `"xloyalty-adminsx"` |
/// |---|---|---|---|
/// | `Equals` | a value equals `value` | `loyalty-admins`: yes | `loyalty-admins`: no |
/// | `Contains` | a value equals `value` (membership) | `loyalty-admins`: yes | `loyalty-admins`: no |
/// | `StartsWith` | a value starts with `value` | `loyalty-`: yes | `loyalty-`: no |
/// | `NotEqual` | no value equals `value` | `Pilots`: yes | `loyalty-admins`: yes |
///
/// A missing claim, and one with no value (`null`, an object, `[]`), matches
/// nothing, not even `NotEqual`.
///
/// # Sources, and where this is stricter than a literal reading
///
/// Cognito's API reference says only that `MatchType` is "the match condition
/// that specifies how closely the claim value in the IdP token must match
/// `Value`", with the values `Equals | Contains | StartsWith | NotEqual`
/// (<https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_MappingRule.html>);
/// the CDK's `RoleMappingMatchType` says `CONTAINS` means "the claim from the
/// token must contain the given value"
/// (<https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_cognito_identitypool.RoleMappingMatchType.html>).
/// The developer guide's "Using rule-based mapping to assign roles to users"
/// (<https://docs.aws.amazon.com/cognito/latest/developerguide/role-based-access-control.html>)
/// adds that rules are tried in order, the first match wins, and "if the
/// match type is `NotEqual` and the claim doesn't exist, the rule is not
/// evaluated"; it lists `cognito:groups` among the claims rules may use,
/// which the ID token carries as "an array of the names of user pool groups
/// that have your user as a member"
/// (<https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-id-token.html>).
/// None of these says what `Contains` does to a string claim.
///
/// Portcullis reads `Contains` as membership, for arrays and strings alike,
/// and never as a substring test: a rule that grants a role must not match
/// `xloyalty-adminsx`, `not-loyalty-admins` or `loyalty-admins-revoked` when
/// it names `loyalty-admins`. The same guide warns that a claim the end user
/// can shape lets them pick the role; a substring test widens that to any
/// value that merely includes the name. A string that lists several values
/// (`"a,b"`) is one value: it is not split. For a prefix, use `StartsWith`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchType {
    /// The claim (or one of its values) equals the value.
    Equals,
    /// The claim has the value among its values (membership; never a
    /// substring test).
    Contains,
    /// The claim (or one of its values) starts with the value.
    StartsWith,
    /// No value of the claim equals the value (and the claim is present).
    NotEqual,
}

/// What happens to a signed-in identity that no rule matches, as Cognito's
/// `AmbiguousRoleResolution`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AmbiguousRoleResolution {
    /// It gets the authenticated role.
    #[default]
    AuthenticatedRole,
    /// It is refused.
    Deny,
}

impl IdentityPoolConfig {
    /// Parses JSON configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] whose path is the bad field's.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigError::new(e.path().to_string(), e.into_inner().to_string()))
    }
}

pub(crate) fn invalid(path: impl Into<String>, message: &'static str) -> ConfigError {
    ConfigError::new(path.into(), message)
}

/// IAM role names: 1 to 64 of `A-Za-z0-9+=,.@_-`.
pub(crate) fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Key ids: 1 to 32 of `A-Za-z0-9_-` (no `.`, which separates token parts).
pub(crate) fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
