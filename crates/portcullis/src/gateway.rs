//! [`Gateway`]: every layer built from one [`Config`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use portcullis_api_key::{ApiKeyLayer, ApiKeys, ApiKeysConfig};
use portcullis_control_plane::{
    ControlPlaneStore, DATABASE_FILE, KeyCache, LocalStore, ManagementApi, NewApiKey, NewUsagePlan,
    QuotaEngine, StoreError, StoreOptions,
};
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::{SharedClock, SystemClock};
use portcullis_core::plan::MethodSelector;
use portcullis_iam::ExecuteApiArn;
#[cfg(feature = "sigv4")]
use portcullis_iam::PolicyDocument;
#[cfg(feature = "identity-pool")]
use portcullis_identity_pool::{IdentityPool, IdentityPoolConfig};
#[cfg(feature = "jwt")]
use portcullis_jwt::JwtLayer;
use portcullis_quota::QuotaLayer;
#[cfg(feature = "sigv4")]
use portcullis_sigv4::SigV4Layer;
use portcullis_throttle::{InMemoryThrottleStore, ThrottleLayer};
#[cfg(feature = "waf")]
use portcullis_waf::WafLayer;

use crate::config::{Config, ConfigError, ConfigFileError, StoreKind};
#[cfg(any(feature = "sigv4", feature = "jwt"))]
use crate::stack::Auth;
use crate::stack::GatewayLayer;
use crate::store::{GatewayStore, GatewayThrottleStore};

/// The API-key store of a [`Gateway`]: a cache of the control-plane store.
pub type GatewayKeyStore = KeyCache<GatewayStore>;

/// The quota store of a [`Gateway`]: counting in memory against blocks
/// reserved durably in the control-plane store.
pub type GatewayQuotaStore = QuotaEngine<GatewayStore>;

/// How often the quota engine reports usage to the store (the bound on how
/// stale the usage records another replica reads are).
const FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// Every layer of a gateway, built once from a [`Config`], on one
/// control-plane store ([`GatewayStore`]: embedded, in memory, or Redis).
/// Clones of the layers it hands out share their state (keys, buckets,
/// counters) with each other and with the store: a key created through the
/// management API is seen by [`layer`](Self::layer) and by
/// [`api_key_layer`](Self::api_key_layer) alike.
#[derive(Clone, Debug)]
pub struct Gateway {
    config: Config,
    store: GatewayStore,
    /// Where the embedded store's database is.
    database: Option<PathBuf>,
    keys: ApiKeys<GatewayKeyStore>,
    api_key: ApiKeyLayer<GatewayKeyStore>,
    throttle: ThrottleLayer<GatewayThrottleStore>,
    engine: GatewayQuotaStore,
    quota: QuotaLayer<GatewayQuotaStore>,
    #[cfg(feature = "sigv4")]
    sigv4: Option<SigV4Layer>,
    #[cfg(feature = "jwt")]
    jwt: Option<JwtLayer>,
    #[cfg(feature = "waf")]
    waf: Option<WafLayer>,
    #[cfg(feature = "identity-pool")]
    identity_pool: Option<IdentityPool>,
    /// Each IAM user's ARN and identity policies, as `[iam]` configures them.
    #[cfg(feature = "sigv4")]
    iam_policies: Vec<(String, Arc<PolicyDocument>)>,
    /// `[api]`: the definition and the layers of its per-method chains.
    #[cfg(feature = "openapi")]
    api: Option<crate::api::ApiStack>,
    /// `[api.access_log]` (or request ids only), with `[api]`.
    #[cfg(feature = "openapi")]
    access_log: Option<portcullis_openapi::access_log::AccessLogLayer>,
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
    /// The embedded store's folder, given in code (relative to the current
    /// directory), in place of `[store] data_dir`.
    data_dir: Option<PathBuf>,
}

/// Polls `future` once: the in-memory store answers without waiting.
fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// The store chosen, opened or connected.
enum Opened {
    Local(LocalStore, Option<PathBuf>),
    #[cfg(feature = "redis")]
    Redis(
        portcullis_redis::RedisControlPlane,
        portcullis_redis::LeasedThrottleStore,
    ),
    /// A live reload: the running gateway's stores and state.
    Reuse(Box<Reused>),
}

/// What a live reload takes over from the running gateway
/// ([`GatewayBuilder::rebuild`]): the store (never opened twice), the
/// throttle's buckets, the key cache and the quota engine, with their
/// background tasks.
struct Reused {
    store: GatewayStore,
    database: Option<PathBuf>,
    throttle: GatewayThrottleStore,
    keys: ApiKeys<GatewayKeyStore>,
    engine: GatewayQuotaStore,
}

const EMBEDDED_NEEDS_ASYNC: &str = "the embedded store (the default kind) writes on Tokio's blocking pool: build the gateway with `GatewayBuilder::build_async` (or `Gateway::connect`), or set `kind = \"memory\"`";

const EMBEDDED_NEEDS_DIR: &str = "missing: the embedded store (the default kind) keeps keys, plans and usage in this folder; give `data_dir` (or `GatewayBuilder::data_dir`), or set `kind = \"memory\"`";

const REDIS_NEEDS_ASYNC: &str = "`redis` connects to Redis: build the gateway with `GatewayBuilder::build_async` (or `Gateway::connect`), with the facade's `redis` feature";

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

    /// Keeps the embedded store in `dir` (relative to the current
    /// directory), in place of the file's `[store] data_dir`. Only the
    /// embedded store reads it.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Sets `[api]`, replacing the file's: per-method stacks from this API
    /// definition (see [`ApiSettings`](crate::config::ApiSettings)). Needs
    /// the `openapi` feature.
    #[cfg(feature = "openapi")]
    pub fn api(mut self, api: crate::config::ApiSettings) -> Self {
        self.config.api = Some(api);
        self
    }

    /// The configuration being built, with its `[store]` as
    /// [`store`](Self::store) left it.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Resolves relative paths against `dir` (default: the configuration
    /// file's folder, or the current directory).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// The embedded store's folder: [`data_dir`](Self::data_dir), else
    /// `[store] data_dir` relative to the file's folder.
    fn embedded_dir(&self) -> Option<PathBuf> {
        self.data_dir.clone().or_else(|| {
            self.config
                .store
                .data_dir
                .as_ref()
                .map(|dir| self.base_dir.join(dir))
        })
    }

    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            retention_days: self.config.quota.retention_days,
            ..StoreOptions::default()
        }
    }

    /// Builds every configured layer on the **in-memory** store, without
    /// waiting: the store of `[store] kind = "memory"`, and of a
    /// configuration that gives neither `kind` nor `data_dir` (so that a
    /// file written before the embedded store existed builds as it did).
    /// Every other store needs [`build_async`](Self::build_async).
    ///
    /// Inside a Tokio runtime it starts the key cache's sync (changes made
    /// on the store, such as through the management API, reach the API-key
    /// layer at once) and the quota engine's flusher; outside one, neither
    /// runs, and only changes made through the gateway's own
    /// [`api_keys`](Gateway::api_keys) reach the API-key layer.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError`] naming the bad field: an unreadable or invalid policy,
    /// JWKS or web ACL, a key in an unknown plan, or a store other than the
    /// memory one (`store.kind`, which names `build_async`).
    pub fn build(self) -> Result<Gateway, ConfigFileError> {
        let file = self.file.clone();
        let store = &self.config.store;
        let memory = match store.kind {
            Some(StoreKind::Memory) => true,
            None => store.data_dir.is_none() && self.data_dir.is_none(),
            Some(StoreKind::Redis) => {
                return Err(ConfigFileError::from(ConfigError::new(
                    "store.kind",
                    REDIS_NEEDS_ASYNC,
                ))
                .in_file(file.as_deref()));
            }
            Some(_) => false,
        };
        if !memory {
            return Err(ConfigFileError::from(ConfigError::new(
                "store.kind",
                EMBEDDED_NEEDS_ASYNC,
            ))
            .in_file(file.as_deref()));
        }
        let store = LocalStore::memory_with(self.store_options(), self.clock.clone());
        now_or_never(self.assemble(Opened::Local(store, None)))
            .unwrap_or_else(|| {
                Err(ConfigError::new(
                    "store",
                    "internal: the in-memory store did not answer at once",
                ))
            })
            .map_err(|e| ConfigFileError::from(e).in_file(file.as_deref()))
    }

    /// Builds every configured layer on the configured store, opening the
    /// embedded one (the default, in `data_dir`) or connecting to Redis
    /// (with the `redis` feature), and seeds the store from
    /// `[[usage_plans]]` and `[[api_keys]]`: each plan and key whose id the
    /// store does not hold yet is written, with its plan associations; ids
    /// the store already holds are left as the store has them (the store
    /// wins; see `docs/config.md`).
    ///
    /// With `[store] kind = "redis"`, keys, plans, usage and quota counters
    /// are shared by every gateway on that Redis and key prefix
    /// (`RedisControlPlane`), and the throttle's buckets live there too. The
    /// Redis throttle scripts read Redis's own clock, one clock for every
    /// replica, unless a clock was given with [`clock`](Self::clock) (a
    /// manual clock in tests): then they take time from it.
    ///
    /// It starts the key cache's sync and the quota engine's flusher (every
    /// second); call [`Gateway::shutdown`] before the process exits, so that
    /// the unspent quota blocks go back to the store.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build); `store.data_dir` when the embedded store
    /// has no folder, or its database cannot be opened (another process has
    /// it open: redb locks the file); `store` when Redis does not answer
    /// within the connect timeout (1 s) or the seeding fails; `store.url`
    /// or `store.cluster_urls` unless exactly one of them is given for
    /// Redis.
    pub async fn build_async(self) -> Result<Gateway, ConfigFileError> {
        let file = self.file.clone();
        let result = async {
            let opened = match self.config.store.kind() {
                StoreKind::Memory => Opened::Local(
                    LocalStore::memory_with(self.store_options(), self.clock.clone()),
                    None,
                ),
                StoreKind::Redis => self.connect_redis().await?,
                StoreKind::Embedded => {
                    let dir = self
                        .embedded_dir()
                        .ok_or_else(|| ConfigError::new("store.data_dir", EMBEDDED_NEEDS_DIR))?;
                    let path = dir.join(DATABASE_FILE);
                    let cannot = |e: &dyn std::fmt::Display| {
                        ConfigError::new(
                            "store.data_dir",
                            format!("cannot open the embedded store {}: {e}", path.display()),
                        )
                    };
                    std::fs::create_dir_all(&dir).map_err(|e| cannot(&e))?;
                    let store =
                        LocalStore::open_with(&path, self.store_options(), self.clock.clone())
                            .map_err(|e| cannot(&e))?;
                    Opened::Local(store, Some(path))
                }
            };
            self.assemble(opened).await
        };
        result
            .await
            .map_err(|e| ConfigFileError::from(e).in_file(file.as_deref()))
    }

    /// Builds the configuration for a live reload of `running`
    /// ([`ReloadableGateway`](crate::ReloadableGateway)): every layer anew,
    /// on `running`'s store, throttle buckets, key cache and quota engine,
    /// without opening anything or writing to the store. The store's
    /// settings (`[store]`, the data folder, `quota.retention_days`) must
    /// be the running ones.
    pub(crate) async fn rebuild(self, running: &Gateway) -> Result<Gateway, ConfigFileError> {
        let file = self.file.clone();
        let result = async {
            self.check_fixed(running)?;
            let reused = Reused {
                store: running.store.clone(),
                database: running.database.clone(),
                throttle: running.throttle.store().clone(),
                keys: running.keys.clone(),
                engine: running.engine.clone(),
            };
            self.assemble(Opened::Reuse(Box::new(reused))).await
        };
        result
            .await
            .map_err(|e| ConfigFileError::from(e).in_file(file.as_deref()))
    }

    /// The configuration file, for a builder from one.
    pub(crate) fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Refuses a reload that changes what only a restart can: the store.
    fn check_fixed(&self, running: &Gateway) -> Result<(), ConfigError> {
        const RESTART: &str = "cannot change on a live reload (the store stays open): restart the gateway to change it";
        let (new, old) = (&self.config.store, &running.config.store);
        if new.kind() != running.store_kind() {
            return Err(ConfigError::new("store.kind", RESTART));
        }
        if running.store_kind() == StoreKind::Embedded {
            let path = self.embedded_dir().map(|dir| dir.join(DATABASE_FILE));
            if path.as_deref() != running.database_path() {
                return Err(ConfigError::new("store.data_dir", RESTART));
            }
        }
        if new.url != old.url {
            return Err(ConfigError::new("store.url", RESTART));
        }
        if new.cluster_urls != old.cluster_urls {
            return Err(ConfigError::new("store.cluster_urls", RESTART));
        }
        if new.key_prefix != old.key_prefix {
            return Err(ConfigError::new("store.key_prefix", RESTART));
        }
        if new.timeout_ms != old.timeout_ms {
            return Err(ConfigError::new("store.timeout_ms", RESTART));
        }
        if self.config.quota.retention_days != running.config.quota.retention_days {
            return Err(ConfigError::new("quota.retention_days", RESTART));
        }
        Ok(())
    }

    #[cfg(not(feature = "redis"))]
    #[allow(clippy::unused_async)]
    async fn connect_redis(&self) -> Result<Opened, ConfigError> {
        Err(ConfigError::new(
            "store.kind",
            "`redis` needs the facade's `redis` feature (portcullis-redis); use `embedded` or `memory`, or enable the feature",
        ))
    }

    /// Connects the control plane and the throttle store to Redis.
    #[cfg(feature = "redis")]
    async fn connect_redis(&self) -> Result<Opened, ConfigError> {
        use portcullis_redis::{
            DEFAULT_POLL_INTERVAL, LeasedThrottleStore, RedisConfig, RedisControlPlane, TimeSource,
        };
        let store = &self.config.store;
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
        // Fail-open: a replica starts while Redis is down (not ready until
        // it is reachable: `Gateway::is_ready`).
        if self.config.quota.on_store_error == portcullis_quota::OnStoreError::Allow {
            redis = redis.lazy_connect(true);
        }
        let failed = |e: &dyn std::fmt::Display| {
            ConfigError::new("store", format!("cannot connect to Redis at {where_}: {e}"))
        };
        let time = if self.custom_clock {
            TimeSource::Caller
        } else {
            TimeSource::Redis
        };
        // Throttle leases: about one script per lease instead of one per
        // request, with the same fleet-wide bound.
        let throttle = LeasedThrottleStore::connect(&redis)
            .await
            .map_err(|e| failed(&e))?
            .time_source(time);
        let control_plane = RedisControlPlane::connect_with(
            &redis,
            self.store_options(),
            self.clock.clone(),
            DEFAULT_POLL_INTERVAL,
        )
        .await
        .map_err(|e| failed(&e))?;
        Ok(Opened::Redis(control_plane, throttle))
    }

    /// Builds the layers on the opened store, after seeding it.
    async fn assemble(self, opened: Opened) -> Result<Gateway, ConfigError> {
        let Self {
            config,
            base_dir,
            clock,
            ..
        } = self;
        let g = &config.gateway;
        let api = ExecuteApiArn::new(&g.region, &g.account_id, &g.api_id, &g.stage)
            .map_err(|e| ConfigError::new(format!("gateway.{}", e.path()), e.message()))?;
        let resolver =
            ClientIpResolver::new().trust_proxies(config.client_ip.trusted_proxies.iter().copied());

        // The keys and plans of the file are checked as before (duplicate
        // ids and values, keys in unknown plans), then seed the store.
        let mut keys_config = ApiKeysConfig::default();
        keys_config.usage_plans.clone_from(&config.usage_plans);
        keys_config.api_keys.clone_from(&config.api_keys);
        ApiKeys::from_config_with_clock(keys_config, clock.clone())
            .map_err(|e| ConfigError::new(e.path.into_owned(), e.message))?;

        let mut reused = None;
        let (store, database, throttle_store) = match opened {
            Opened::Local(store, database) => (
                GatewayStore::Local(store),
                database,
                GatewayThrottleStore::Memory(InMemoryThrottleStore::new()),
            ),
            #[cfg(feature = "redis")]
            Opened::Redis(control_plane, throttle) => (
                GatewayStore::Redis(control_plane),
                None,
                GatewayThrottleStore::RedisLeased(throttle),
            ),
            Opened::Reuse(parts) => {
                let Reused {
                    store,
                    database,
                    throttle,
                    keys,
                    engine,
                } = *parts;
                reused = Some((keys, engine));
                (store, database, throttle)
            }
        };
        // A reload writes the file's changes to the store only once the
        // whole new configuration has built (`crate::reload`), and keeps the
        // running key cache and quota engine.
        let (keys, engine) = match reused {
            Some(state) => state,
            None => open_state(&store, &config, &clock).await?,
        };
        let api_key = keys.layer(g.api_id.clone(), g.stage.clone());

        // `[api]`: the definition, read before the throttle so that its
        // per-method limits are checked against it.
        #[cfg(feature = "openapi")]
        let definition = match &config.api {
            Some(settings) => Some((
                settings,
                Arc::new(crate::api::load_definition(settings, &base_dir)?),
            )),
            None => None,
        };
        let mut throttle =
            ThrottleLayer::new(g.api_id.as_str(), g.stage.as_str()).clock(clock.clone());
        #[cfg(feature = "openapi")]
        if let Some((settings, definition)) = &definition {
            for (selector, limit) in crate::api::method_throttles(settings, definition)? {
                throttle = throttle.stage_limit(selector, limit);
            }
        }
        if let Some(limit) = g.throttle {
            let all: MethodSelector = "/*/*"
                .parse()
                .map_err(|_| ConfigError::new("gateway.throttle", "internal: bad selector"))?;
            throttle = throttle.stage_limit(all, limit);
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            throttle_store.spawn_background();
        }
        // One rate-limit header convention for the throttle and the quota
        // (`[gateway]`; `[quota] rate_limit_headers_on_success` is the older
        // spelling of the second).
        let headers_on_success =
            g.rate_limit_headers_on_success || config.quota.rate_limit_headers_on_success;
        let throttle = throttle
            .rate_limit_headers(g.rate_limit_headers)
            .rate_limit_headers_on_success(headers_on_success)
            .with_store(throttle_store);

        let settings = &config.quota;
        let mut quota = QuotaLayer::with_store(engine.clone())
            .shared_clock(clock.clone())
            .week_start(settings.week_start.0)
            .on_store_error(settings.on_store_error)
            .rate_limit_headers(g.rate_limit_headers)
            .rate_limit_headers_on_success(headers_on_success);
        for (plan, start) in &settings.plan_starts {
            quota = quota.plan_start(plan.clone(), *start);
        }

        #[cfg(feature = "jwt")]
        let jwt = match &config.jwt {
            Some(jwt) => Some(
                jwt.build(&base_dir, clock.clone())
                    .map_err(|e| e.within("jwt"))?,
            ),
            None => None,
        };
        #[cfg(feature = "identity-pool")]
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
        #[cfg(feature = "sigv4")]
        let iam_policies = match &config.iam {
            Some(iam) => iam.policies(&base_dir).map_err(|e| e.within("iam"))?,
            None => Vec::new(),
        };
        #[cfg(feature = "sigv4")]
        let sigv4 = match &config.iam {
            Some(iam) => {
                let users = iam.credentials(&base_dir).map_err(|e| e.within("iam"))?;
                // Temporary credentials from the identity pool; long-term
                // users behind.
                #[cfg(feature = "identity-pool")]
                let layer = match &identity_pool {
                    Some(pool) => iam.build_with(
                        api.clone(),
                        pool.provider().with_fallback(users),
                        &base_dir,
                        clock.clone(),
                    ),
                    None => iam.build_with(api.clone(), users, &base_dir, clock.clone()),
                };
                #[cfg(not(feature = "identity-pool"))]
                let layer = iam.build_with(api.clone(), users, &base_dir, clock.clone());
                let layer = layer.map_err(|e| e.within("iam"))?;
                Some(layer.client_ip_resolver(resolver.clone()))
            }
            None => None,
        };
        #[cfg(feature = "openapi")]
        let (api_stack, access_log) = match &definition {
            Some((settings, definition)) => {
                #[cfg(feature = "authorizer")]
                let inputs = crate::api::ApiInputs {
                    api,
                    clock: &clock,
                    resolver: &resolver,
                };
                let stack = crate::api::ApiStack {
                    definition: Arc::clone(definition),
                    #[cfg(feature = "sigv4")]
                    sigv4: sigv4.clone(),
                    #[cfg(feature = "jwt")]
                    jwt: jwt.clone(),
                    #[cfg(feature = "authorizer")]
                    authorizers: crate::api::authorizers(settings, definition, &inputs)?,
                    body_limit: settings.max_body_bytes,
                };
                (
                    Some(stack),
                    Some(crate::api::access_log(settings, &resolver)?),
                )
            }
            None => (None, None),
        };
        #[cfg(not(all(feature = "openapi", feature = "authorizer")))]
        let _ = api;
        #[cfg(feature = "waf")]
        let waf = match &config.waf {
            Some(waf) => Some(
                waf.build(&base_dir, &g.account_id, clock.clone(), resolver)
                    .map_err(|e| e.within("waf"))?,
            ),
            None => None,
        };
        #[cfg(not(feature = "waf"))]
        let _ = resolver;
        #[cfg(not(any(
            feature = "sigv4",
            feature = "jwt",
            feature = "waf",
            feature = "openapi"
        )))]
        let _ = base_dir;
        let gateway = Gateway {
            config,
            store,
            database,
            keys,
            api_key,
            throttle,
            engine,
            quota,
            #[cfg(feature = "sigv4")]
            sigv4,
            #[cfg(feature = "jwt")]
            jwt,
            #[cfg(feature = "waf")]
            waf,
            #[cfg(feature = "identity-pool")]
            identity_pool,
            #[cfg(feature = "sigv4")]
            iam_policies,
            #[cfg(feature = "openapi")]
            api: api_stack,
            #[cfg(feature = "openapi")]
            access_log,
        };
        #[cfg(feature = "openapi")]
        if let Some(api) = &gateway.api {
            api.check(&gateway.layer())?;
        }
        Ok(gateway)
    }
}

/// The key cache (loaded after seeding the store from the file) and the
/// quota engine of a new gateway, with their background tasks.
async fn open_state(
    store: &GatewayStore,
    config: &Config,
    clock: &SharedClock,
) -> Result<(ApiKeys<GatewayKeyStore>, GatewayQuotaStore), ConfigError> {
    let reachable = store.is_available();
    let cache = if reachable {
        seed(store, config).await?;
        KeyCache::load(store.clone())
            .await
            .map_err(|e| store_failed(&e))?
    } else {
        // Started while the store is unreachable (fail-open on Redis):
        // no key is known, and the gateway is not ready, until it is
        // back; then the file is seeded and the keys loaded (below).
        tracing::warn!(
            "the store is unreachable: starting with no keys, not ready until it is back"
        );
        KeyCache::empty(store.clone()).map_err(|e| store_failed(&e))?
    };
    let keys = ApiKeys::with_store(cache).with_clock(clock.clone());
    let engine = QuotaEngine::new(store.clone());
    // Background work needs a Tokio runtime; `build` may run without one.
    if tokio::runtime::Handle::try_current().is_ok() {
        drop(keys.store().spawn_sync());
        drop(engine.spawn_flusher(FLUSH_PERIOD));
        if !reachable {
            drop(tokio::spawn(seed_when_reachable(
                keys.store().clone(),
                config.clone(),
            )));
        }
    }
    Ok((keys, engine))
}

fn store_failed(error: &StoreError) -> ConfigError {
    ConfigError::new("store", error.to_string())
}

/// For a gateway started while its store was unreachable: once it is
/// reachable, seeds it from the file and loads the keys.
async fn seed_when_reachable(cache: std::sync::Arc<KeyCache<GatewayStore>>, config: Config) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if std::sync::Arc::strong_count(&cache) == 1 {
            return; // the gateway is gone
        }
        if !cache.store().is_available() {
            continue;
        }
        match seed(cache.store(), &config).await {
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(%error, "seeding the store once it was reachable failed");
                continue;
            }
        }
        if let Err(error) = cache.refresh().await {
            tracing::warn!(%error, "loading the keys once the store was reachable failed");
            continue;
        }
        tracing::info!("the store is reachable: seeded and keys loaded");
        return;
    }
}

/// Writes the file's plans and keys the store does not hold yet: a plan or
/// key whose id is stored is left as it is (the store wins), and a key's
/// plan associations are written only with the key, so that a key an
/// operator took out of a plan stays out after a restart.
pub(crate) async fn seed(store: &GatewayStore, config: &Config) -> Result<(), ConfigError> {
    for (i, plan) in config.usage_plans.iter().enumerate() {
        let mut plan = plan.clone();
        // CreateUsagePlan needs a name; the file's plans may have none.
        if plan.name().is_none() {
            let name = plan.id().to_owned();
            plan = plan.with_name(name);
        }
        let new = NewUsagePlan {
            id: Some(plan.id().to_owned()),
            plan,
            tags: std::collections::BTreeMap::new(),
        };
        match store.create_usage_plan(new).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                tracing::debug!(plan = %config.usage_plans[i].id(), "seeding: the store has this usage plan; keeping the store's");
            }
            Err(e) => return Err(ConfigError::new(format!("usage_plans[{i}]"), e.to_string())),
        }
    }
    for (i, key) in config.api_keys.iter().enumerate() {
        let new = NewApiKey {
            id: Some(key.id.clone()),
            name: key.name.clone(),
            customer_id: key.customer_id.clone(),
            description: key.description.clone(),
            enabled: key.enabled,
            value: key.value.clone(),
            digest: key.value_sha256,
            stage_keys: Vec::new(),
            tags: key.tags.clone(),
        };
        match store.create_api_key(new).await {
            Ok(_) => {}
            Err(StoreError::Conflict(message)) => {
                // The same id: seeded before. Another key with this value:
                // a real clash, reported.
                if store.get_api_key(&key.id).await.is_ok() {
                    tracing::debug!(key = %key.id, "seeding: the store has this API key; keeping the store's");
                    continue;
                }
                return Err(ConfigError::new(format!("api_keys[{i}]"), message));
            }
            Err(e) => return Err(ConfigError::new(format!("api_keys[{i}]"), e.to_string())),
        }
        for (j, plan) in key.usage_plans.iter().enumerate() {
            match store.create_usage_plan_key(plan, &key.id, "API_KEY").await {
                Ok(_) => {}
                Err(e) => {
                    return Err(ConfigError::new(
                        format!("api_keys[{i}].usage_plans[{j}]"),
                        e.to_string(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Builds the identity pool; with no issuer of its own it takes tokens from
/// the `[jwt]` layer.
#[cfg(feature = "identity-pool")]
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
    builder
        .build()
        .map_err(|e| ConfigError::new(format!("identity_pool.{}", e.path()), e.message()))
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
            data_dir: None,
        }
    }

    /// A builder for the configuration file at `path`, with paths relative
    /// to its folder.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError`] naming the file and the bad field.
    pub fn builder_from_file(path: impl AsRef<Path>) -> Result<GatewayBuilder, ConfigFileError> {
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
            data_dir: None,
        })
    }

    /// Reads the file at `path` and builds every layer, on the system clock,
    /// on the configured store: [`GatewayBuilder::build_async`] for the
    /// file.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError`] naming the file and the bad field, the embedded
    /// store failing to open, or Redis not answering.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        Self::builder_from_file(path)?.build_async().await
    }

    /// Reads the file at `path` and builds every layer, on the system clock,
    /// on the in-memory store: [`GatewayBuilder::build`] for the file.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError`] naming the file and the bad field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        Self::builder_from_file(path)?.build()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The control-plane store: API keys, usage plans, plan keys, usage
    /// records and quota counters, live.
    #[must_use]
    pub fn store(&self) -> &GatewayStore {
        &self.store
    }

    /// Which store the gateway runs on.
    #[must_use]
    pub fn store_kind(&self) -> StoreKind {
        match (&self.store, &self.database) {
            (GatewayStore::Local(_), Some(_)) => StoreKind::Embedded,
            (GatewayStore::Local(_), None) => StoreKind::Memory,
            #[cfg(feature = "redis")]
            (GatewayStore::Redis(_), _) => StoreKind::Redis,
        }
    }

    /// The embedded store's database file, when the gateway runs on it.
    #[must_use]
    pub fn database_path(&self) -> Option<&Path> {
        self.database.as_deref()
    }

    /// The whole stack in API Gateway's order: WAF, then IAM (if `[iam]` is
    /// configured) or JWT (if `[jwt]` is), then API key (unless
    /// `gateway.api_key_required = false`), then throttle, then quota.
    ///
    /// Take pieces out per route with [`GatewayLayer`]'s methods:
    /// [`without_waf`](GatewayLayer::without_waf) drops only the WAF (the
    /// IAM or JWT authorizer stays), [`auth(None)`](GatewayLayer::auth) the
    /// authorizer, [`without_api_key`](GatewayLayer::without_api_key) the
    /// API key and the quota. The crate documentation's "Per-route stacks"
    /// shows them on axum routes.
    ///
    /// With `[api]`, each method of the definition gets its own chain
    /// instead, in the same order: the WAF, then the route match (an unknown
    /// path or method gets 403 Missing Authentication Token; a CORS preflight
    /// is answered here, without credentials), then the method's authorizer
    /// (`[iam]` for `awsSigv4`, `[jwt]` for `cognito_user_pools` and its
    /// scopes, `[api.authorizers.NAME]` for a custom one), then its API key
    /// if it requires one (from the header or the authorizer, as the
    /// definition's `x-amazon-apigateway-api-key-source` says), then the
    /// throttle (with `[api.method_throttles]`) and the quota, then request
    /// validation. The definition decides which methods need a key:
    /// `gateway.api_key_required` is not read.
    pub fn layer(&self) -> GatewayLayer {
        let layer = GatewayLayer::new()
            .api_key(Some(self.api_key.clone()))
            .throttle(Some(self.throttle.clone()))
            .quota(Some(self.quota.clone()));
        #[cfg(feature = "waf")]
        let layer = layer.waf(self.waf.clone());
        #[cfg(feature = "openapi")]
        if let Some(api) = &self.api {
            let mut layer = layer;
            layer.api = Some(api.clone());
            return layer;
        }
        let layer = layer.auth(self.auth());
        if self.config.gateway.api_key_required {
            layer
        } else {
            layer.without_api_key()
        }
    }

    /// The authorizer of [`layer`](Self::layer): IAM if `[iam]` is
    /// configured, else JWT if `[jwt]` is.
    fn auth(&self) -> Option<crate::stack::Auth> {
        #[cfg(feature = "sigv4")]
        if let Some(sigv4) = &self.sigv4 {
            return Some(Auth::Iam(sigv4.clone()));
        }
        #[cfg(feature = "jwt")]
        if let Some(jwt) = &self.jwt {
            return Some(Auth::Jwt(jwt.clone()));
        }
        None
    }

    /// The API definition of `[api]`, loaded and checked. Needs the
    /// `openapi` feature.
    #[cfg(feature = "openapi")]
    #[must_use]
    pub fn api_definition(&self) -> Option<&portcullis_openapi::ApiDefinition> {
        self.api.as_ref().map(|api| &*api.definition)
    }

    /// With `[api]`: the access-log layer of `[api.access_log]` (without
    /// one, a layer that writes no line and still sets `x-amzn-RequestId`
    /// on every response). Put it outermost, outside the WAF, so that every
    /// response, refusals included, is logged and carries the id. Needs the
    /// `openapi` feature.
    #[cfg(feature = "openapi")]
    #[must_use]
    pub fn access_log_layer(&self) -> Option<portcullis_openapi::access_log::AccessLogLayer> {
        self.access_log.clone()
    }

    /// The IAM users' identity policies, by principal ARN, for the
    /// management API's authorization
    /// ([`ManagementApi::policies`](portcullis_control_plane::ManagementApi::policies)):
    /// the same users as the data plane, whose policies allow
    /// `apigateway:*` actions on `arn:aws:apigateway:{region}::/apikeys/...`
    /// and `/usageplans/...` as needed. Temporary credentials (the identity
    /// pool's roles) are not in it. Empty without the `sigv4` feature,
    /// which reads `[iam]`.
    #[must_use]
    pub fn management_policies(&self) -> portcullis_control_plane::PolicyMap {
        #[cfg_attr(not(feature = "sigv4"), allow(unused_mut))]
        let mut map = portcullis_control_plane::PolicyMap::new();
        #[cfg(feature = "sigv4")]
        for (arn, policy) in &self.iam_policies {
            map.insert(arn.clone(), Arc::clone(policy));
        }
        map
    }

    /// API Gateway's management API over the gateway's store, in the
    /// gateway's region, through its quota engine (so UpdateUsage takes
    /// effect on this replica at once). It refuses every caller until told
    /// who may do what: `.policies(gateway.management_policies())` behind a
    /// SigV4 layer with the `apigateway` scope, or `.authorized_in_front()`
    /// behind one that authorized the request itself.
    #[must_use]
    pub fn management_api(&self) -> ManagementApi<GatewayStore> {
        ManagementApi::new(self.quota.usage_api()).region(self.config.gateway.region.clone())
    }

    /// The WAF layer, if `[waf]` is configured. Needs the `waf` feature.
    #[cfg(feature = "waf")]
    #[must_use]
    pub fn waf_layer(&self) -> Option<WafLayer> {
        self.waf.clone()
    }

    /// The identity pool, if `[identity_pool]` is configured. Its
    /// credentials already pass the [`sigv4_layer`](Self::sigv4_layer); mount
    /// its [`credentials_service`](IdentityPool::credentials_service) on a
    /// route of its own (such as `POST /credentials`), outside the API's
    /// authorizers, as Cognito's endpoint is. Needs the `identity-pool`
    /// feature.
    #[cfg(feature = "identity-pool")]
    #[must_use]
    pub fn identity_pool(&self) -> Option<&IdentityPool> {
        self.identity_pool.as_ref()
    }

    /// The SigV4 (IAM) layer, if `[iam]` is configured. Needs the `sigv4`
    /// feature.
    #[cfg(feature = "sigv4")]
    #[must_use]
    pub fn sigv4_layer(&self) -> Option<SigV4Layer> {
        self.sigv4.clone()
    }

    /// The JWT layer, if `[jwt]` is configured. Needs the `jwt` feature.
    #[cfg(feature = "jwt")]
    #[must_use]
    pub fn jwt_layer(&self) -> Option<JwtLayer> {
        self.jwt.clone()
    }

    /// The API-key layer, reading the store's keys through the key cache.
    pub fn api_key_layer(&self) -> ApiKeyLayer<GatewayKeyStore> {
        self.api_key.clone()
    }

    /// The throttle layer, on the gateway's throttle store: buckets in this
    /// process, or on Redis with `[store] kind = "redis"`.
    pub fn throttle_layer(&self) -> ThrottleLayer<GatewayThrottleStore> {
        self.throttle.clone()
    }

    /// The quota layer, counting against blocks reserved in the gateway's
    /// store.
    pub fn quota_layer(&self) -> QuotaLayer<GatewayQuotaStore> {
        self.quota.clone()
    }

    /// The quota engine under the quota layer.
    #[must_use]
    pub fn quota_engine(&self) -> &GatewayQuotaStore {
        &self.engine
    }

    /// The API keys, changeable at run time: writes go to the store and
    /// reach every layer of this gateway before they answer (and every
    /// replica on the same Redis within a second). The usage plans are the
    /// store's ([`store`](Self::store)).
    #[must_use]
    pub fn api_keys(&self) -> &ApiKeys<GatewayKeyStore> {
        &self.keys
    }

    /// The usage admin service: GetUsagePlans, GetUsagePlan,
    /// GetUsagePlanKeys, GetUsagePlanKey, GetUsage and UpdateUsage over the
    /// live store (the management API with
    /// [`usage_admin_only`](ManagementApi::usage_admin_only)), answering
    /// lists under `items`. It authorizes nothing itself
    /// ([`authorized_in_front`](ManagementApi::authorized_in_front)): mount
    /// it behind the SigV4 layer, which leaves the `Caller` it needs
    /// (without one it answers 403 Missing Authentication Token).
    #[must_use]
    pub fn usage_admin(&self) -> GatewayUsageAdmin {
        self.management_api()
            .authorized_in_front()
            .usage_admin_only()
    }

    /// Reports every quota block's count and gives back what is unspent
    /// (and, on Redis, the throttle's leases), so that nothing reserved is
    /// counted as used after the restart; call
    /// it before the process exits (after the server stopped taking
    /// requests).
    ///
    /// # Errors
    ///
    /// The store's failure to take the reports.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        // Throttle leases not given back cost only under-admission until
        // their deadline (250 ms): a failure is logged, not returned.
        if let Err(error) = self.throttle.store().shutdown().await {
            tracing::warn!(%error, "giving back throttle leases failed");
        }
        self.engine.shutdown().await
    }

    /// Whether the store can be reached now: a readiness signal for load
    /// balancers and Kubernetes probes (serve it on a health route). `false`
    /// while a Redis store's circuit breaker is open; requests are then
    /// decided by the quota and throttle layers' failure policies, and
    /// quota blocks in hand keep serving exactly. Always `true` on a local
    /// store.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.engine.is_available()
    }
}

/// The usage admin service of a [`Gateway`] (see [`Gateway::usage_admin`]).
pub type GatewayUsageAdmin = ManagementApi<GatewayStore>;
