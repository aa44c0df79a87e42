//! [`QuotaCheck`]: a request's quota check, resolved by
//! [`QuotaLayer::resolve`] for a store that decides it together with other
//! work.

use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use portcullis_core::context::RequestContextExt;
use portcullis_core::ratelimit::{RateLimitHeaders, RateLimitInfo};
use portcullis_core::refusal::Refusal;
use portcullis_core::store::OnStoreError;
use tracing::Span;

use crate::layer::QuotaLayer;
use crate::refusal::QuotaRefusal;
use crate::shared::{
    Counters, RateInfo, record_key, trace_admitted, trace_pass, trace_refused, window_seconds,
};
use crate::store::{Decision, QuotaRequest};

/// A request's quota check, resolved by a [`QuotaLayer`] for a store that
/// decides it together with other work (such as `portcullis-redis`'s
/// combined usage-plan layer, which decides the throttle and the quota in one
/// round trip), and how to conclude once that store has answered.
///
/// Made by [`QuotaLayer::resolve`].
#[derive(Debug)]
pub struct QuotaCheck {
    plan_id: Arc<str>,
    key_id: Arc<str>,
    quota: portcullis_core::plan::QuotaSettings,
    window: crate::Window,
    day: time::Date,
    initial_window: Option<crate::Window>,
    info: RateInfo,
    on_error: OnStoreError,
    headers_on_success: bool,
    counters: Arc<Counters>,
    /// The layer's span, open until the decision.
    span: Span,
}

impl QuotaCheck {
    /// The question for the store, as the layer would ask it.
    #[must_use]
    pub fn request(&self) -> QuotaRequest<'_> {
        QuotaRequest {
            plan_id: &self.plan_id,
            key_id: &self.key_id,
            quota: self.quota,
            window: self.window,
            day: self.day,
            initial_window: self.initial_window,
        }
    }

    /// What the layer would do with the store's `result`: `Ok` with the
    /// rate-limit headers to add to the inner service's response (when the
    /// layer writes them on success), or `Err` with the refusal (429
    /// `QUOTA_EXCEEDED` with `Retry-After`, or 500 when the store failed and
    /// the layer refuses on store errors). Counts and traces the decision as
    /// the layer does.
    ///
    /// # Errors
    ///
    /// The refusal, as a response ready to send.
    pub fn conclude<ReqBody, ResBody>(
        &self,
        result: Result<Decision, &(dyn std::error::Error + 'static)>,
        request: &Request<ReqBody>,
    ) -> Result<Option<HeaderMap>, Box<Response<portcullis_core::ResponseBody<ResBody>>>> {
        self.decide(result, request)
            .map(|admitted| admitted.map(|info| info.headers()))
    }

    /// As [`conclude`](Self::conclude), but an admitted request's rate-limit
    /// policy comes unwritten, with the convention the layer writes it in:
    /// for a caller that merges it with another layer's policies into one
    /// set of headers ([`RateLimitInfo::apply`]), as a stack of layers does.
    ///
    /// # Errors
    ///
    /// The refusal, as a response ready to send (its policy is in its
    /// extensions, for a layer outside to merge into).
    pub fn conclude_rate_limit<ReqBody, ResBody>(
        &self,
        result: Result<Decision, &(dyn std::error::Error + 'static)>,
        request: &Request<ReqBody>,
    ) -> Result<Option<Policy>, Box<Response<portcullis_core::ResponseBody<ResBody>>>> {
        self.decide(result, request)
            .map(|admitted| admitted.map(|info| (RateLimitInfo::one(info.policy()), info.style)))
    }

    /// The decision of `conclude`: the admitted request's quota state (when
    /// the layer writes headers on success), or the refusal.
    fn decide<ReqBody, ResBody>(
        &self,
        result: Result<Decision, &(dyn std::error::Error + 'static)>,
        request: &Request<ReqBody>,
    ) -> Result<Option<RateInfo>, Box<Response<portcullis_core::ResponseBody<ResBody>>>> {
        let info = |remaining| RateInfo {
            remaining,
            ..self.info
        };
        let span = &self.span;
        let _entered = span.enter();
        if result.is_ok() {
            self.counters.store_answered();
        }
        match result {
            Ok(decision) if decision.admitted => {
                trace_admitted(span, &self.plan_id, &self.key_id, decision.remaining);
                self.counters.admitted.increment(1);
                Ok(self.headers_on_success.then(|| info(decision.remaining)))
            }
            Ok(decision) => {
                trace_refused(
                    span,
                    &self.plan_id,
                    &self.key_id,
                    self.info.limit,
                    self.info.reset_seconds,
                );
                self.counters.rejected.increment(1);
                Err(Box::new(info(decision.remaining).refusal(request)))
            }
            Err(error) => {
                self.counters.store_failed(
                    self.on_error,
                    &self.plan_id,
                    &self.key_id,
                    &error,
                    span,
                );
                match self.on_error {
                    OnStoreError::Allow => Ok(None),
                    OnStoreError::Refuse => {
                        Err(Box::new(QuotaRefusal::StoreFailed.into_response(request)))
                    }
                }
            }
        }
    }
}

/// An admitted request's rate-limit policy and the convention to write it
/// in.
type Policy = (RateLimitInfo, RateLimitHeaders);

impl<St> QuotaLayer<St> {
    /// Resolves `request`'s quota check exactly as the layer's service does
    /// (the key and plan from the [`ApiKeyContext`](portcullis_core::context::ApiKeyContext), the period from the
    /// layer's clock and calendar). `None` when the layer would pass the
    /// request untouched (no API key context, or a plan without a quota),
    /// which it counts as the layer does.
    ///
    /// This is for a store that decides the quota together with other work
    /// in one call; a plain store needs none of it (use the layer).
    pub fn resolve<ReqBody>(&self, request: &Request<ReqBody>) -> Option<QuotaCheck> {
        let shared = &*self.shared;
        let span = portcullis_core::layer_span!("quota");
        let key = request.api_key();
        let found = key.and_then(|key| {
            key.usage_plan()
                .and_then(|plan| plan.quota().map(|quota| (key, plan, *quota)))
        });
        let Some((key, plan, quota)) = found else {
            let _entered = span.enter();
            match key {
                None => trace_pass(&span, "no_api_key", None),
                Some(key) => trace_pass(&span, "no_quota", Some(key.key_id())),
            }
            shared.counters.pass.increment(1);
            return None;
        };
        record_key(&span, plan.id(), key.key_id());
        let now = shared.clock.now_unix_nanos();
        let seconds = i64::try_from(now / 1_000_000_000).unwrap_or(i64::MAX);
        let (window, day) = shared.calendar.window_at_unix(quota.period(), seconds);
        Some(QuotaCheck {
            plan_id: Arc::from(plan.id()),
            key_id: key.key_id_arc().clone(),
            quota,
            window,
            day,
            initial_window: shared.initial_window(plan.id(), quota.period()),
            info: RateInfo {
                limit: quota.limit(),
                remaining: 0,
                reset_seconds: window.seconds_until_reset(now),
                window_seconds: window_seconds(window),
                style: shared.headers,
            },
            on_error: shared.on_store_error,
            headers_on_success: shared.headers_on_success
                && shared.headers != RateLimitHeaders::None,
            counters: Arc::clone(&shared.counters),
            span,
        })
    }
}
