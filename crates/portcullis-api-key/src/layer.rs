//! [`ApiKeyLayer`]: the layer and its settings.

use std::sync::Arc;

use http::{HeaderName, Request};
use portcullis_core::context::ApiKeyContext;

use crate::config::{ApiKeyLayerConfig, X_API_KEY};
use crate::decision::{Shared, record_accept};
use crate::refusal::{ApiKeyRefusal, record_refusal};
use crate::store::{ApiKeyStore, InMemoryApiKeyStore};

/// Where the layer reads a request's key: API Gateway's `apiKeySource`,
/// defined in `portcullis-core` so that an OpenAPI definition names the same
/// type.
pub use portcullis_core::context::ApiKeySource;

/// Requires an API key, as API Gateway does for a method with
/// `apiKeyRequired`: a missing, unknown or disabled key, or a key in no usage
/// plan for the layer's stage, gets INVALID_API_KEY
/// (403 `{"message":"Forbidden"}`); an accepted key is left in the request's
/// [`RequestContext`](portcullis_core::context::RequestContext) as an [`ApiKeyContext`], with the usage plan that
/// applies on this layer's stage.
///
/// Build it from the application's [`ApiKeys`](crate::ApiKeys) handle with
/// [`ApiKeys::layer`](crate::ApiKeys::layer), or over any
/// [`ApiKeyStore`] with [`ApiKeyLayer::with_store`]. Every clone shares the
/// store.
#[derive(Debug)]
#[must_use]
pub struct ApiKeyLayer<St = InMemoryApiKeyStore> {
    pub(crate) shared: Arc<Shared<St>>,
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
