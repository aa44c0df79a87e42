//! [`ReloadableGateway`]: the whole gateway configuration reloaded live, on
//! the running store.
//!
//! A reload reads the configuration again with the same loader as the
//! first build (so an error names its file and field, as
//! `portcullis config check` prints it), builds every layer anew, and
//! swaps the compiled stacks atomically. Each request loads the current
//! stack once, when it is called, and keeps it until it finishes: a request
//! in flight during a reload ends on the configuration it started with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::{Request, Response};
use portcullis_control_plane::{ApiKeyUpdate, ControlPlaneStore, StoreError};
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_layer::Layer;
use tower_service::Service;

use crate::boxed::{Boxed, BoxedStack, GatewayBody, GatewayResponseBody, GatewayService};
use crate::config::{Config, ConfigError, ConfigFileError};
use crate::gateway::{Gateway, GatewayBuilder};
use crate::stack::GatewayLayer;
use crate::store::GatewayStore;

type Loader = dyn Fn() -> Result<GatewayBuilder, ConfigFileError> + Send + Sync;

/// A [`Gateway`] whose whole configuration can be reloaded while it serves
/// (what is kept and what is rebuilt is below).
///
/// Its [`layer`](Self::layer) and [`service`](Self::service) make services
/// that follow the reloads: each request loads the current compiled stack
/// (one atomic load) and keeps it until it finishes. Clones share the
/// gateway.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis::ReloadableGateway;
/// use tower::Layer;
///
/// let gateway = ReloadableGateway::connect("gateway.toml").await?;
/// // SIGHUP reloads `gateway.toml`; a bad file is logged and refused.
/// gateway.reload_on_sighup()?;
/// let app = gateway.layer().layer(tower::service_fn(|_request| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
/// }));
/// # drop(app);
/// // Or reload in code: the old configuration keeps serving on an error.
/// if let Err(error) = gateway.reload().await {
///     eprintln!("reload refused: {error}");
/// }
/// # Ok(())
/// # }
/// ```
///
/// # What a reload keeps, and what it rebuilds
///
/// Kept (the same objects, with their background tasks):
/// - the control-plane store: the embedded database is never opened twice,
///   Redis connections are not made again;
/// - the throttle's buckets (keyed by API key and plan, stage and method):
///   a plan whose limits did not change keeps its buckets' tokens; a plan
///   whose limits changed applies the new rate and burst to the same
///   buckets;
/// - the quota engine and its counters (keyed by plan and key): a plan
///   whose quota did not change keeps its count exactly; a changed limit
///   applies to the count so far;
/// - the key cache (refreshed from the store before the swap).
///
/// Rebuilt from the file: the WAF's web ACL (and its IP sets, regex sets
/// and rule groups), the IAM users, their keys and policies and the
/// resource policy, the JWT issuer (JWKS, client ids, audiences), the
/// identity pool, `[api]` (the definition, per-method throttles, custom
/// authorizers, the access log), `[gateway]` (stage throttle, whether a key
/// is required), `[client_ip]`, and the quota layer's settings. Caches
/// held by rebuilt layers start empty (custom authorizers' results, JWKS
/// fetched from a URL).
///
/// Written to the store, once the whole new configuration has built (so
/// that a refused file writes nothing): what changed in the file since the
/// configuration running, as an operator's edit. A plan added is created; a
/// plan whose definition changed is updated to the file's (its tags kept);
/// a key added is created with its plans; a key whose `usage_plans` list
/// changed is added to and removed from those plans; a key whose `enabled`
/// changed is enabled or disabled. Plans and keys the file did not change
/// are left as the store has them (changes made through the management API
/// stay), and plans or keys removed from the file are left in the store
/// (delete them with the management API).
///
/// Refused, with the old configuration still serving: anything that only a
/// restart can change, which is the store (`[store]`, the embedded store's
/// folder, `quota.retention_days`). Listen addresses are the application's,
/// not the file's; they do not change either. Run-time rates set through a
/// throttle layer's `ThrottleHandle` are not carried over.
#[derive(Clone)]
pub struct ReloadableGateway {
    shared: Arc<Shared>,
}

struct Shared {
    current: ArcSwap<Gateway>,
    loader: Box<Loader>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The services that follow the reloads.
    services: Mutex<Vec<Weak<dyn Rebuild>>>,
}

impl fmt::Debug for ReloadableGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableGateway")
            .field("current", &self.shared.current.load())
            .finish_non_exhaustive()
    }
}

impl ReloadableGateway {
    /// Builds the gateway of the file at `path` on its configured store
    /// ([`Gateway::connect`]); [`reload`](Self::reload) reads that file
    /// again.
    ///
    /// # Errors
    ///
    /// As [`Gateway::connect`]: [`ConfigFileError`] naming the file and field.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        Self::with_loader(move || Gateway::builder_from_file(&path)).await
    }

    /// Builds the gateway from the builder `loader` returns
    /// ([`GatewayBuilder::build_async`]); [`reload`](Self::reload) calls
    /// `loader` again. Give the same overrides every time (a `--store` or
    /// `--data-dir` flag, a test clock): the loader is where they live.
    ///
    /// # Errors
    ///
    /// `loader`'s error, or [`GatewayBuilder::build_async`]'s.
    pub async fn with_loader<F>(loader: F) -> Result<Self, ConfigFileError>
    where
        F: Fn() -> Result<GatewayBuilder, ConfigFileError> + Send + Sync + 'static,
    {
        let gateway = loader()?.build_async().await?;
        Ok(Self {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(gateway),
                loader: Box::new(loader),
                reloading: tokio::sync::Mutex::new(()),
                services: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The gateway serving now. Requests already running may still be on
    /// an older one.
    #[must_use]
    pub fn current(&self) -> Arc<Gateway> {
        self.shared.current.load_full()
    }

    /// Reads the configuration again (the loader given at construction:
    /// the same file) and swaps it in: see [`reload_with`](Self::reload_with).
    ///
    /// # Errors
    ///
    /// As [`reload_with`](Self::reload_with); the old configuration keeps
    /// serving.
    pub async fn reload(&self) -> Result<(), ConfigFileError> {
        let builder = (self.shared.loader)()?;
        self.reload_with(builder).await
    }

    /// Builds `builder`'s configuration on the running store, writes what
    /// changed in it to the store, and swaps every stack this gateway made
    /// ([`layer`](Self::layer), [`service`](Self::service)) to it. Requests
    /// in flight finish on the stack they started with. Reloads run one at
    /// a time.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError`] naming the file (for a builder from a file) and the
    /// field: anything [`GatewayBuilder::build_async`] refuses, a service of
    /// [`try_service`](Self::try_service) refusing it, and a change
    /// to the store's settings (`store.kind`, `store.data_dir`, `store.url`,
    /// `store.cluster_urls`, `store.key_prefix`, `store.timeout_ms`,
    /// `quota.retention_days`), which needs a restart. Nothing is written
    /// to the store and the old configuration keeps serving. If the store
    /// then fails to take the file's changes (`usage_plans[i]`,
    /// `api_keys[i]`, `store`), the old configuration keeps serving, and
    /// the changes written before the failure stay: reload again.
    pub async fn reload_with(&self, builder: GatewayBuilder) -> Result<(), ConfigFileError> {
        let _one_at_a_time = self.shared.reloading.lock().await;
        let file = builder.file().map(Path::to_path_buf);
        let running = self.shared.current.load_full();
        let next = builder.rebuild(&running).await?;
        // Every stack is built before any is swapped in.
        let services: Vec<Arc<dyn Rebuild>> = {
            let mut services = self
                .shared
                .services
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            services.retain(|service| service.strong_count() > 0);
            services.iter().filter_map(Weak::upgrade).collect()
        };
        let commits = services
            .into_iter()
            .map(|service| service.prepare(&next))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| {
                ConfigFileError::from(ConfigError::whole(message)).in_file(file.as_deref())
            })?;
        // Only then is the file's change written to the store, and the
        // key cache brought up to date, before the swap.
        apply_file_changes(next.store(), running.config(), next.config())
            .await
            .map_err(|e| ConfigFileError::from(e).in_file(file.as_deref()))?;
        next.api_keys().store().refresh().await.map_err(|e| {
            ConfigFileError::from(ConfigError::new("store", e.to_string())).in_file(file.as_deref())
        })?;
        self.shared.current.store(Arc::new(next));
        for commit in commits {
            commit();
        }
        match &file {
            Some(file) => tracing::info!(file = %file.display(), "gateway configuration reloaded"),
            None => tracing::info!("gateway configuration reloaded"),
        }
        Ok(())
    }

    /// Reloads on every SIGHUP, in a task on the current Tokio runtime,
    /// until this gateway (every clone) is dropped. A refused reload is
    /// logged (`tracing`, at ERROR, with the file and field) and the old
    /// configuration keeps serving.
    ///
    /// # Errors
    ///
    /// The signal handler cannot be installed.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let shared = Arc::downgrade(&self.shared);
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let gateway = ReloadableGateway { shared };
                match gateway.reload().await {
                    Ok(()) => {}
                    Err(error) => {
                        tracing::error!(%error, "reload refused; the old configuration keeps serving");
                    }
                }
            }
        }))
    }

    /// The composed layer ([`Gateway::layer`]) of the configuration
    /// serving, rebuilt on each reload.
    pub fn layer(&self) -> ReloadableLayer {
        self.layer_with(Gateway::layer)
    }

    /// The layer `make` builds from the gateway (such as
    /// `|g| g.layer().without_waf()`), rebuilt on each reload.
    pub fn layer_with<F>(&self, make: F) -> ReloadableLayer
    where
        F: Fn(&Gateway) -> GatewayLayer + Send + Sync + 'static,
    {
        ReloadableLayer {
            gateway: self.clone(),
            make: Arc::new(make),
        }
    }

    /// The service `build` makes from the gateway (a whole axum `Router`
    /// built from its layers, say), built now and again on each reload.
    /// Each request is served by the service built from one configuration.
    pub fn service<S, F>(&self, build: F) -> ReloadableService<S>
    where
        S: Send + Sync + 'static,
        F: Fn(&Gateway) -> S + Send + Sync + 'static,
    {
        let first = build(&self.shared.current.load());
        self.register(first, Box::new(move |gateway| Ok(build(gateway))))
    }

    /// As [`service`](Self::service), for a `build` that can refuse a
    /// configuration (one without a section the application needs): a
    /// reload it refuses is refused (a [`ConfigFileError`] with its message),
    /// and the old configuration keeps serving.
    ///
    /// # Errors
    ///
    /// `build`'s error for the configuration serving now.
    pub fn try_service<S, E, F>(&self, build: F) -> Result<ReloadableService<S>, E>
    where
        S: Send + Sync + 'static,
        E: fmt::Display,
        F: Fn(&Gateway) -> Result<S, E> + Send + Sync + 'static,
    {
        let first = build(&self.shared.current.load())?;
        Ok(self.register(
            first,
            Box::new(move |gateway| build(gateway).map_err(|e| e.to_string())),
        ))
    }

    fn register<S: Send + Sync + 'static>(
        &self,
        first: S,
        build: Box<Build<S>>,
    ) -> ReloadableService<S> {
        let slot = Arc::new(Slot {
            current: ArcSwap::from_pointee(first),
            build,
        });
        let weak: Weak<dyn Rebuild> = Arc::downgrade(&slot) as Weak<dyn Rebuild>;
        self.shared
            .services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(weak);
        ReloadableService { slot }
    }

    /// Gives the unspent quota blocks back to the store
    /// ([`Gateway::shutdown`]; the quota engine is the same across reloads).
    ///
    /// # Errors
    ///
    /// The store's failure to take the reports.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.current().shutdown().await
    }
}

/// How a slot's service is built from a gateway.
type Build<S> = dyn Fn(&Gateway) -> Result<S, String> + Send + Sync;

/// What swaps a built service in.
type Commit = Box<dyn FnOnce() + Send>;

/// A service rebuilt on reloads.
trait Rebuild: Send + Sync {
    /// Builds the service for `gateway`, and returns what swaps it in.
    fn prepare(self: Arc<Self>, gateway: &Gateway) -> Result<Commit, String>;
}

struct Slot<S> {
    current: ArcSwap<S>,
    build: Box<Build<S>>,
}

impl<S: Send + Sync + 'static> Rebuild for Slot<S> {
    fn prepare(self: Arc<Self>, gateway: &Gateway) -> Result<Commit, String> {
        let next = Arc::new((self.build)(gateway)?);
        Ok(Box::new(move || self.current.store(next)))
    }
}

/// A service that follows a [`ReloadableGateway`]'s reloads: per request,
/// it loads the service built from the current configuration (one atomic
/// load), clones it and calls it; the request keeps that clone, and so the
/// configuration it started with, until it finishes.
///
/// It is always ready: the clone is driven to readiness in the returned
/// future (tower's `oneshot`).
pub struct ReloadableService<S> {
    slot: Arc<Slot<S>>,
}

impl<S> Clone for ReloadableService<S> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<S> fmt::Debug for ReloadableService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableService").finish_non_exhaustive()
    }
}

impl<S> ReloadableService<S> {
    /// The service built from the configuration serving now.
    #[must_use]
    pub fn current(&self) -> Arc<S> {
        self.slot.current.load_full()
    }
}

impl<S, R> Service<R> for ReloadableService<S>
where
    S: Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Oneshot<S, R>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        let service = S::clone(&self.slot.current.load());
        service.oneshot(request)
    }
}

/// The layer of [`ReloadableGateway::layer`]: around each inner service, the
/// composed stack of the configuration serving, rebuilt on each reload.
#[derive(Clone)]
#[must_use]
pub struct ReloadableLayer {
    gateway: ReloadableGateway,
    make: Arc<dyn Fn(&Gateway) -> GatewayLayer + Send + Sync>,
}

impl fmt::Debug for ReloadableLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableLayer").finish_non_exhaustive()
    }
}

impl<S, ResBody> Layer<S> for ReloadableLayer
where
    S: Service<Request<GatewayBody>, Response = Response<ResBody>> + GatewayService<ResBody>,
    ResBody: GatewayResponseBody,
{
    type Service = ReloadableService<Boxed<BoxedStack<S::Error>>>;

    fn layer(&self, inner: S) -> Self::Service {
        let make = Arc::clone(&self.make);
        self.gateway
            .service(move |gateway| make(gateway).layer(inner.clone()))
    }
}

/// Writes to the store what changed in the file between `old` and `new`
/// (see [`ReloadableGateway`]).
async fn apply_file_changes(
    store: &GatewayStore,
    old: &Config,
    new: &Config,
) -> Result<(), ConfigError> {
    // Plans and keys the store does not hold yet.
    crate::gateway::seed(store, new).await?;
    for (i, plan) in new.usage_plans.iter().enumerate() {
        let Some(before) = old.usage_plans.iter().find(|p| p.id() == plan.id()) else {
            continue;
        };
        if before == plan {
            continue;
        }
        let failed = |e: StoreError| ConfigError::new(format!("usage_plans[{i}]"), e.to_string());
        let mut record = store.get_usage_plan(plan.id()).await.map_err(failed)?;
        let mut plan = plan.clone();
        if plan.name().is_none() {
            let name = plan.id().to_owned();
            plan = plan.with_name(name);
        }
        record.plan = plan;
        store.update_usage_plan(record).await.map_err(failed)?;
    }
    for (i, key) in new.api_keys.iter().enumerate() {
        let Some(before) = old.api_keys.iter().find(|k| k.id == key.id) else {
            continue;
        };
        let field = format!("api_keys[{i}]");
        if before.enabled != key.enabled {
            store
                .update_api_key(&key.id, ApiKeyUpdate::new().enabled(key.enabled))
                .await
                .map_err(|e| ConfigError::new(format!("{field}.enabled"), e.to_string()))?;
        }
        for (j, plan) in key.usage_plans.iter().enumerate() {
            if before.usage_plans.contains(plan) {
                continue;
            }
            match store.create_usage_plan_key(plan, &key.id, "API_KEY").await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => {
                    return Err(ConfigError::new(
                        format!("{field}.usage_plans[{j}]"),
                        e.to_string(),
                    ));
                }
            }
        }
        for plan in &before.usage_plans {
            if key.usage_plans.contains(plan) {
                continue;
            }
            match store.delete_usage_plan_key(plan, &key.id).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    return Err(ConfigError::new(
                        format!("{field}.usage_plans"),
                        e.to_string(),
                    ));
                }
            }
        }
    }
    Ok(())
}
