//! The TOML configuration of a whole gateway. Every field is documented in
//! `docs/config.md` at the root of the repository.
//!
//! Paths in the file (policies, JWKS, web ACL, IP sets...) are relative to
//! the file's own folder. Errors name the bad field by its path
//! (`iam.users[0].policies[1]`), found with `serde_path_to_error` for syntax
//! and type errors, and by the loader for the rest.

use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use portcullis_api_key::ApiKeyConfig;
use portcullis_core::plan::{ThrottleSettings, UsagePlan};
use portcullis_core::ratelimit::RateLimitHeaders;
#[cfg(feature = "jwt")]
pub use portcullis_jwt::{JwksLocation, JwtFileConfig, UserPoolId};
#[cfg(feature = "openapi")]
pub use portcullis_openapi::access_log::{AccessLogConfig, AccessLogDestination};
use portcullis_quota::QuotaConfig;
#[cfg(feature = "sigv4")]
pub use portcullis_sigv4::{SigV4FileConfig, SigV4FileUser};
#[cfg(feature = "waf")]
pub use portcullis_waf::WafFileConfig;
use serde::Deserialize;
#[cfg(not(all(
    feature = "sigv4",
    feature = "jwt",
    feature = "identity-pool",
    feature = "waf",
    feature = "openapi"
)))]
use serde::de::IgnoredAny;

pub use portcullis_core::config::ConfigError;

/// A configuration that failed to load, with the file it came from: the
/// [`ConfigError`] (the path of the bad field and what is wrong with it) and
/// the file, when there was one. Shown as `<file>: <path>: <message>`.
/// Secrets are never quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigFileError {
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// The bad field and what is wrong with it.
    pub error: ConfigError,
}

impl ConfigFileError {
    /// The path of the bad field, such as `api_keys[0].usage_plans[0]`
    /// (empty for the file as a whole).
    #[must_use]
    pub fn path(&self) -> &str {
        self.error.path()
    }

    /// What is wrong.
    #[must_use]
    pub fn message(&self) -> &str {
        self.error.message()
    }

    /// The error, in `file` unless it names one already.
    pub(crate) fn in_file(mut self, file: Option<&Path>) -> Self {
        if self.file.is_none() {
            self.file = file.map(Path::to_path_buf);
        }
        self
    }
}

impl From<ConfigError> for ConfigFileError {
    fn from(error: ConfigError) -> Self {
        Self { file: None, error }
    }
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for ConfigFileError {}

/// The whole file.
///
/// The sections of the optional layers exist only with their features:
/// `iam` with `sigv4`, `jwt` with `jwt`, `identity_pool` with
/// `identity-pool`, `waf` with `waf`, `api` with `openapi`. A file that has
/// a section whose feature this build leaves out is refused by
/// [`Config::from_toml`], with an error naming the section and the feature
/// to turn on, rather than read as if the section were not there.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The API stage the gateway serves.
    pub gateway: GatewaySettings,
    /// Usage plans (API Gateway's shape: `id`, `throttle`, `quota`, ...).
    #[serde(default)]
    pub usage_plans: Vec<UsagePlan>,
    /// API keys.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// IAM (SigV4) callers. Needs the `sigv4` feature.
    #[cfg(feature = "sigv4")]
    #[serde(default)]
    pub iam: Option<SigV4FileConfig>,
    /// A JWT issuer (a Cognito user pool or any OIDC issuer). Needs the
    /// `jwt` feature.
    #[cfg(feature = "jwt")]
    #[serde(default)]
    pub jwt: Option<JwtFileConfig>,
    /// A Cognito-style identity pool: ID tokens (or guests) exchanged for
    /// temporary credentials that the `[iam]` layer accepts. Needs the
    /// `identity-pool` feature.
    #[cfg(feature = "identity-pool")]
    #[serde(default)]
    pub identity_pool: Option<portcullis_identity_pool::IdentityPoolConfig>,
    /// The AWS WAF web ACL. Needs the `waf` feature.
    #[cfg(feature = "waf")]
    #[serde(default)]
    pub waf: Option<WafFileConfig>,
    /// Where keys, plans, usage and quota counters live.
    #[serde(default)]
    pub store: StoreSettings,
    /// The quota layer's settings.
    #[serde(default)]
    pub quota: QuotaConfig,
    /// Client-IP resolution.
    #[serde(default)]
    pub client_ip: ClientIpSettings,
    /// The API's per-method settings, from an API Gateway OpenAPI export.
    /// Without it, [`Gateway::layer`](crate::Gateway::layer) is one stack
    /// for every route. Needs the `openapi` feature (and `authorizer` for
    /// `[api.authorizers]`).
    #[cfg(feature = "openapi")]
    #[serde(default)]
    pub api: Option<ApiSettings>,
    /// `[iam]` in a build without `sigv4`: read only to be refused.
    #[cfg(not(feature = "sigv4"))]
    #[serde(default, rename = "iam")]
    iam_off: Option<IgnoredAny>,
    /// `[jwt]` in a build without `jwt`: read only to be refused.
    #[cfg(not(feature = "jwt"))]
    #[serde(default, rename = "jwt")]
    jwt_off: Option<IgnoredAny>,
    /// `[identity_pool]` in a build without `identity-pool`.
    #[cfg(not(feature = "identity-pool"))]
    #[serde(default, rename = "identity_pool")]
    identity_pool_off: Option<IgnoredAny>,
    /// `[waf]` in a build without `waf`.
    #[cfg(not(feature = "waf"))]
    #[serde(default, rename = "waf")]
    waf_off: Option<IgnoredAny>,
    /// `[api]` in a build without `openapi`.
    #[cfg(not(feature = "openapi"))]
    #[serde(default, rename = "api")]
    api_off: Option<IgnoredAny>,
}

/// The error for a section (or field) whose layer this build leaves out.
#[cfg(not(all(
    feature = "sigv4",
    feature = "jwt",
    feature = "identity-pool",
    feature = "waf",
    feature = "openapi",
    feature = "authorizer"
)))]
fn feature_off(path: &str, feature: &str) -> ConfigError {
    ConfigError::new(
        path.to_owned(),
        format!(
            "[{path}] needs portcullis's `{feature}` feature, which this build leaves out: turn it on in Cargo.toml (`portcullis = {{ version = \"...\", features = [\"{feature}\"] }}`)"
        ),
    )
}

/// `[api]`: the API as API Gateway exports it
/// (`aws apigateway get-export --export-type oas30 --extensions apigateway`,
/// or a SAM template's `DefinitionBody`). Needs the `openapi` feature.
#[cfg(feature = "openapi")]
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiSettings {
    /// The OpenAPI 3.0 or Swagger 2.0 definition, JSON or YAML, relative to
    /// the configuration file.
    pub openapi: PathBuf,
    /// The stage's access log (`accessLogSettings`). Without it, no line is
    /// written, and every response still carries `x-amzn-RequestId`.
    #[serde(default)]
    pub access_log: Option<AccessLogConfig>,
    /// The stage's per-method throttles (`methodSettings`), keyed by method
    /// selector (`/pets/{petId}/GET`, `/pets/*`, `/*/*`); each selector must
    /// name a method of the definition.
    #[serde(default)]
    pub method_throttles: std::collections::BTreeMap<String, ThrottleSettings>,
    /// Where each custom authorizer of the definition (by security scheme
    /// name) is answered: the definition says its type, identity sources,
    /// validation expression and cache TTL.
    #[serde(default)]
    pub authorizers: std::collections::BTreeMap<String, AuthorizerEndpoint>,
    /// The most body bytes read for request validation (default 10 MiB, API
    /// Gateway's payload limit); a larger body gets 413.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

#[cfg(feature = "openapi")]
impl ApiSettings {
    /// `[api]` with only `openapi`: the definition at this path (relative to
    /// the configuration file's folder unless absolute), no access log, no
    /// per-method throttles and no custom authorizer endpoints.
    #[must_use]
    pub fn new(openapi: impl Into<PathBuf>) -> Self {
        Self {
            openapi: openapi.into(),
            access_log: None,
            method_throttles: std::collections::BTreeMap::new(),
            authorizers: std::collections::BTreeMap::new(),
            max_body_bytes: None,
        }
    }
}

/// `[api.authorizers.NAME]`: the HTTP endpoint that answers a custom
/// authorizer's events as its Lambda function would. Needs the `openapi`
/// feature; a configuration with one also needs `authorizer`.
#[cfg(feature = "openapi")]
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthorizerEndpoint {
    /// `http://host:port/path`: receives the TOKEN or REQUEST event as JSON
    /// and answers the authorizer's response.
    pub url: String,
    /// The timeout of one call in milliseconds (default 10,000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// `[gateway]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GatewaySettings {
    /// The region of the execute-api ARNs and of SigV4 scopes.
    pub region: String,
    /// The account id of the execute-api ARNs and of WAF labels.
    pub account_id: String,
    /// The API id.
    pub api_id: String,
    /// The stage.
    pub stage: String,
    /// A stage-wide throttle shared by every caller (`/*/*`).
    #[serde(default)]
    pub throttle: Option<ThrottleSettings>,
    /// Whether the composed stack requires an API key (default true).
    #[serde(default = "yes")]
    pub api_key_required: bool,
    /// Which rate-limit headers the throttle and the quota write, one
    /// convention for both: `"ietf"` (default: the IETF draft's
    /// `RateLimit-Policy` and `RateLimit`), `"trio"` (`RateLimit-Limit`,
    /// `-Remaining`, `-Reset`), `"legacy"` (`X-RateLimit-*`), `"both"`
    /// (`"ietf"` and `"legacy"`) or `"none"`. `Retry-After` is on every 429
    /// whatever this says.
    #[serde(default)]
    pub rate_limit_headers: RateLimitHeaders,
    /// Whether admitted responses carry the rate-limit headers too, from
    /// both layers (default false, as API Gateway). `[quota]
    /// rate_limit_headers_on_success`, the older spelling, turns it on too.
    #[serde(default)]
    pub rate_limit_headers_on_success: bool,
}

fn yes() -> bool {
    true
}

/// Which store keeps API keys, usage plans, usage records and quota
/// counters (and, on Redis, the throttle's buckets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StoreKind {
    /// Embedded and durable (redb, `portcullis-control-plane`), in
    /// `data_dir` (default). Built by
    /// [`GatewayBuilder::build_async`](crate::GatewayBuilder::build_async).
    #[default]
    Embedded,
    /// In this process: forgotten on exit.
    Memory,
    /// Redis or Redis Cluster (`portcullis-redis`), shared by a fleet.
    Redis,
}

/// `[store]`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreSettings {
    /// `embedded` (default), `memory` or `redis`. `None` when the file
    /// gives no `kind`: the embedded store, except that the synchronous
    /// [`GatewayBuilder::build`](crate::GatewayBuilder::build) builds the
    /// memory store when neither `kind` nor `data_dir` is given (see there).
    #[serde(default)]
    pub kind: Option<StoreKind>,
    /// The embedded store's folder (its database is `control-plane.redb`
    /// in it), relative to the configuration file. Required for the
    /// embedded store unless given with
    /// [`GatewayBuilder::data_dir`](crate::GatewayBuilder::data_dir).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// `redis://...`, for `kind = "redis"`.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis Cluster nodes, for `kind = "redis"`.
    #[serde(default)]
    pub cluster_urls: Vec<String>,
    /// The deadline of each Redis call, in milliseconds (default 20).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The prefix of every Redis key (default `portcullis`), so that several
    /// gateways can share one Redis.
    #[serde(default)]
    pub key_prefix: Option<String>,
}

impl StoreSettings {
    /// Redis on `url` (`redis://...`): what `kind = "redis"` with `url`
    /// reads as.
    #[must_use]
    pub fn redis(url: impl Into<String>) -> Self {
        Self {
            kind: Some(StoreKind::Redis),
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// A Redis Cluster, given some of its nodes.
    #[must_use]
    pub fn redis_cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            kind: Some(StoreKind::Redis),
            cluster_urls: urls.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The in-memory store: what `kind = "memory"` reads as.
    #[must_use]
    pub fn memory() -> Self {
        Self {
            kind: Some(StoreKind::Memory),
            ..Self::default()
        }
    }

    /// The embedded store in `dir`: what `kind = "embedded"` with
    /// `data_dir` reads as.
    #[must_use]
    pub fn embedded(dir: impl Into<PathBuf>) -> Self {
        Self {
            kind: Some(StoreKind::Embedded),
            data_dir: Some(dir.into()),
            ..Self::default()
        }
    }

    /// The kind, `embedded` when none is given.
    #[must_use]
    pub fn kind(&self) -> StoreKind {
        self.kind.unwrap_or_default()
    }
}

/// A Redis URL with its password (and user) hidden.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for StoreSettings {
    /// Passwords in the URLs are redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("kind", &self.kind)
            .field("data_dir", &self.data_dir)
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "cluster_urls",
                &self
                    .cluster_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("timeout_ms", &self.timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `[client_ip]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientIpSettings {
    /// Proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
}

impl Config {
    /// Parses a TOML configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] with the path of the bad field.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError::new("", e.to_string().trim_end().to_owned()))?;
        let config: Self = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let message = e.into_inner().message().to_owned();
            ConfigError::new(path, message)
        })?;
        config.check_features()?;
        Ok(config)
    }

    /// Refuses the sections of the layers this build leaves out, in the
    /// order of the file's documentation.
    fn check_features(&self) -> Result<(), ConfigError> {
        #[cfg(not(feature = "sigv4"))]
        if self.iam_off.is_some() {
            return Err(feature_off("iam", "sigv4"));
        }
        #[cfg(not(feature = "jwt"))]
        if self.jwt_off.is_some() {
            return Err(feature_off("jwt", "jwt"));
        }
        #[cfg(not(feature = "identity-pool"))]
        if self.identity_pool_off.is_some() {
            return Err(feature_off("identity_pool", "identity-pool"));
        }
        #[cfg(not(feature = "waf"))]
        if self.waf_off.is_some() {
            return Err(feature_off("waf", "waf"));
        }
        #[cfg(not(feature = "openapi"))]
        if self.api_off.is_some() {
            return Err(feature_off("api", "openapi"));
        }
        #[cfg(all(feature = "openapi", not(feature = "authorizer")))]
        if let Some(name) = self
            .api
            .as_ref()
            .and_then(|api| api.authorizers.keys().next())
        {
            return Err(feature_off(
                &format!("api.authorizers.{name}"),
                "authorizer",
            ));
        }
        Ok(())
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError`] naming the file and the bad field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigFileError::from(ConfigError::whole(format!("cannot read: {e}")))
                .in_file(Some(path))
        })?;
        Self::from_toml(&text).map_err(|e| ConfigFileError::from(e).in_file(Some(path)))
    }
}
