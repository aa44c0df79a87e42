//! The composed layer: the plain layer chain, or, with `[api]`, the
//! per-method chains built from its layers.

use http::{Request, Response};
use portcullis_api_key::ApiKeyLayer;
use portcullis_quota::QuotaLayer;
use portcullis_throttle::ThrottleLayer;
#[cfg(feature = "waf")]
use portcullis_waf::WafLayer;
use tower_layer::Layer;
use tower_service::Service;

use crate::boxed::{Boxed, BoxedStack, GatewayBody, GatewayResponseBody, GatewayService};
use crate::chain::{Auth, Chain};
use crate::store::{GatewayKeyStore, GatewayQuotaStore, GatewayThrottleStore};

/// The composed layer: WAF, then IAM or JWT, then API key, then throttle,
/// then quota (API Gateway's order), each present only if configured, all
/// inside the request's span, `portcullis.request`, whose id every
/// response carries as `x-amzn-RequestId` (see
/// [`without_request_span`](GatewayLayer::without_request_span)).
///
/// The layers are composed with static types: each optional layer sits in a
/// slot that is either the layer's service or the service inside it, so the
/// type is the same whatever is configured, and each layer's response body
/// is unwrapped (`ResponseBody::into_inner`) rather than boxed. Only the
/// whole stack is erased, once, behind a [`BoxedStack`]: per request that is
/// one boxed future, the request body boxed on the way in (and not again
/// below the WAF or SigV4 when they pass it through: their bodies are
/// unwrapped; only a body they read and replay is boxed once more), the
/// user's response body boxed
/// on the way out, and a refusal's bytes boxed; nothing per layer. Cloning
/// the stack (axum clones the routed service per request) costs one
/// reference count.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct GatewayLayer {
    /// The layers: the one stack for every route, or the layers the
    /// per-method chains take theirs from.
    pub(crate) chain: Chain,
    /// `[api]`: per-method chains from the definition, in place of the
    /// one stack for every route.
    pub(crate) api: Option<ApiSlot>,
}

/// The `[api]` slot.
#[cfg(feature = "openapi")]
pub(crate) type ApiSlot = crate::api::ApiStack;

/// The `[api]` slot in a build without the `openapi` feature: always
/// empty.
#[cfg(not(feature = "openapi"))]
#[derive(Clone, Debug)]
pub(crate) enum ApiSlot {}

impl GatewayLayer {
    /// An empty stack, to fill with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or removes) the WAF. Needs the `waf` feature.
    #[cfg(feature = "waf")]
    pub fn waf(mut self, waf: Option<WafLayer>) -> Self {
        self.chain.waf = waf;
        self
    }

    /// Whether the stack applies an API definition's per-method settings
    /// (`[api]`): then the authorizer and API key are chosen per method, and
    /// an unknown route gets 403 Missing Authentication Token. Always
    /// false without the `openapi` feature.
    #[must_use]
    pub fn has_api(&self) -> bool {
        self.api.is_some()
    }

    /// Drops the API definition: one stack for every route again, as
    /// without `[api]`.
    pub fn without_api(mut self) -> Self {
        self.api = None;
        self
    }

    /// Drops the WAF, and only the WAF: for a per-route stack under an
    /// app-wide WAF. The authorizer (IAM or JWT, as configured), API key,
    /// throttle and quota stay; drop the authorizer with
    /// [`auth(None)`](Self::auth), and the API key and quota with
    /// [`without_api_key`](Self::without_api_key).
    pub fn without_waf(mut self) -> Self {
        self.chain.waf = None;
        self
    }

    /// Opens no `portcullis.request` span: the layers' spans are then
    /// children of whatever span the application entered. Each request
    /// still gets its `RequestId` and its response `x-amzn-RequestId`.
    ///
    /// By default the stack opens the request's span outermost (unless an
    /// outer layer, such as the access-log layer, already did), with the
    /// request id, and records on it the API key's id, the principal, the
    /// outcome, the reason and the status.
    pub fn without_request_span(mut self) -> Self {
        self.chain.no_request_span = true;
        self
    }

    /// Sets (or removes, with `None`) the authorizer: `Auth::Iam` (the
    /// `sigv4` feature) or `Auth::Jwt` (the `jwt` feature).
    /// [`Gateway::layer`](crate::Gateway::layer) sets IAM when `[iam]` is
    /// configured, else JWT when `[jwt]` is; `auth(None)` gives a route that
    /// takes no credential (an API key alone, say).
    pub fn auth(mut self, auth: Option<Auth>) -> Self {
        self.chain.auth = auth;
        self
    }

    /// Sets (or removes) the API-key layer. Without it, throttle and quota
    /// by key do not apply (API Gateway's methods that need no key).
    pub fn api_key(mut self, api_key: Option<ApiKeyLayer<GatewayKeyStore>>) -> Self {
        self.chain.api_key = api_key;
        self
    }

    /// Drops the API key, throttle and quota (a method with no key).
    pub fn without_api_key(mut self) -> Self {
        self.chain.api_key = None;
        self.chain.quota = None;
        self
    }

    /// Sets (or removes) the throttle.
    pub fn throttle(mut self, throttle: Option<ThrottleLayer<GatewayThrottleStore>>) -> Self {
        self.chain.throttle = throttle;
        self
    }

    /// Sets (or removes) the quota.
    pub fn quota(mut self, quota: Option<QuotaLayer<GatewayQuotaStore>>) -> Self {
        self.chain.quota = quota;
        self
    }

    /// Sets (or removes) the throttle and quota decided together on Redis
    /// (`portcullis-redis`), in one round trip per request. Set it in place
    /// of [`throttle`](Self::throttle) and [`quota`](Self::quota).
    #[cfg(feature = "redis")]
    pub fn usage_plan(mut self, usage_plan: Option<portcullis_redis::RedisUsagePlanLayer>) -> Self {
        self.chain.usage_plan = usage_plan;
        self
    }
}

impl<S, ResBody> Layer<S> for GatewayLayer
where
    S: Service<Request<GatewayBody>, Response = Response<ResBody>> + GatewayService<ResBody>,
    ResBody: GatewayResponseBody,
{
    type Service = Boxed<BoxedStack<S::Error>>;

    fn layer(&self, inner: S) -> Self::Service {
        #[cfg(feature = "openapi")]
        if let Some(api) = &self.api {
            return api.layer(&self.chain, inner);
        }
        self.chain.layer(inner)
    }
}
