//! The state every part of the layer shares: the settings and the store
//! ([`Shared`]), the metrics ([`Counters`]), the quota state told to the
//! client ([`RateInfo`]) and the decision's trace. The layer, its service,
//! its future, the quota check and the usage API import it; it imports none
//! of them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Request, Response};
use portcullis_core::clock::SharedClock;
use portcullis_core::plan::QuotaPeriod;
use portcullis_core::ratelimit::{RateLimitHeaders, RateLimitInfo, RateLimitPolicy};
use portcullis_core::refusal::Refusal;
use portcullis_core::store::OnStoreError;
use portcullis_core::trace;
use portcullis_core::{GatewayResponseType, ResponseBody};
use time::OffsetDateTime;
use tracing::Span;

use crate::calendar::{Calendar, Window};
use crate::refusal::QuotaRefusal;

/// The shared state and settings of a [`QuotaLayer`](crate::QuotaLayer),
/// its services and its [`UsageApi`](crate::UsageApi).
pub(crate) struct Shared<St> {
    pub(crate) store: Arc<St>,
    pub(crate) clock: SharedClock,
    pub(crate) calendar: Calendar,
    pub(crate) plan_starts: BTreeMap<String, OffsetDateTime>,
    pub(crate) on_store_error: OnStoreError,
    pub(crate) headers_on_success: bool,
    pub(crate) headers: RateLimitHeaders,
    pub(crate) counters: Arc<Counters>,
}

impl<St> Clone for Shared<St> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            calendar: self.calendar,
            plan_starts: self.plan_starts.clone(),
            on_store_error: self.on_store_error,
            headers_on_success: self.headers_on_success,
            headers: self.headers,
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<St> Shared<St> {
    /// The initial period of `plan_id`, when a start was configured for it.
    pub(crate) fn initial_window(&self, plan_id: &str, period: QuotaPeriod) -> Option<Window> {
        if self.plan_starts.is_empty() {
            return None;
        }
        self.plan_starts
            .get(plan_id)
            .map(|start| self.calendar.window(period, *start))
    }
}

impl<St: fmt::Debug> fmt::Debug for Shared<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaSettings")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("calendar", &self.calendar)
            .field("plan_starts", &self.plan_starts)
            .field("on_store_error", &self.on_store_error)
            .field("headers_on_success", &self.headers_on_success)
            .field("headers", &self.headers)
            .finish()
    }
}

/// The quota state told to the client: limit, remaining, reset, in the
/// layer's convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateInfo {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) reset_seconds: u64,
    /// The period's length in seconds (`w`).
    pub(crate) window_seconds: u64,
    pub(crate) style: RateLimitHeaders,
}

impl RateInfo {
    /// The quota as the policy `"quota"`: `q` the plan's limit, `w` the
    /// period, `r` what remains, `t` the seconds to the reset. After an
    /// UpdateUsage extension left more than the limit, `r` is capped at `q`
    /// (a client is never told it has more than the plan's limit; it may be
    /// served more than `r` requests, never fewer).
    pub(crate) fn policy(&self) -> RateLimitPolicy {
        RateLimitPolicy::new(
            "quota",
            self.limit,
            self.window_seconds,
            self.remaining.min(self.limit),
            self.reset_seconds,
        )
    }

    /// Adds the headers of an admitted request to its response, merged with
    /// those of a layer inside.
    pub(crate) fn apply<B>(&self, response: &mut Response<B>) {
        RateLimitInfo::one(self.policy()).apply(self.style, response);
    }

    /// The headers of an admitted request, alone.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        RateLimitInfo::one(self.policy()).write(self.style, &mut map);
        map
    }

    /// The QUOTA_EXCEEDED refusal with these headers and `Retry-After`
    /// (seconds to the reset), its policy left in the extensions for a layer
    /// outside.
    pub(crate) fn refusal<ReqBody, ResBody>(
        &self,
        request: &Request<ReqBody>,
    ) -> Response<ResponseBody<ResBody>> {
        let info = RateLimitInfo::refusal(self.policy());
        let mut map = HeaderMap::new();
        info.write(self.style, &mut map);
        map.insert(RETRY_AFTER, HeaderValue::from(self.reset_seconds));
        // `Refusal::into_response`, with the headers given to the gateway
        // response before it renders (so a configured override of one of
        // them still wins, as it does for every gateway response).
        let refusal = QuotaRefusal::Exceeded;
        let mut response = refusal
            .gateway_response()
            .with_headers(map)
            .into_response(request);
        response.extensions_mut().insert(refusal);
        response.extensions_mut().insert(info);
        response
    }
}

/// The layer's `metrics` counters, `portcullis_quota_decisions_total` by
/// `outcome` and `reason`, and `portcullis_quota_usage_updates_total`,
/// registered once when the layer is built (so install the metrics recorder
/// before building the layer).
pub(crate) struct Counters {
    pub(crate) pass: metrics::Counter,
    pub(crate) admitted: metrics::Counter,
    pub(crate) rejected: metrics::Counter,
    store_error_allowed: metrics::Counter,
    store_error_refused: metrics::Counter,
    pub(crate) usage_updated: metrics::Counter,
    pub(crate) seconds: metrics::Histogram,
    /// Whether the store's last answer was a failure: the layer logs once
    /// when the store starts failing and once when it answers again, not
    /// once per request (each failure is counted).
    failing: AtomicBool,
}

impl Counters {
    pub(crate) fn new() -> Self {
        const NAME: &str = "portcullis_quota_decisions_total";
        Self {
            pass: metrics::counter!(NAME, "outcome" => "allowed", "reason" => "NO_QUOTA"),
            admitted: metrics::counter!(NAME, "outcome" => "allowed", "reason" => "OK"),
            rejected: metrics::counter!(NAME, "outcome" => "refused", "reason" => "QUOTA_EXCEEDED"),
            store_error_allowed: metrics::counter!(NAME, "outcome" => "allowed", "reason" => "STORE_ERROR"),
            store_error_refused: metrics::counter!(NAME, "outcome" => "refused", "reason" => "API_CONFIGURATION_ERROR"),
            usage_updated: metrics::counter!("portcullis_quota_usage_updates_total"),
            seconds: metrics::histogram!("portcullis_quota_decision_seconds"),
            failing: AtomicBool::new(false),
        }
    }

    /// Counts a store failure and traces it: at `error` when it is the
    /// first since the store last answered, at `debug` after that, so an
    /// outage logs one line however many requests it fails.
    pub(crate) fn store_failed(
        &self,
        on_error: OnStoreError,
        plan_id: &str,
        key_id: &str,
        error: &dyn fmt::Display,
        span: &Span,
    ) {
        self.store_error(on_error).increment(1);
        let decision = if on_error == OnStoreError::Allow {
            trace::Decision::fail_open()
        } else {
            trace::Decision::refused(GatewayResponseType::ApiConfigurationError)
        }
        .with_detail("store_error");
        decision.record(span);
        let (outcome, reason, detail) = (
            decision.outcome().as_str(),
            decision.reason(),
            decision.detail(),
        );
        if self.failing.swap(true, Ordering::Relaxed) {
            tracing::debug!(layer = "quota", outcome, reason, detail, plan_id, key_id, %error);
        } else {
            tracing::error!(
                layer = "quota",
                outcome,
                reason,
                detail,
                plan_id,
                key_id,
                %error,
                "quota store failing: requests are decided by the failure policy until it answers \
                 again (each one counted in portcullis_quota_decisions_total)"
            );
        }
    }

    /// Notes that the store answered: logs once if it was failing.
    #[inline]
    pub(crate) fn store_answered(&self) {
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(layer = "quota", "quota store answering again");
        }
    }

    /// The counter of a store failure, by what the layer then does.
    pub(crate) fn store_error(&self, on_error: OnStoreError) -> &metrics::Counter {
        match on_error {
            OnStoreError::Allow => &self.store_error_allowed,
            OnStoreError::Refuse => &self.store_error_refused,
        }
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Counters")
    }
}

/// Records on the layer's span the key and plan a decision is about.
#[inline]
pub(crate) fn record_key(span: &Span, plan_id: &str, key_id: &str) {
    if !span.is_disabled() {
        trace::record_key_id(span, key_id);
        trace::record_plan_id(span, plan_id);
    }
}

/// The span and event of an admitted request.
#[inline]
pub(crate) fn trace_admitted(span: &Span, plan_id: &str, key_id: &str, remaining: u64) {
    let decision = trace::Decision::allowed();
    decision.record(span);
    tracing::debug!(
        layer = "quota",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        plan_id,
        key_id,
        remaining,
    );
}

/// The span and event of a request refused for its exhausted quota.
pub(crate) fn trace_refused(
    span: &Span,
    plan_id: &str,
    key_id: &str,
    limit: u64,
    reset_seconds: u64,
) {
    let decision = QuotaRefusal::Exceeded.decision();
    decision.record(span);
    tracing::info!(
        layer = "quota",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        plan_id,
        key_id,
        limit,
        reset_seconds,
    );
}

/// The span and event of a request with no quota to count against.
pub(crate) fn trace_pass(span: &Span, detail: &'static str, key_id: Option<&str>) {
    let decision = trace::Decision::allowed().with_detail(detail);
    decision.record(span);
    if let Some(key_id) = key_id {
        trace::record_key_id(span, key_id);
    }
    tracing::trace!(
        layer = "quota",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail,
        key_id,
    );
}

/// The length of a period in seconds (`w`).
pub(crate) fn window_seconds(window: Window) -> u64 {
    u64::try_from(window.end().saturating_sub(window.start())).unwrap_or(0)
}
