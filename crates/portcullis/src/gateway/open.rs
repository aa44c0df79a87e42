//! The store a gateway runs on: opened, or taken over on a reload, and
//! seeded from the file.

use std::path::PathBuf;
use std::time::Duration;

use portcullis_api_key::ApiKeys;
use portcullis_control_plane::{
    ControlPlaneStore, EngineConfig, KeyCache, LocalStore, NewApiKey, NewUsagePlan, QuotaEngine,
    StoreError,
};
use portcullis_core::clock::SharedClock;

use crate::config::{Config, ConfigError};
use crate::store::{GatewayKeyStore, GatewayQuotaStore, GatewayStore, GatewayThrottleStore};

/// How often the quota engine reports usage to the store (the bound on how
/// stale the usage records another replica reads are).
const FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// The store chosen, opened or connected.
pub(super) enum Opened {
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
/// (`GatewayBuilder::rebuild`): the store (never opened twice), the
/// throttle's buckets, the key cache and the quota engine, with their
/// background tasks.
pub(super) struct Reused {
    pub(super) store: GatewayStore,
    pub(super) database: Option<PathBuf>,
    pub(super) throttle: GatewayThrottleStore,
    pub(super) keys: ApiKeys<GatewayKeyStore>,
    pub(super) engine: GatewayQuotaStore,
}

/// The key cache (loaded after seeding the store from the file) and the
/// quota engine of a new gateway, with their background tasks.
pub(super) async fn open_state(
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
    // In memory, each request is counted on the store's counter: no block
    // (and no engine entry a key) for a store that writes nothing and that
    // no other process shares. Embedded and Redis stores keep their blocks.
    let engine = QuotaEngine::with_config(
        store.clone(),
        EngineConfig {
            count_in_place: true,
            ..EngineConfig::default()
        },
    );
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
