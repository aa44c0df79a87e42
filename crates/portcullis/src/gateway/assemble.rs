//! `GatewayBuilder::assemble`: every configured layer, built on the
//! opened store.

#[cfg(any(feature = "openapi", feature = "sigv4"))]
use std::sync::Arc;

use portcullis_api_key::{ApiKeys, ApiKeysConfig};
use portcullis_core::client_ip::ClientIpResolver;
#[cfg(feature = "identity-pool")]
use portcullis_core::clock::SharedClock;
use portcullis_core::plan::MethodSelector;
use portcullis_iam::ExecuteApiArn;
#[cfg(feature = "sigv4")]
use portcullis_iam::PolicyDocument;
#[cfg(feature = "identity-pool")]
use portcullis_identity_pool::{IdentityPool, IdentityPoolConfig};
#[cfg(feature = "identity-pool")]
use portcullis_jwt::JwtLayer;
use portcullis_quota::QuotaLayer;
#[cfg(feature = "sigv4")]
use portcullis_sigv4::{CredentialProvider, SigV4FileConfig, StaticCredentialProvider};
use portcullis_throttle::{InMemoryThrottleStore, ThrottleLayer};

use super::Gateway;
use super::builder::GatewayBuilder;
use super::open::{Opened, Reused, open_state};
use crate::config::ConfigError;
use crate::store::{GatewayStore, GatewayThrottleStore};

impl GatewayBuilder {
    /// Builds the layers on the opened store, after seeding it.
    pub(super) async fn assemble(self, opened: Opened) -> Result<Gateway, ConfigError> {
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
            .clock(clock.clone())
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
        // The users' policy files are read once, here: the management API's
        // policies come from the same credentials.
        #[cfg(feature = "sigv4")]
        let mut iam_policies = Vec::new();
        #[cfg(feature = "sigv4")]
        let sigv4 = match &config.iam {
            Some(iam) => {
                let users = iam.credentials(&base_dir).map_err(|e| e.within("iam"))?;
                iam_policies = users_policies(iam, &users);
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
            api.check(&gateway.layer().chain)?;
        }
        Ok(gateway)
    }
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
    builder.build().map_err(|e| e.within("identity_pool"))
}

/// Each `[iam]` user's identity policies, by principal ARN, as its
/// credential holds them (read from their files by
/// [`credentials`](SigV4FileConfig::credentials)): a user whose access key
/// id a later user takes over has no credential, so no policies either.
#[cfg(feature = "sigv4")]
fn users_policies(
    iam: &SigV4FileConfig,
    users: &StaticCredentialProvider,
) -> Vec<(String, Arc<PolicyDocument>)> {
    let mut seen = std::collections::HashSet::new();
    let mut policies = Vec::new();
    for user in &iam.users {
        if !seen.insert(user.access_key_id.as_str()) {
            continue;
        }
        // A static provider answers at once.
        if let Some(Ok(Some(credential))) = users.lookup(&user.access_key_id).ready() {
            policies.extend(
                credential
                    .policies()
                    .iter()
                    .map(|policy| (credential.principal_arn().to_owned(), Arc::clone(policy))),
            );
        }
    }
    policies
}
