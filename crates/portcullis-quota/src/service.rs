//! [`Quota`]: the service the layer wraps around the inner one.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Request, Response};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::ratelimit::{RateLimitHeaders, RateLimitInfo, RateLimitPolicy};
use portcullis_core::trace;
use portcullis_core::{GatewayResponse, GatewayResponseType, ResponseBody};
use tower_service::Service;
use tracing::Span;

use crate::future::{PendingMeta, ResponseFuture};
use crate::layer::{OnStoreError, QuotaLayer, Shared};
use crate::store::{Decision, InMemoryQuotaStore, QuotaRequest, QuotaStore};

pub use portcullis_core::ratelimit::{RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};

/// Enforces usage-plan quotas on the inner service; built by [`QuotaLayer`].
pub struct Quota<S, St = InMemoryQuotaStore> {
    inner: S,
    shared: Arc<Shared<St>>,
}

impl<S: Clone, St> Clone for Quota<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, St: fmt::Debug> fmt::Debug for Quota<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S> Quota<S, InMemoryQuotaStore> {
    /// A [`QuotaLayer`] with the in-memory store: the same as
    /// [`QuotaLayer::new`].
    pub fn layer() -> QuotaLayer<InMemoryQuotaStore> {
        QuotaLayer::new()
    }
}

impl<S, St> Quota<S, St> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<St>>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
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
        let mut response = GatewayResponse::new(GatewayResponseType::QuotaExceeded)
            .with_headers(map)
            .into_response(request);
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
    let decision =
        trace::Decision::refused(GatewayResponseType::QuotaExceeded).with_detail("quota_exhausted");
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
fn trace_pass(span: &Span, detail: &'static str, key_id: Option<&str>) {
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
fn window_seconds(window: crate::Window) -> u64 {
    u64::try_from(window.end().saturating_sub(window.start())).unwrap_or(0)
}

/// What `call` decided before touching the inner service.
enum Step<F> {
    Pass,
    Admit(Option<RateInfo>),
    Reject(RateInfo),
    Fail,
    Await(F, PendingMeta),
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Quota<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: QuotaStore,
{
    type Response = Response<portcullis_core::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody, St::ConsumeFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let shared = &*self.shared;
        let span = portcullis_core::layer_span!("quota");
        let entered = span.enter();
        let step = decide(shared, &request, &span);
        // The span covers the decision, not the inner service.
        drop(entered);
        // Decisions made here; an awaited store is timed by its own metrics.
        if !matches!(step, Step::Await(..)) {
            shared
                .counters
                .seconds
                .record(start.elapsed().as_secs_f64());
        }
        match step {
            Step::Pass => ResponseFuture::inner(self.inner.call(request), None),
            Step::Admit(info) => ResponseFuture::inner(self.inner.call(request), info),
            Step::Reject(info) => ResponseFuture::reject(info.refusal(&request)),
            Step::Fail => ResponseFuture::reject(
                GatewayResponse::new(GatewayResponseType::ApiConfigurationError)
                    .into_response(&request),
            ),
            Step::Await(future, pending) => {
                // Keep the service that was polled ready; leave a clone in
                // its place (tower's advice on cloning inner services).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::store(future, pending.with(inner, request, span))
            }
        }
    }
}

fn decide<St: QuotaStore, B>(
    shared: &Shared<St>,
    request: &Request<B>,
    span: &Span,
) -> Step<St::ConsumeFuture> {
    let Some(key) = request.extensions().get::<ApiKeyContext>() else {
        trace_pass(span, "no_api_key", None);
        shared.counters.pass.increment(1);
        return Step::Pass;
    };
    let Some((plan, quota)) = key
        .usage_plan()
        .and_then(|plan| plan.quota().map(|quota| (plan, *quota)))
    else {
        trace_pass(span, "no_quota", Some(key.key_id()));
        shared.counters.pass.increment(1);
        return Step::Pass;
    };
    record_key(span, plan.id(), key.key_id());
    let now = shared.clock.now_unix_nanos();
    let seconds = i64::try_from(now / 1_000_000_000).unwrap_or(i64::MAX);
    let (window, day) = shared.calendar.window_at_unix(quota.period(), seconds);
    let query = QuotaRequest {
        plan_id: plan.id(),
        key_id: key.key_id(),
        quota,
        window,
        day,
        initial_window: shared.initial_window(plan.id(), quota.period()),
    };
    let info = |remaining| RateInfo {
        limit: quota.limit(),
        remaining,
        reset_seconds: window.seconds_until_reset(now),
        window_seconds: window_seconds(window),
        style: shared.headers,
    };
    match shared.store.try_consume_now(&query) {
        Some(Ok(decision)) => step_of(shared, &query, decision, || info(decision.remaining), span),
        Some(Err(error)) => store_failed(shared, &query, &error, span),
        None => Step::Await(
            shared.store.consume(&query),
            PendingMeta::new(
                key.key_id_arc().clone(),
                Arc::from(plan.id()),
                info(0),
                shared.on_store_error,
                shared.headers_on_success,
                Arc::clone(&shared.counters),
            ),
        ),
    }
}

fn step_of<St, F>(
    shared: &Shared<St>,
    query: &QuotaRequest<'_>,
    decision: Decision,
    info: impl FnOnce() -> RateInfo,
    span: &Span,
) -> Step<F> {
    shared.counters.store_answered();
    if decision.admitted {
        trace_admitted(span, query.plan_id, query.key_id, decision.remaining);
        shared.counters.admitted.increment(1);
        Step::Admit(
            (shared.headers_on_success && shared.headers != RateLimitHeaders::None).then(info),
        )
    } else {
        let info = info();
        trace_refused(
            span,
            query.plan_id,
            query.key_id,
            query.quota.limit(),
            info.reset_seconds,
        );
        shared.counters.rejected.increment(1);
        Step::Reject(info)
    }
}

fn store_failed<St, F>(
    shared: &Shared<St>,
    query: &QuotaRequest<'_>,
    error: &dyn std::error::Error,
    span: &Span,
) -> Step<F> {
    let on_error = shared.on_store_error;
    shared
        .counters
        .store_failed(on_error, query.plan_id, query.key_id, &error, span);
    match on_error {
        OnStoreError::Allow => Step::Admit(None),
        OnStoreError::Refuse => Step::Fail,
    }
}

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
                    OnStoreError::Refuse => Err(Box::new(
                        GatewayResponse::new(GatewayResponseType::ApiConfigurationError)
                            .into_response(request),
                    )),
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
    /// (the key and plan from the [`ApiKeyContext`], the period from the
    /// layer's clock and calendar). `None` when the layer would pass the
    /// request untouched (no API key context, or a plan without a quota),
    /// which it counts as the layer does.
    ///
    /// This is for a store that decides the quota together with other work
    /// in one call; a plain store needs none of it (use the layer).
    pub fn resolve<ReqBody>(&self, request: &Request<ReqBody>) -> Option<QuotaCheck> {
        let shared = &*self.shared;
        let span = portcullis_core::layer_span!("quota");
        let key = request.extensions().get::<ApiKeyContext>();
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
