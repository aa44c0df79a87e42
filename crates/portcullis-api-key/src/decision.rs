//! The layer's settings, shared by every clone, and its decision: which key
//! a request presents, and whether it is admitted.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, Request};
use portcullis_core::GatewayResponseType;
use portcullis_core::context::{ApiKeyContext, ApiKeySource, RequestContext, RequestContextExt};
use portcullis_core::refusal::Refusal;
use portcullis_core::trace::{self, Decision, REFUSED};
use subtle::ConstantTimeEq;
use tracing::Span;

use crate::key::ApiKeyRecord;
use crate::key::{KeyDigest, validate_key_value};
use crate::refusal::ApiKeyRefusal;
use crate::store::ApiKeyStoreError;

#[derive(Debug)]
pub(crate) struct Shared<St> {
    pub(crate) store: Arc<St>,
    pub(crate) api_id: Box<str>,
    pub(crate) stage: Box<str>,
    pub(crate) source: ApiKeySource,
    pub(crate) header: HeaderName,
    pub(crate) usage_plan_required: bool,
}

impl<St> Shared<St> {
    pub(crate) fn rebuild(&self, f: impl FnOnce(&mut Self)) -> Arc<Self> {
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
    pub(crate) fn presented<B>(&self, request: &Request<B>) -> Result<KeyDigest, ApiKeyRefusal> {
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
pub(crate) fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_api_key_decision_seconds")
        .record(start.elapsed().as_secs_f64());
}
