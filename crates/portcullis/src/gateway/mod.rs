//! [`Gateway`]: every layer built from one [`Config`].
//!
//! The builder ([`GatewayBuilder`], `builder.rs`) opens the store
//! (`open.rs`: the store kinds, seeding it from the file) and assembles the
//! layers on it (`assemble.rs`); this file is the built gateway.

use std::path::{Path, PathBuf};
#[cfg(feature = "sigv4")]
use std::sync::Arc;

use portcullis_api_key::{ApiKeyLayer, ApiKeys};
use portcullis_control_plane::{ManagementApi, StoreError};
#[cfg(feature = "sigv4")]
use portcullis_iam::PolicyDocument;
#[cfg(feature = "identity-pool")]
use portcullis_identity_pool::IdentityPool;
#[cfg(feature = "jwt")]
use portcullis_jwt::JwtLayer;
use portcullis_quota::QuotaLayer;
#[cfg(feature = "sigv4")]
use portcullis_sigv4::SigV4Layer;
use portcullis_throttle::ThrottleLayer;
#[cfg(feature = "waf")]
use portcullis_waf::WafLayer;

#[cfg(any(feature = "sigv4", feature = "jwt"))]
use crate::chain::Auth;
use crate::config::{Config, StoreKind};
use crate::stack::GatewayLayer;
pub use crate::store::{GatewayKeyStore, GatewayQuotaStore};
use crate::store::{GatewayStore, GatewayThrottleStore};

mod assemble;
mod builder;
mod open;

pub use builder::GatewayBuilder;
pub(crate) use open::seed;

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

impl Gateway {
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
    fn auth(&self) -> Option<crate::chain::Auth> {
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
