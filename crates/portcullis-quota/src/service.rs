//! [`Quota`]: the service the layer wraps around the inner one.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use portcullis_core::context::RequestContextExt;
use portcullis_core::ratelimit::RateLimitHeaders;
use portcullis_core::refusal::Refusal;
use portcullis_core::store::OnStoreError;
use tower_service::Service;
use tracing::Span;

use crate::future::{PendingMeta, ResponseFuture};
use crate::refusal::QuotaRefusal;
use crate::shared::{
    RateInfo, Shared, record_key, trace_admitted, trace_pass, trace_refused, window_seconds,
};
use crate::store::{Answer, Decision, InMemoryQuotaStore, QuotaRequest, QuotaStore};

pub use portcullis_core::ratelimit::{RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};

/// Enforces usage-plan quotas on the inner service; built by [`QuotaLayer`](crate::QuotaLayer).
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

impl<S, St> Quota<S, St> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<St>>) -> Self {
        Self { inner, shared }
    }

    portcullis_core::inner_service_accessors!();
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
    type Future = ResponseFuture<S, ReqBody, ResBody, St::Future>;

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
            Step::Reject(info) => ResponseFuture::answered(info.refusal(&request)),
            Step::Fail => {
                ResponseFuture::answered(QuotaRefusal::StoreFailed.into_response(&request))
            }
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
) -> Step<St::Future> {
    let Some(key) = request.api_key() else {
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
    match shared.store.consume(&query) {
        Answer::Ready(Ok(decision)) => {
            step_of(shared, &query, decision, || info(decision.remaining), span)
        }
        Answer::Ready(Err(error)) => store_failed(shared, &query, &error, span),
        Answer::Pending(future) => Step::Await(
            future,
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
