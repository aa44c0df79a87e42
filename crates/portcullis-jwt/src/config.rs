//! [`JwtConfig`]: the whole configuration of a layer, as data.

use portcullis_core::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::cache::TokenCacheConfig;
use crate::issuer::Issuer;
use crate::source::TokenSource;

/// The default token size limit: 8 KB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The whole configuration of a [`JwtLayer`](crate::JwtLayer), as data.
///
/// ```
/// use portcullis_jwt::JwtConfig;
///
/// let config = JwtConfig::from_json(r#"{
///     "issuers": [{
///         "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
///         "keys": {"jwks_url": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json"},
///         "algorithms": ["RS256"],
///         "cognito": true,
///         "client_ids": ["app-client"]
///     }],
///     "cache": {"max_entries": 1000, "ttl_seconds": 60}
/// }"#).unwrap();
/// assert_eq!(config.issuers.len(), 1);
///
/// let error = JwtConfig::from_json(r#"{"issuers":[{"issuer":"i","algorithms":["XX999"]}]}"#).unwrap_err();
/// assert_eq!(error.path(), "issuers[0].algorithms[0]");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The trusted issuers. A token's `iss` picks one.
    pub issuers: Vec<Issuer>,
    /// Where the token is found (default `Authorization: Bearer`). Read as
    /// `token_location` too, its name before 0.x's rename.
    #[serde(default, alias = "token_location")]
    pub token_source: TokenSource,
    /// Tokens longer than this are refused before parsing (default 8 KB).
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// The verified-token cache.
    #[serde(default)]
    pub cache: TokenCacheConfig,
}

const fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}

impl JwtConfig {
    /// Parses a JSON configuration.
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
