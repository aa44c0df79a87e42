//! [`Gateway`]: every layer built from one [`Config`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_api_key::{ApiKeyLayer, ApiKeys, ApiKeysConfig};
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::{SharedClock, SystemClock};
use portcullis_core::plan::{MethodSelector, UsagePlan};
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_identity_pool::{IdentityPool, IdentityPoolConfig, IdentityPoolConfigError};
use portcullis_jwt::{Issuer, JwtLayer, KeySource};
use portcullis_quota::QuotaLayer;
use portcullis_quota::admin::{PlanKey, StaticKeys, UsageAdmin};
use portcullis_sigv4::{Credential, SigV4Layer, StaticCredentialProvider};
use portcullis_throttle::ThrottleLayer;
use portcullis_waf::{AclSources, WafLayer};

use crate::config::{Config, ConfigError, IamSettings, JwtSettings, StoreKind, WafSettings};
use crate::stack::{Auth, GatewayLayer};

/// Every layer of a gateway, built once from a [`Config`]. Clones of the
/// layers it hands out share their state (keys, buckets, counters).
#[derive(Clone, Debug)]
pub struct Gateway {
    config: Config,
    keys: ApiKeys,
    api_key: ApiKeyLayer,
    throttle: ThrottleLayer,
    quota: QuotaLayer,
    sigv4: Option<SigV4Layer>,
    jwt: Option<JwtLayer>,
    waf: Option<WafLayer>,
    plans: Vec<Arc<UsagePlan>>,
    identity_pool: Option<IdentityPool>,
    /// Each IAM user's ARN and identity policies, as `[iam]` configures them.
    iam_policies: Vec<(String, Arc<PolicyDocument>)>,
    /// The usage plan on Redis, for `[store] kind = "redis"`.
    #[cfg(feature = "redis")]
    redis: Option<portcullis_redis::RedisUsagePlanLayer>,
}

/// Builds a [`Gateway`].
#[derive(Debug)]
#[must_use]
pub struct GatewayBuilder {
    config: Config,
    base_dir: PathBuf,
    file: Option<PathBuf>,
    clock: SharedClock,
    /// Whether `clock` was set (then the Redis scripts take time from it).
    custom_clock: bool,
}

fn read(base: &Path, path: &Path, field: &str) -> Result<String, ConfigError> {
    let full = base.join(path);
    std::fs::read_to_string(&full)
        .map_err(|e| ConfigError::new(field, format!("cannot read {}: {e}", full.display())))
}

impl GatewayBuilder {
    /// Takes time from `clock` (a manual clock in tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self.custom_clock = true;
        self
    }

    /// Replaces the configuration's `[store]` (for example from a command
    /// line flag).
    pub fn store(mut self, store: crate::config::StoreSettings) -> Self {
        self.config.store = store;
        self
    }

    /// Resolves relative paths against `dir` (default: the configuration
    /// file's folder, or the current directory).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// Builds every configured layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the bad field: an unreadable or invalid policy,
    /// JWKS or web ACL, a key in an unknown plan, or `[store] kind =
    /// "redis"`, which connects to Redis and so needs
    /// [`build_async`](Self::build_async).
    pub fn build(self) -> Result<Gateway, ConfigError> {
        let file = self.file.clone();
        if self.config.store.kind == StoreKind::Redis {
            return Err(ConfigError::new("store.kind", REDIS_NEEDS_ASYNC).in_file(file.as_deref()));
        }
        self.build_inner().map_err(|e| e.in_file(file.as_deref()))
    }

    /// Builds every configured layer, and connects to Redis for `[store]
    /// kind = "redis"` (with the `redis` feature): the throttle and the
    /// quota then run as one [`RedisUsagePlanLayer`], which decides a key's
    /// throttle and quota in one round trip. With the in-memory store it is
    /// [`build`](Self::build).
    ///
    /// The Redis scripts read Redis's own clock, one clock for every
    /// replica, unless a clock was given with [`clock`](Self::clock) (a
    /// manual clock in tests): then they take time from it.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and when Redis does not answer within the
    /// connect timeout (1 s), or `[store]` gives neither or both of `url`
    /// and `cluster_urls`.
    ///
    /// [`RedisUsagePlanLayer`]: https://docs.rs/portcullis-redis
    pub async fn build_async(self) -> Result<Gateway, ConfigError> {
        let file = self.file.clone();
        let redis = self.config.store.kind == StoreKind::Redis;
        #[cfg(feature = "redis")]
        let (clock, custom_clock) = (Arc::clone(&self.clock), self.custom_clock);
        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        let mut gateway = self.build_inner().map_err(|e| e.in_file(file.as_deref()))?;
        if redis {
            #[cfg(feature = "redis")]
            {
                let layer = connect_redis(&gateway, clock, custom_clock)
                    .await
                    .map_err(|e| e.in_file(file.as_deref()))?;
                gateway.redis = Some(layer);
            }
            #[cfg(not(feature = "redis"))]
            return Err(ConfigError::new(
                "store.kind",
                "`redis` needs the facade's `redis` feature (portcullis-redis); use `memory`, or enable the feature",
            )
            .in_file(file.as_deref()));
        }
        Ok(gateway)
    }

    fn build_inner(self) -> Result<Gateway, ConfigError> {
        let Self {
            config,
            base_dir,
            clock,
            ..
        } = self;
        let g = &config.gateway;
        let api = ExecuteApiArn::new(&g.region, &g.account_id, &g.api_id, &g.stage)
            .map_err(|e| ConfigError::new(format!("gateway.{}", e.field), e.message.to_owned()))?;
        let resolver =
            ClientIpResolver::new().trust_proxies(config.client_ip.trusted_proxies.iter().copied());

        let mut keys_config = ApiKeysConfig::default();
        keys_config.usage_plans.clone_from(&config.usage_plans);
        keys_config.api_keys.clone_from(&config.api_keys);
        let keys = ApiKeys::from_config_with_clock(keys_config, clock.clone())
            .map_err(|e| ConfigError::new(e.path, e.problem))?;
        let api_key = keys.layer(g.api_id.clone(), g.stage.clone());

        let mut throttle =
            ThrottleLayer::new(g.api_id.as_str(), g.stage.as_str()).clock(clock.clone());
        if let Some(limit) = g.throttle {
            let all: MethodSelector = "/*/*"
                .parse()
                .map_err(|_| ConfigError::new("gateway.throttle", "internal: bad selector"))?;
            throttle = throttle.stage_limit(all, limit);
        }
        let quota = QuotaLayer::from_config(&config.quota).shared_clock(clock.clone());

        let jwt = match &config.jwt {
            Some(jwt) => Some(build_jwt(jwt, &base_dir, &clock)?),
            None => None,
        };
        let identity_pool = match &config.identity_pool {
            Some(pool) if config.iam.is_none() => {
                let _ = pool;
                return Err(ConfigError::new(
                    "identity_pool",
                    "needs [iam]: the SigV4 layer is what accepts the pool's credentials",
                ));
            }
            Some(pool) => Some(build_identity_pool(pool, jwt.as_ref(), &clock)?),
            None => None,
        };
        let iam_policies = match &config.iam {
            Some(iam) => iam_policies(iam, &base_dir)?,
            None => Vec::new(),
        };
        let sigv4 = match &config.iam {
            Some(iam) => Some(build_sigv4(
                iam,
                api,
                &base_dir,
                &clock,
                &resolver,
                identity_pool.as_ref(),
            )?),
            None => None,
        };
        let waf = match &config.waf {
            Some(waf) => Some(build_waf(waf, &g.account_id, &base_dir, &clock, resolver)?),
            None => None,
        };
        let plans = config.usage_plans.iter().cloned().map(Arc::new).collect();
        Ok(Gateway {
            config,
            keys,
            api_key,
            throttle,
            quota,
            sigv4,
            jwt,
            waf,
            plans,
            identity_pool,
            iam_policies,
            #[cfg(feature = "redis")]
            redis: None,
        })
    }
}

const REDIS_NEEDS_ASYNC: &str = "`redis` connects to Redis: build the gateway with `GatewayBuilder::build_async` (or `Gateway::connect`), with the facade's `redis` feature";

/// Connects the Redis stores and builds the usage-plan layer from the
/// gateway's throttle and quota settings.
#[cfg(feature = "redis")]
async fn connect_redis(
    gateway: &Gateway,
    clock: SharedClock,
    custom_clock: bool,
) -> Result<portcullis_redis::RedisUsagePlanLayer, ConfigError> {
    use portcullis_redis::{
        RedisConfig, RedisQuotaStore, RedisThrottleStore, RedisUsagePlanLayer, TimeSource,
    };
    let store = &gateway.config.store;
    let mut redis = match (&store.url, store.cluster_urls.is_empty()) {
        (Some(url), true) => RedisConfig::single(url.clone()),
        (None, false) => RedisConfig::cluster(store.cluster_urls.iter().cloned()),
        (Some(_), false) => {
            return Err(ConfigError::new(
                "store.cluster_urls",
                "give `url` or `cluster_urls`, not both",
            ));
        }
        (None, true) => {
            return Err(ConfigError::new(
                "store.url",
                "missing: `kind = \"redis\"` needs `url` (one server) or `cluster_urls` (a cluster)",
            ));
        }
    };
    if let Some(ms) = store.timeout_ms {
        if ms == 0 {
            return Err(ConfigError::new("store.timeout_ms", "must be at least 1"));
        }
        redis = redis.timeout(Duration::from_millis(ms));
    }
    if let Some(prefix) = &store.key_prefix {
        redis = redis.key_prefix(prefix.clone());
    }
    let where_ = store
        .url
        .as_deref()
        .map_or_else(|| "the cluster".to_owned(), crate::config::redact_url);
    let failed = |e: &dyn std::fmt::Display| {
        ConfigError::new("store", format!("cannot connect to Redis at {where_}: {e}"))
    };
    let time = if custom_clock {
        TimeSource::Caller
    } else {
        TimeSource::Redis
    };
    let throttle_store = RedisThrottleStore::connect(&redis)
        .await
        .map_err(|e| failed(&e))?
        .time_source(time);
    let quota_store = RedisQuotaStore::connect(&redis)
        .await
        .map_err(|e| failed(&e))?
        .retention_days(gateway.config.quota.retention_days);
    let settings = &gateway.config.quota;
    let mut quota = QuotaLayer::with_store(quota_store)
        .shared_clock(clock)
        .week_start(settings.week_start.0)
        .on_store_error(settings.on_store_error)
        .rate_limit_headers_on_success(settings.rate_limit_headers_on_success);
    for (plan, start) in &settings.plan_starts {
        quota = quota.plan_start(plan.clone(), *start);
    }
    Ok(RedisUsagePlanLayer::new(
        gateway.throttle.clone().store(throttle_store),
        quota,
    ))
}

/// Each IAM user's ARN and identity policies.
fn iam_policies(
    iam: &IamSettings,
    base: &Path,
) -> Result<Vec<(String, Arc<PolicyDocument>)>, ConfigError> {
    let mut out = Vec::new();
    for (i, user) in iam.users.iter().enumerate() {
        for (j, path) in user.policies.iter().enumerate() {
            let field = format!("iam.users[{i}].policies[{j}]");
            let text = read(base, path, &field)?;
            let policy = PolicyDocument::from_json(&text)
                .map_err(|e| ConfigError::new(field.clone(), e.to_string()))?;
            out.push((user.arn.clone(), Arc::new(policy)));
        }
    }
    Ok(out)
}

fn build_sigv4(
    iam: &IamSettings,
    api: ExecuteApiArn,
    base: &Path,
    clock: &SharedClock,
    resolver: &ClientIpResolver,
    pool: Option<&IdentityPool>,
) -> Result<SigV4Layer, ConfigError> {
    let mut provider = StaticCredentialProvider::new();
    for (i, user) in iam.users.iter().enumerate() {
        let mut credential = Credential::new(
            user.access_key_id.as_str(),
            user.secret_access_key.as_str(),
            user.arn.as_str(),
        );
        if let Some(token) = &user.session_token {
            credential = credential.with_session_token(token.as_str(), None);
        }
        for (j, path) in user.policies.iter().enumerate() {
            let field = format!("iam.users[{i}].policies[{j}]");
            let text = read(base, path, &field)?;
            let policy = PolicyDocument::from_json(&text)
                .map_err(|e| ConfigError::new(field.clone(), e.to_string()))?;
            credential = credential.with_policy(policy);
        }
        provider.insert(credential);
    }
    // Temporary credentials from the identity pool; long-term users behind.
    let layer = match pool {
        Some(pool) => SigV4Layer::new(api, pool.provider().with_fallback(provider)),
        None => SigV4Layer::new(api, provider),
    };
    let mut layer = layer
        .clock(clock.clone())
        .client_ip_resolver(resolver.clone());
    if let Some(skew) = iam.clock_skew_seconds {
        if skew > 3600 {
            return Err(ConfigError::new(
                "iam.clock_skew_seconds",
                "must be at most 3600",
            ));
        }
        layer = layer.clock_skew(Duration::from_secs(skew));
    }
    if let Some(path) = &iam.resource_policy {
        let text = read(base, path, "iam.resource_policy")?;
        let policy = PolicyDocument::from_json(&text)
            .map_err(|e| ConfigError::new("iam.resource_policy", e.to_string()))?;
        layer = layer.resource_policy(policy);
    }
    if iam.authentication_only {
        layer = layer.authentication_only();
    }
    if let Some(bytes) = iam.max_buffered_body_bytes {
        if bytes < portcullis_sigv4::DEFAULT_MAX_BODY_BYTES {
            return Err(ConfigError::new(
                "iam.max_buffered_body_bytes",
                "must be at least 10485760 (the per-request body limit)",
            ));
        }
        layer = layer.max_buffered_body_bytes(bytes);
    }
    Ok(layer.allow_unsigned_payload(iam.allow_unsigned_payload))
}

/// Builds the identity pool; with no issuer of its own it takes tokens from
/// the `[jwt]` layer.
fn build_identity_pool(
    config: &IdentityPoolConfig,
    jwt: Option<&JwtLayer>,
    clock: &SharedClock,
) -> Result<IdentityPool, ConfigError> {
    let mut builder = IdentityPool::builder(config.clone()).clock(clock.clone());
    if config.jwt.issuers.is_empty()
        && let Some(jwt) = jwt
    {
        builder = builder.jwt(jwt.clone());
    }
    builder.build().map_err(|e| match e {
        IdentityPoolConfigError::Invalid { path, message } => {
            ConfigError::new(format!("identity_pool.{path}"), message)
        }
        other => ConfigError::new("identity_pool", other.to_string()),
    })
}

fn build_jwt(jwt: &JwtSettings, base: &Path, clock: &SharedClock) -> Result<JwtLayer, ConfigError> {
    let mut issuer = match (&jwt.cognito_user_pool, &jwt.issuer) {
        (Some(pool), None) => {
            let (region, _) = pool.split_once('_').ok_or_else(|| {
                ConfigError::new(
                    "jwt.cognito_user_pool",
                    "a user pool id looks like `us-east-1_AbCdEf123`",
                )
            })?;
            Issuer::user_pool(region, pool)
        }
        (None, Some(iss)) => Issuer::new(iss.as_str()),
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "jwt.issuer",
                "give `cognito_user_pool` or `issuer`, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                "jwt",
                "missing: give `cognito_user_pool` or `issuer`",
            ));
        }
    };
    if let Some(jwks) = &jwt.jwks {
        let source = if jwks.starts_with("https://") || jwks.starts_with("http://") {
            KeySource::JwksUrl(jwks.clone())
        } else {
            let text = read(base, Path::new(jwks), "jwt.jwks")?;
            KeySource::Jwks(text)
        };
        issuer = issuer.keys(source);
    }
    if !jwt.client_ids.is_empty() {
        issuer = issuer.client_ids(jwt.client_ids.iter().cloned());
    }
    if !jwt.audiences.is_empty() {
        issuer = issuer.audiences(jwt.audiences.iter().cloned());
    }
    if !jwt.algorithms.is_empty() {
        issuer = issuer.algorithms(jwt.algorithms.iter().copied());
    }
    if let Some(leeway) = jwt.leeway_seconds {
        issuer = issuer.leeway(Duration::from_secs(leeway));
    }
    issuer = issuer.allow_insecure_http(jwt.allow_insecure_http);
    let mut layer = JwtLayer::builder()
        .issuer(issuer)
        .clock(clock.clone())
        .build()
        .map_err(|e| ConfigError::new(format!("jwt.{}", e.field()), e.to_string()))?;
    if let Some(token_use) = jwt.token_use {
        layer = layer.token_use(token_use);
    }
    Ok(layer)
}

fn build_waf(
    waf: &WafSettings,
    account_id: &str,
    base: &Path,
    clock: &SharedClock,
    resolver: ClientIpResolver,
) -> Result<WafLayer, ConfigError> {
    let load = |field: &str, e: portcullis_waf::LoadError| {
        let at = if e.path.is_empty() {
            String::new()
        } else {
            format!(" at {}", e.path)
        };
        ConfigError::new(field, format!("{}{at}: {}", e.document, e.message))
    };
    let text = read(base, &waf.web_acl, "waf.web_acl")?;
    let mut sources = AclSources::from_json(&text).map_err(|e| load("waf.web_acl", e))?;
    let documents = |field: &str, text: &str| -> Result<Vec<String>, ConfigError> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(items)) => {
                Ok(items.iter().map(ToString::to_string).collect())
            }
            Ok(_) => Ok(vec![text.to_owned()]),
            Err(e) => Err(ConfigError::new(field, e.to_string())),
        }
    };
    for (i, path) in waf.ip_sets.iter().enumerate() {
        let field = format!("waf.ip_sets[{i}]");
        for doc in documents(&field, &read(base, path, &field)?)? {
            sources = sources
                .with_ip_set_json(&doc)
                .map_err(|e| load(&field, e))?;
        }
    }
    for (i, path) in waf.regex_sets.iter().enumerate() {
        let field = format!("waf.regex_sets[{i}]");
        for doc in documents(&field, &read(base, path, &field)?)? {
            sources = sources
                .with_regex_pattern_set_json(&doc)
                .map_err(|e| load(&field, e))?;
        }
    }
    for (i, path) in waf.rule_groups.iter().enumerate() {
        let field = format!("waf.rule_groups[{i}]");
        for doc in documents(&field, &read(base, path, &field)?)? {
            sources = sources
                .with_rule_group_json(&doc)
                .map_err(|e| load(&field, e))?;
        }
    }
    sources = sources.with_account_id(account_id);
    if let Some(limit) = waf.body_inspection_limit {
        sources = sources.with_body_inspection_limit(limit);
    }
    let acl = sources.compile().map_err(|e| load("waf.web_acl", e))?;
    let mut layer = WafLayer::new(acl)
        .clock(clock.clone())
        .client_ip_resolver(resolver);
    if let Some(header) = &waf.geo_header {
        let name = http::HeaderName::try_from(header.as_str())
            .map_err(|_| ConfigError::new("waf.geo_header", "not a header name"))?;
        layer = layer.geo_header(name);
    }
    Ok(layer)
}

impl Gateway {
    /// A builder for `config`, with the system clock and paths relative to
    /// the current directory.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            base_dir: PathBuf::from("."),
            file: None,
            clock: Arc::new(SystemClock),
            custom_clock: false,
        }
    }

    /// A builder for the configuration file at `path`, with paths relative
    /// to its folder.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file and the bad field.
    pub fn builder_from_file(path: impl AsRef<Path>) -> Result<GatewayBuilder, ConfigError> {
        let path = path.as_ref();
        let config = Config::from_file(path)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(GatewayBuilder {
            config,
            base_dir: base,
            file: Some(path.to_path_buf()),
            clock: Arc::new(SystemClock),
            custom_clock: false,
        })
    }

    /// Reads the file at `path` and builds every layer, on the system clock,
    /// connecting to Redis for `[store] kind = "redis"`:
    /// [`GatewayBuilder::build_async`] for the file.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file and the bad field, or Redis not
    /// answering.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::builder_from_file(path)?.build_async().await
    }

    /// Reads the file at `path` and builds every layer, on the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file and the bad field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::builder_from_file(path)?.build()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The whole stack in API Gateway's order: WAF, then IAM (if `[iam]` is
    /// configured) or JWT (if `[jwt]` is), then API key (unless
    /// `gateway.api_key_required = false`), then throttle, then quota.
    pub fn layer(&self) -> GatewayLayer {
        let auth = match (&self.sigv4, &self.jwt) {
            (Some(sigv4), _) => Some(Auth::Iam(sigv4.clone())),
            (None, Some(jwt)) => Some(Auth::Jwt(jwt.clone())),
            (None, None) => None,
        };
        let layer = GatewayLayer::new()
            .waf(self.waf.clone())
            .auth(auth)
            .api_key(Some(self.api_key.clone()))
            .throttle(Some(self.throttle.clone()))
            .quota(Some(self.quota.clone()));
        #[cfg(feature = "redis")]
        let layer = match &self.redis {
            Some(usage_plan) => layer
                .throttle(None)
                .quota(None)
                .usage_plan(Some(usage_plan.clone())),
            None => layer,
        };
        if self.config.gateway.api_key_required {
            layer
        } else {
            layer.without_api_key()
        }
    }

    /// The IAM users' identity policies, by principal ARN, for the
    /// management API's authorization
    /// ([`ManagementApi::policies`](portcullis_control_plane::ManagementApi::policies)):
    /// the same users as the data plane, whose policies allow
    /// `apigateway:*` actions on `arn:aws:apigateway:{region}::/apikeys/...`
    /// and `/usageplans/...` as needed. Temporary credentials (the identity
    /// pool's roles) are not in it.
    #[cfg(feature = "control-plane")]
    #[must_use]
    pub fn management_policies(&self) -> portcullis_control_plane::PolicyMap {
        let mut map = portcullis_control_plane::PolicyMap::new();
        for (arn, policy) in &self.iam_policies {
            map.insert(arn.clone(), Arc::clone(policy));
        }
        map
    }

    /// The WAF layer, if `[waf]` is configured.
    #[must_use]
    pub fn waf_layer(&self) -> Option<WafLayer> {
        self.waf.clone()
    }

    /// The identity pool, if `[identity_pool]` is configured. Its
    /// credentials already pass the [`sigv4_layer`](Self::sigv4_layer); mount
    /// its [`credentials_service`](IdentityPool::credentials_service) on a
    /// route of its own (such as `POST /credentials`), outside the API's
    /// authorizers, as Cognito's endpoint is.
    #[must_use]
    pub fn identity_pool(&self) -> Option<&IdentityPool> {
        self.identity_pool.as_ref()
    }

    /// The SigV4 (IAM) layer, if `[iam]` is configured.
    #[must_use]
    pub fn sigv4_layer(&self) -> Option<SigV4Layer> {
        self.sigv4.clone()
    }

    /// The JWT layer, if `[jwt]` is configured.
    #[must_use]
    pub fn jwt_layer(&self) -> Option<JwtLayer> {
        self.jwt.clone()
    }

    /// The API-key layer.
    pub fn api_key_layer(&self) -> ApiKeyLayer {
        self.api_key.clone()
    }

    /// The throttle and quota decided together on Redis, in one round trip
    /// per request: present when the gateway was built with `[store] kind =
    /// "redis"` (see [`GatewayBuilder::build_async`]). [`layer`](Self::layer)
    /// then uses it in place of the throttle and quota layers.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn usage_plan_layer(&self) -> Option<portcullis_redis::RedisUsagePlanLayer> {
        self.redis.clone()
    }

    /// The throttle layer, on the in-memory store (with `[store] kind =
    /// "redis"`, the Redis one is in
    /// [`usage_plan_layer`](Self::usage_plan_layer)).
    pub fn throttle_layer(&self) -> ThrottleLayer {
        self.throttle.clone()
    }

    /// The quota layer, on the in-memory store (with `[store] kind =
    /// "redis"`, the Redis one is in
    /// [`usage_plan_layer`](Self::usage_plan_layer)).
    pub fn quota_layer(&self) -> QuotaLayer {
        self.quota.clone()
    }

    /// The API keys and usage plans, changeable at run time.
    #[must_use]
    pub fn api_keys(&self) -> &ApiKeys {
        &self.keys
    }

    /// The usage admin service (GetUsage, UpdateUsage, ...) over the quota
    /// layer's counters (in memory or on Redis), for the configured plans
    /// and keys. It has no authentication of its own: mount it behind the
    /// SigV4 or JWT layer.
    #[must_use]
    pub fn usage_admin(&self) -> GatewayUsageAdmin {
        let directory: StaticKeys = self
            .config
            .api_keys
            .iter()
            .flat_map(|key| {
                key.usage_plans.iter().map(move |plan| {
                    let mut plan_key = PlanKey::new(key.id.clone());
                    if let Some(name) = &key.name {
                        plan_key = plan_key.with_name(name.clone());
                    }
                    (plan_key, plan.clone())
                })
            })
            .fold(StaticKeys::new(), |keys, (key, plan)| {
                keys.plan_key(key, plan)
            });
        #[cfg(feature = "redis")]
        if let Some(usage_plan) = &self.redis {
            return GatewayUsageAdmin(AdminKind::Redis(UsageAdmin::new(
                usage_plan.quota().usage_api(),
                self.plans.iter().cloned(),
                directory,
            )));
        }
        GatewayUsageAdmin(AdminKind::Memory(UsageAdmin::new(
            self.quota.usage_api(),
            self.plans.iter().cloned(),
            directory,
        )))
    }
}

/// The usage admin service of a [`Gateway`] (GetUsage, UpdateUsage, ...),
/// over the in-memory quota store or the Redis one.
#[derive(Clone, Debug)]
pub struct GatewayUsageAdmin(AdminKind);

#[derive(Clone, Debug)]
enum AdminKind {
    Memory(UsageAdmin),
    #[cfg(feature = "redis")]
    Redis(UsageAdmin<portcullis_redis::RedisQuotaStore>),
}

impl<B> tower_service::Service<http::Request<B>> for GatewayUsageAdmin
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::stack::BoxError>,
{
    type Response = <UsageAdmin as tower_service::Service<http::Request<B>>>::Response;
    type Error = std::convert::Infallible;
    type Future = portcullis_quota::admin::AdminFuture;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match &mut self.0 {
            AdminKind::Memory(admin) => admin.call(request),
            #[cfg(feature = "redis")]
            AdminKind::Redis(admin) => admin.call(request),
        }
    }
}
