//! The layer's configuration: as data ([`AuthorizerConfig`]) and as the
//! layer and its services share it.

use std::collections::BTreeMap;
use std::fmt;

use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::SharedClock;
use portcullis_iam::ExecuteApiArn;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::identity::IdentitySource;

/// The default result TTL: 300 seconds, as API Gateway.
pub const DEFAULT_TTL_SECONDS: u32 = 300;
/// The longest result TTL API Gateway allows: 3,600 seconds.
pub const MAX_TTL_SECONDS: u32 = 3600;
/// The default bound on cached results.
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 10_000;
/// The default bound on the identity-source values of one request, in bytes.
pub const DEFAULT_MAX_IDENTITY_BYTES: usize = 8 * 1024;

/// The message of a custom authorizer's explicit Deny.
pub const AUTHORIZER_DENIED_EXPLICIT: &str =
    "User is not authorized to access this resource with an explicit deny";

/// TOKEN or REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorizerType {
    /// One header holds the identity.
    #[serde(rename = "TOKEN")]
    Token,
    /// Headers, query parameters, stage variables and context values do.
    #[serde(rename = "REQUEST")]
    Request,
}

/// The layer's configuration as data (contract 8): read it from JSON or TOML
/// and give it to [`AuthorizerLayer::from_config`](crate::AuthorizerLayer::from_config).
///
/// ```
/// use portcullis_authorizer::AuthorizerConfig;
///
/// let config: AuthorizerConfig = serde_json::from_str(r#"{
///     "type": "TOKEN",
///     "identity_source": ["method.request.header.Authorization"],
///     "identity_validation_expression": "^Bearer [-0-9a-zA-Z._]+$",
///     "result_ttl_in_seconds": 600
/// }"#)?;
/// assert_eq!(config.result_ttl_in_seconds, 600);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerConfig {
    /// TOKEN or REQUEST.
    #[serde(rename = "type")]
    pub kind: AuthorizerType,
    /// The identity sources. TOKEN takes exactly one header (default
    /// `method.request.header.Authorization`).
    #[serde(default)]
    pub identity_source: Vec<IdentitySource>,
    /// TOKEN only: a regex the token must match before the authorizer is
    /// called.
    #[serde(default)]
    pub identity_validation_expression: Option<String>,
    /// How long results are cached: 0 (off) to 3,600; default 300.
    #[serde(default = "default_ttl")]
    pub result_ttl_in_seconds: u32,
    /// The most results cached.
    #[serde(default = "default_max_entries")]
    pub max_cache_entries: usize,
    /// The API stage whose method ARNs are authorized.
    #[serde(default)]
    pub method_arn: Option<ExecuteApiArn>,
    /// Stage variables, for `stageVariables.X` sources and REQUEST events.
    #[serde(default)]
    pub stage_variables: BTreeMap<String, String>,
}

fn default_ttl() -> u32 {
    DEFAULT_TTL_SECONDS
}

fn default_max_entries() -> usize {
    DEFAULT_MAX_CACHE_ENTRIES
}

/// Where the identity comes from.
#[derive(Clone, Debug)]
pub(crate) enum Identity {
    Token {
        /// Always `IdentitySource::Header`.
        source: IdentitySource,
        validation: Option<Regex>,
    },
    Request {
        sources: Vec<IdentitySource>,
    },
}

/// The configuration every clone of the layer and its services shares.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) identity: Identity,
    pub(crate) arns: ExecuteApiArn,
    pub(crate) stage_variables: BTreeMap<String, String>,
    pub(crate) resolver: ClientIpResolver,
    pub(crate) clock: SharedClock,
    pub(crate) max_identity_bytes: usize,
    /// Unique to this configuration: names it in the policy-decision memo.
    pub(crate) id: u64,
}

/// A fresh configuration id.
pub(crate) fn next_config_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("identity", &self.identity)
            .field("arns", &self.arns)
            .field("stage_variables", &self.stage_variables.keys())
            .field("max_identity_bytes", &self.max_identity_bytes)
            .finish_non_exhaustive()
    }
}
