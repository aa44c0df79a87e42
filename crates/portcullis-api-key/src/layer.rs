//! [`ApiKeyLayer`] and its service, [`ApiKey`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderName, Request, Response};
use portcullis_core::context::{ApiKeyContext, RequestContext, RequestContextExt};
use portcullis_core::refusal::Refusal;
use portcullis_core::trace::{self, Decision, REFUSED};
use portcullis_core::{GatewayResponse, GatewayResponseType, ResponseBody};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::config::ApiKeyLayerConfig;
use crate::future::ResponseFuture;
use crate::key::ApiKeyRecord;
use crate::key::{KeyDigest, validate_key_value};
use crate::store::{ApiKeyStore, ApiKeyStoreError, InMemoryApiKeyStore};

/// The header API Gateway reads keys from: `x-api-key`.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Where the layer reads a request's key: API Gateway's `apiKeySource`,
/// defined in `portcullis-core` so that an OpenAPI definition names the same
/// type.
pub use portcullis_core::context::ApiKeySource;

/// Why the layer refused a request. Every refusal is API Gateway's
/// INVALID_API_KEY (403 `Forbidden`), except [`ApiKeyRefusal::StoreFailed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiKeyRefusal {
    /// No key: no header, an empty one, or no `UsageIdentifierKey`.
    Missing,
    /// A key that cannot be valid: not 20 to 128 alphanumeric characters, or
    /// the header given twice. It is refused without being hashed.
    Malformed,
    /// No key has this value.
    Unknown,
    /// The key is disabled.
    Disabled,
    /// The key is in no usage plan for the layer's stage. API Gateway admits
    /// a key only on the stages of the usage plans it is in, so a key created
    /// and not yet added to a plan is refused with 403 `Forbidden`. See
    /// [`ApiKeyLayer::require_usage_plan`].
    NoUsagePlan,
    /// The store failed: API_CONFIGURATION_ERROR (500 `Internal server
    /// error`). The layer fails closed.
    StoreFailed,
}

impl ApiKeyRefusal {
    /// The type of the gateway response the layer answers with.
    fn kind(self) -> GatewayResponseType {
        match self {
            ApiKeyRefusal::StoreFailed => GatewayResponseType::ApiConfigurationError,
            _ => GatewayResponseType::InvalidApiKey,
        }
    }
}

impl Refusal for ApiKeyRefusal {
    /// API Gateway's INVALID_API_KEY (403), or API_CONFIGURATION_ERROR (500)
    /// when the store failed.
    fn gateway_response(&self) -> GatewayResponse {
        GatewayResponse::new(self.kind())
    }

    /// A short name for logs and metrics (`missing`, `malformed`, `unknown`,
    /// `disabled`, `no_usage_plan`, `store_failed`).
    fn detail(&self) -> &'static str {
        match self {
            ApiKeyRefusal::Missing => "missing",
            ApiKeyRefusal::Malformed => "malformed",
            ApiKeyRefusal::Unknown => "unknown",
            ApiKeyRefusal::Disabled => "disabled",
            ApiKeyRefusal::NoUsagePlan => "no_usage_plan",
            ApiKeyRefusal::StoreFailed => "store_failed",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared<St> {
    store: Arc<St>,
    api_id: Box<str>,
    stage: Box<str>,
    source: ApiKeySource,
    header: HeaderName,
    usage_plan_required: bool,
}

impl<St> Shared<St> {
    fn rebuild(&self, f: impl FnOnce(&mut Self)) -> Arc<Self> {
        let mut settings = Self {
            store: self.store.clone(),
            api_id: self.api_id.clone(),
            stage: self.stage.clone(),
            source: self.source,
            header: self.header.clone(),
            usage_plan_required: self.usage_plan_required,
        };
        f(&mut settings);
        Arc::new(settings)
    }

    /// The digest of the key the request presents, after the cheap checks.
    fn presented<B>(&self, request: &Request<B>) -> Result<KeyDigest, ApiKeyRefusal> {
        let bytes = match self.source {
            ApiKeySource::Header => {
                let mut values = request.headers().get_all(&self.header).iter();
                let value = values.next().ok_or(ApiKeyRefusal::Missing)?;
                if values.next().is_some() {
                    return Err(ApiKeyRefusal::Malformed);
                }
                value.as_bytes()
            }
            ApiKeySource::Authorizer => request
                .request_context()
                .and_then(RequestContext::usage_identifier_key)
                .ok_or(ApiKeyRefusal::Missing)?
                .expose()
                .as_bytes(),
        };
        if bytes.is_empty() {
            return Err(ApiKeyRefusal::Missing);
        }
        validate_key_value(bytes).map_err(|_| ApiKeyRefusal::Malformed)?;
        Ok(KeyDigest::of(bytes))
    }

    /// The decision, once the store has answered.
    pub(crate) fn decide(
        &self,
        digest: &KeyDigest,
        found: Result<Option<&ApiKeyRecord>, ApiKeyStoreError>,
        span: &Span,
    ) -> Result<ApiKeyContext, ApiKeyRefusal> {
        let record = match found {
            Ok(Some(record)) => record,
            Ok(None) => return Err(ApiKeyRefusal::Unknown),
            Err(error) => {
                tracing::warn!(layer = "api_key", outcome = REFUSED, reason = GatewayResponseType::ApiConfigurationError.as_str(), detail = ApiKeyRefusal::StoreFailed.detail(), %error, "API key store failed");
                return Err(ApiKeyRefusal::StoreFailed);
            }
        };
        // The map matched on the digest already; compare again in constant
        // time so that a store answering the wrong record cannot let a key in.
        if !bool::from(record.digest.ct_eq(digest)) {
            return Err(ApiKeyRefusal::Unknown);
        }
        if !record.enabled {
            trace::record_key_id(span, &record.id);
            tracing::debug!(layer = "api_key", outcome = REFUSED, reason = GatewayResponseType::InvalidApiKey.as_str(), detail = ApiKeyRefusal::Disabled.detail(), key_id = %record.id, "API key refused");
            return Err(ApiKeyRefusal::Disabled);
        }
        let mut context = ApiKeyContext::new(record.id.clone());
        if let Some(name) = &record.name {
            context = context.with_name(name.clone());
        }
        if let Some(customer_id) = &record.customer_id {
            context = context.with_customer_id(customer_id.clone());
        }
        match record.usage_plan_for(&self.api_id, &self.stage) {
            Some(plan) => context = context.with_usage_plan(plan.clone()),
            None if self.usage_plan_required => {
                trace::record_key_id(span, &record.id);
                tracing::debug!(layer = "api_key", outcome = REFUSED, reason = GatewayResponseType::InvalidApiKey.as_str(), detail = ApiKeyRefusal::NoUsagePlan.detail(), key_id = %record.id, "API key refused");
                return Err(ApiKeyRefusal::NoUsagePlan);
            }
            None => {}
        }
        Ok(context)
    }
}

pub(crate) fn record_accept(context: &ApiKeyContext, span: &Span) {
    let decision = Decision::allowed();
    decision.record(span);
    trace::record_key_id(span, context.key_id());
    if let Some(plan) = context.usage_plan() {
        trace::record_plan_id(span, plan.id());
    }
    tracing::debug!(layer = "api_key", outcome = decision.outcome().as_str(), reason = decision.reason(), key_id = %context.key_id(), "API key accepted");
    metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "allowed", "reason" => "OK").increment(1);
}

/// `portcullis_api_key_decision_seconds`: the time of a decision made in
/// `call` (a store that must be awaited is timed by its own metrics).
fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_api_key_decision_seconds")
        .record(start.elapsed().as_secs_f64());
}

pub(crate) fn record_refusal(refusal: ApiKeyRefusal, span: &Span) {
    let decision = refusal.decision();
    decision.record(span);
    // Literal labels on every arm: the metric key is static and costs no
    // allocation.
    match refusal {
        ApiKeyRefusal::Missing => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::Malformed => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::Unknown => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::Disabled => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::NoUsagePlan => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::StoreFailed => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "API_CONFIGURATION_ERROR").increment(1);
        }
    }
    if !matches!(
        refusal,
        ApiKeyRefusal::Disabled | ApiKeyRefusal::NoUsagePlan | ApiKeyRefusal::StoreFailed
    ) {
        tracing::debug!(
            layer = "api_key",
            outcome = decision.outcome().as_str(),
            reason = decision.reason(),
            detail = refusal.detail(),
            "API key refused"
        );
    }
}

/// Requires an API key, as API Gateway does for a method with
/// `apiKeyRequired`: a missing, unknown or disabled key, or a key in no usage
/// plan for the layer's stage, gets INVALID_API_KEY
/// (403 `{"message":"Forbidden"}`); an accepted key is left in the request's
/// [`RequestContext`] as an [`ApiKeyContext`], with the usage plan that
/// applies on this layer's stage.
///
/// Build it from the application's [`ApiKeys`](crate::ApiKeys) handle with
/// [`ApiKeys::layer`](crate::ApiKeys::layer), or over any
/// [`ApiKeyStore`] with [`ApiKeyLayer::with_store`]. Every clone shares the
/// store.
#[derive(Debug)]
#[must_use]
pub struct ApiKeyLayer<St = InMemoryApiKeyStore> {
    shared: Arc<Shared<St>>,
}

impl<St> Clone for ApiKeyLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<St: ApiKeyStore> ApiKeyLayer<St> {
    /// A layer over `store` for the stage `stage` of the API `api_id`, reading
    /// keys from `x-api-key`.
    pub fn with_store(store: Arc<St>, api_id: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                api_id: api_id.into().into_boxed_str(),
                stage: stage.into().into_boxed_str(),
                source: ApiKeySource::Header,
                header: X_API_KEY,
                usage_plan_required: true,
            }),
        }
    }

    /// A layer over `store` with the settings of `config`.
    pub fn from_config(store: Arc<St>, config: ApiKeyLayerConfig) -> Self {
        Self::with_store(store, config.api_id, config.stage)
            .source(config.source)
            .header_name(config.header)
            .require_usage_plan(config.require_usage_plan)
    }

    /// Reads keys from `source` (default [`ApiKeySource::Header`]).
    pub fn source(self, source: ApiKeySource) -> Self {
        Self {
            shared: self.shared.rebuild(|s| s.source = source),
        }
    }

    /// Reads keys from this header rather than `x-api-key` (with
    /// [`ApiKeySource::Header`]).
    pub fn header_name(self, header: HeaderName) -> Self {
        Self {
            shared: self.shared.rebuild(|s| s.header = header),
        }
    }

    /// Whether a key must be in a usage plan for the layer's stage (default
    /// `true`, as API Gateway: a key in no plan for the stage gets
    /// [`ApiKeyRefusal::NoUsagePlan`], 403 `Forbidden`). Turn it off to use API keys
    /// as plain credentials with no usage plans, as AppSync's keys are.
    pub fn require_usage_plan(self, required: bool) -> Self {
        Self {
            shared: self.shared.rebuild(|s| s.usage_plan_required = required),
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<St> {
        &self.shared.store
    }

    /// Decides on `request` without calling anything, when the store can
    /// answer at once (see [`ApiKeyStore::lookup_now`]); `None` when it
    /// cannot. This is the layer's whole decision, for callers that are not
    /// Tower services. It records the decision's event and counter.
    pub fn authenticate_now<B>(
        &self,
        request: &Request<B>,
    ) -> Option<Result<ApiKeyContext, ApiKeyRefusal>> {
        let span = portcullis_core::layer_span!("api_key");
        let _entered = span.enter();
        let outcome = match self.shared.presented(request) {
            Ok(digest) => {
                let shared = &*self.shared;
                shared
                    .store
                    .lookup_now(&digest, |found| shared.decide(&digest, found, &span))?
            }
            Err(refusal) => Err(refusal),
        };
        match &outcome {
            Ok(context) => record_accept(context, &span),
            Err(refusal) => record_refusal(*refusal, &span),
        }
        Some(outcome)
    }
}

impl<S, St> Layer<S> for ApiKeyLayer<St> {
    type Service = ApiKey<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKey {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`ApiKeyLayer`] builds.
#[derive(Debug)]
pub struct ApiKey<S, St = InMemoryApiKeyStore> {
    inner: S,
    shared: Arc<Shared<St>>,
}

impl<S: Clone, St> Clone for ApiKey<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, St: ApiKeyStore> ApiKey<S, St> {
    /// The layer over `store` for the stage `stage` of the API `api_id`: the
    /// same as [`ApiKeyLayer::with_store`].
    pub fn layer(
        store: Arc<St>,
        api_id: impl Into<String>,
        stage: impl Into<String>,
    ) -> ApiKeyLayer<St> {
        ApiKeyLayer::with_store(store, api_id, stage)
    }
}

impl<S, St> ApiKey<S, St> {
    portcullis_core::inner_service_accessors!();
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for ApiKey<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: ApiKeyStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let span = portcullis_core::layer_span!("api_key");
        let entered = span.enter();
        let shared = &*self.shared;
        let digest = match shared.presented(&request) {
            Ok(digest) => digest,
            Err(refusal) => {
                record_refusal(refusal, &span);
                record_seconds(start);
                return ResponseFuture::answered(refusal.into_response(&request));
            }
        };
        match shared
            .store
            .lookup_now(&digest, |found| shared.decide(&digest, found, &span))
        {
            Some(Ok(context)) => {
                record_accept(&context, &span);
                record_seconds(start);
                request.request_context_mut().set_api_key(context);
                // The span covers the decision, not the inner service.
                drop(entered);
                ResponseFuture::inner(self.inner.call(request))
            }
            Some(Err(refusal)) => {
                record_refusal(refusal, &span);
                record_seconds(start);
                ResponseFuture::answered(refusal.into_response(&request))
            }
            None => {
                drop(entered);
                // The store must be awaited: keep the ready service for this
                // request and leave a fresh clone in its place (tower's "be
                // careful when cloning inner services").
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let lookup = shared.store.lookup(&digest);
                ResponseFuture::lookup(lookup, request, ready, self.shared.clone(), digest, span)
            }
        }
    }
}
