//! [`GatewayBuilder`]: the configuration, its folder and clock, and the
//! store it opens.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
#[cfg(feature = "redis")]
use std::time::Duration;

use portcullis_control_plane::{DATABASE_FILE, LocalStore, StoreOptions};
use portcullis_core::clock::{SharedClock, SystemClock};

use super::Gateway;
use super::open::{Opened, Reused};
use crate::config::{Config, ConfigError, ConfigFileError, StoreKind};

/// Builds a [`Gateway`].
#[derive(Debug)]
#[must_use]
pub struct GatewayBuilder {
    pub(super) config: Config,
    pub(super) base_dir: PathBuf,
    file: Option<PathBuf>,
    pub(super) clock: SharedClock,
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
            DEFAULT_POLL_INTERVAL, LeasedThrottleStore, RedisConfig, RedisControlPlane, ScriptClock,
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
            ScriptClock::Caller
        } else {
            ScriptClock::Redis
        };
        // Throttle leases: about one script per lease instead of one per
        // request, with the same fleet-wide bound.
        let throttle = LeasedThrottleStore::connect(&redis)
            .await
            .map_err(|e| failed(&e))?
            .script_clock(time);
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
}
