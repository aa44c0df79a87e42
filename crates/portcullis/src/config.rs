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
use portcullis_jwt::{Algorithm, TokenUse};
use portcullis_quota::QuotaConfig;
use serde::Deserialize;
#[cfg(not(all(
    feature = "sigv4",
    feature = "jwt",
    feature = "identity-pool",
    feature = "waf",
    feature = "openapi"
)))]
use serde::de::IgnoredAny;

/// A configuration that failed to load: the path of the bad field and what
/// is wrong with it. Secrets are never quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// The path of the bad field, such as `api_keys[0].usage_plans[0]`
    /// (empty for the file as a whole).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: None,
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn in_file(mut self, file: Option<&Path>) -> Self {
        if self.file.is_none() {
            self.file = file.map(Path::to_path_buf);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

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
    pub iam: Option<IamSettings>,
    /// A JWT issuer (a Cognito user pool or any OIDC issuer). Needs the
    /// `jwt` feature.
    #[cfg(feature = "jwt")]
    #[serde(default)]
    pub jwt: Option<JwtSettings>,
    /// A Cognito-style identity pool: ID tokens (or guests) exchanged for
    /// temporary credentials that the `[iam]` layer accepts. Needs the
    /// `identity-pool` feature.
    #[cfg(feature = "identity-pool")]
    #[serde(default)]
    pub identity_pool: Option<portcullis_identity_pool::IdentityPoolConfig>,
    /// The AWS WAF web ACL. Needs the `waf` feature.
    #[cfg(feature = "waf")]
    #[serde(default)]
    pub waf: Option<WafSettings>,
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
        path,
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
    pub access_log: Option<AccessLogSettings>,
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

/// `[api.access_log]`. Needs the `openapi` feature.
#[cfg(feature = "openapi")]
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessLogSettings {
    /// The `$context` template (`accessLogSettings.format`): JSON, CLF or
    /// any text; it must contain `$context.requestId`.
    pub format: String,
    /// Where lines go: `tracing` (default; target
    /// `portcullis::access_log`), `stdout` or `stderr`.
    #[serde(default)]
    pub destination: AccessLogDestination,
}

/// Where access-log lines go. Needs the `openapi` feature.
#[cfg(feature = "openapi")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AccessLogDestination {
    /// `tracing`, at INFO, target `portcullis::access_log`.
    #[default]
    Tracing,
    /// One line per request on standard output.
    Stdout,
    /// One line per request on standard error.
    Stderr,
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

/// `[iam]`. Needs the `sigv4` feature.
#[cfg(feature = "sigv4")]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IamSettings {
    /// The callers.
    #[serde(default)]
    pub users: Vec<IamUser>,
    /// The API's resource policy (a JSON file).
    #[serde(default)]
    pub resource_policy: Option<PathBuf>,
    /// The clock skew allowed either way, in seconds (default 300).
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    /// Verify signatures only, evaluating no policy (default false).
    #[serde(default)]
    pub authentication_only: bool,
    /// The most body bytes the SigV4 layer buffers at once, across all
    /// in-flight requests, while it hashes bodies (default 64 MiB, at least
    /// 10 MiB, the per-request limit); past it, THROTTLED (429).
    #[serde(default)]
    pub max_buffered_body_bytes: Option<u64>,
    /// Whether `x-amz-content-sha256: UNSIGNED-PAYLOAD` is accepted (default
    /// false: the AWS SDKs sign the payload for execute-api).
    #[serde(default)]
    pub allow_unsigned_payload: bool,
}

/// `[[iam.users]]`: one caller. Needs the `sigv4` feature.
#[cfg(feature = "sigv4")]
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IamUser {
    /// The principal's ARN.
    pub arn: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Identity policies: JSON files, relative to the configuration file.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
}

#[cfg(feature = "sigv4")]
impl fmt::Debug for IamUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamUser")
            .field("arn", &self.arn)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("policies", &self.policies)
            .finish()
    }
}

/// `[jwt]`. Needs the `jwt` feature.
#[cfg(feature = "jwt")]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtSettings {
    /// A Cognito user pool id (`us-east-1_AbCdEf123`): Cognito's issuer,
    /// RS256, `token_use` and app-client checks.
    #[serde(default)]
    pub cognito_user_pool: Option<String>,
    /// Any OIDC issuer (exact `iss`). Give this or `cognito_user_pool`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The JWKS: a file (relative to the configuration file) or an
    /// http(s) URL. Default: the pool's JWKS URL, or OIDC discovery.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Accepted Cognito app clients.
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// Accepted audiences (`aud`).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `id` or `access` (default: either).
    #[serde(default)]
    pub token_use: Option<TokenUse>,
    /// Allowed algorithms (default: the issuer's).
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// Leeway on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    /// Accept `http://` key URLs off loopback (default false).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// `[waf]`. Needs the `waf` feature.
#[cfg(feature = "waf")]
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WafSettings {
    /// The web ACL (`aws wafv2 get-web-acl` JSON), relative to the
    /// configuration file.
    pub web_acl: PathBuf,
    /// IP sets (`aws wafv2 get-ip-set` JSON; a file may hold an array).
    #[serde(default)]
    pub ip_sets: Vec<PathBuf>,
    /// Regex pattern sets.
    #[serde(default)]
    pub regex_sets: Vec<PathBuf>,
    /// Rule groups.
    #[serde(default)]
    pub rule_groups: Vec<PathBuf>,
    /// The body inspection limit in bytes (default: the ACL's, else 16 KB).
    #[serde(default)]
    pub body_inspection_limit: Option<usize>,
    /// Read the country from this header (set by a CDN in front).
    #[serde(default)]
    pub geo_header: Option<String>,
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
    /// [`ConfigError`] naming the file and the bad field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read: {e}")).in_file(Some(path)))?;
        Self::from_toml(&text).map_err(|e| e.in_file(Some(path)))
    }
}
