//! What the layer does once the store has answered: the verdict (admit,
//! with or without rate-limit headers, or refuse), its trace and metrics.

use std::sync::Arc;

use http::header::RETRY_AFTER;
use http::{HeaderMap, Request, Response};
use portcullis_core::context::RequestContextExt;
use portcullis_core::path::PathRefusal;
use portcullis_core::ratelimit::RateLimitInfo;
use portcullis_core::refusal::Refusal;
use portcullis_core::store::OnStoreError;
use portcullis_core::trace::{self, Decision};
use portcullis_core::{GatewayResponseType, ResponseBody};
use tracing::Span;

use crate::gcra::Gcra;
use crate::headers::{self, RateLimitHeaders, SuccessHeaders};
use crate::layer::Config;
use crate::refusal::ThrottleRefusal;
use crate::store::{BucketCheck, BucketKey, Level, Outcome, ThrottleStoreError};

/// The levels a request's checks belong to, with their parameters, kept to
/// write headers once the store has decided.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checked {
    pub(crate) levels: [(Level, Gcra); 3],
    pub(crate) len: usize,
}

/// The level and parameters of the bucket an [`Outcome`] reports on.
pub(crate) trait Reported {
    fn reported(&self, outcome: &Outcome) -> (Level, Gcra);
}

impl Reported for Checked {
    fn reported(&self, outcome: &Outcome) -> (Level, Gcra) {
        let index = if outcome.bucket < self.len {
            outcome.bucket
        } else {
            0
        };
        self.levels[index]
    }
}

/// The checks themselves, while they are still at hand: `call` copies them
/// into a [`Checked`] only for a store that answers later.
impl Reported for [BucketCheck<'_>] {
    fn reported(&self, outcome: &Outcome) -> (Level, Gcra) {
        self.get(outcome.bucket)
            .or(self.first())
            .map_or((Level::Account, Gcra::PLACEHOLDER), |check| {
                (check.key.level, check.gcra)
            })
    }
}

pub(crate) fn push<'a>(
    checked: &mut Checked,
    check: BucketCheck<'a>,
    checks: &mut [BucketCheck<'a>; 3],
) {
    checked.levels[checked.len] = (check.key.level, check.gcra);
    checks[checked.len] = check;
    checked.len += 1;
}

pub(crate) const EMPTY_CHECK: BucketCheck<'static> = BucketCheck {
    key: BucketKey {
        level: Level::Account,
        stage: None,
        method: None,
        caller: None,
    },
    gcra: Gcra::PLACEHOLDER,
};

/// No levels yet, as one constant: built in place from read-only data (an
/// array repeated from one element on the stack made the processor wait on a
/// store it could not forward, on every request).
pub(crate) const NOTHING_CHECKED: Checked = Checked {
    levels: [(Level::Account, Gcra::PLACEHOLDER); 3],
    len: 0,
};

/// What the layer does with a request once the store has answered. Two
/// words: the refusal is boxed, so that the admitted path moves no response.
pub(crate) enum Verdict<B> {
    /// Call the inner service, and add these rate-limit headers to its
    /// response (merged with those of a layer inside).
    Admit(Option<Box<SuccessHeaders>>),
    /// Answer with this refusal.
    Reject(Box<Response<ResponseBody<B>>>),
}

/// The part of the layer a pending decision needs to conclude.
#[derive(Clone, Debug)]
pub(crate) struct Decider {
    pub(crate) config: Arc<Config>,
    pub(crate) checked: Checked,
    /// The request's path has no canonical form, and a per-method limit had
    /// to be matched against it: the request is refused whatever the store
    /// says.
    pub(crate) path_refusal: Option<PathRefusal>,
    /// The layer's span, open until the decision.
    pub(crate) span: Span,
}

impl Decider {
    pub(crate) fn conclude<ReqBody, ResBody>(
        &self,
        result: Result<Outcome, ThrottleStoreError>,
        request: &Request<ReqBody>,
    ) -> Verdict<ResBody> {
        let _entered = self.span.enter();
        if let Some(refusal) = self.path_refusal {
            return path_refused(refusal, request, &self.span);
        }
        conclude(&self.config, &self.checked, result, request, &self.span)
    }
}

/// Records on the layer's span the API key the request carries, if any.
#[cold]
#[inline(never)]
pub(crate) fn record_key(span: &Span, extensions: &http::Extensions) {
    if let Some(key) = extensions.api_key() {
        trace::record_key_id(span, key.key_id());
        if let Some(plan) = key.usage_plan() {
            trace::record_plan_id(span, plan.id());
        }
    }
}

/// Which decisions `portcullis_throttle_decision_seconds` times: those whose
/// clock reading has these bits clear (one in 64).
pub(crate) const DECISION_SAMPLE_MASK: u64 = 0x3f;

/// The verdict on a store's answer. The admitted path without headers is
/// inlined into `call`; headers on success, refusals and store errors are out
/// of line.
#[inline(always)]
pub(crate) fn conclude<R: Reported + ?Sized, ReqBody, ResBody>(
    config: &Config,
    checked: &R,
    result: Result<Outcome, ThrottleStoreError>,
    request: &Request<ReqBody>,
    span: &Span,
) -> Verdict<ResBody> {
    if result.is_ok() {
        config.counters.store_answered();
    }
    if !span.is_disabled() {
        record_key(span, request.extensions());
    }
    match result {
        Ok(outcome) if outcome.admitted => {
            Decision::allowed().record(span);
            tracing::trace!(
                layer = "throttle",
                outcome = trace::ALLOWED,
                reason = trace::OK,
                detail = "tokens_available",
                remaining = outcome.remaining
            );
            config.counters.admitted.increment(1);
            if config.headers_on_success && config.headers != RateLimitHeaders::None {
                Verdict::Admit(Some(success_headers(config, checked, &outcome)))
            } else {
                Verdict::Admit(None)
            }
        }
        Ok(outcome) => refuse(config, checked, &outcome, request, span),
        Err(error) => store_failed(config, &error, request, span),
    }
}

/// The rate-limit headers of an admitted request.
#[cold]
#[inline(never)]
pub(crate) fn success_headers<R: Reported + ?Sized>(
    config: &Config,
    checked: &R,
    outcome: &Outcome,
) -> Box<SuccessHeaders> {
    let (level, gcra) = checked.reported(outcome);
    Box::new(SuccessHeaders {
        info: RateLimitInfo::one(headers::policy(level, &gcra, outcome)),
        style: config.headers,
    })
}

/// The verdict on a refusal: 429 `THROTTLED` with its headers.
#[cold]
#[inline(never)]
pub(crate) fn refuse<R: Reported + ?Sized, ReqBody, ResBody>(
    config: &Config,
    checked: &R,
    outcome: &Outcome,
    request: &Request<ReqBody>,
    span: &Span,
) -> Verdict<ResBody> {
    let (level, gcra) = checked.reported(outcome);
    let refusal = ThrottleRefusal::BucketEmpty(level);
    let decision = refusal.decision();
    decision.record(span);
    tracing::debug!(
        layer = "throttle",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        level = level.as_str(),
        retry_after_ms = outcome.retry_after_nanos / 1_000_000
    );
    config.counters.refused(level).increment(1);
    let info = RateLimitInfo::refusal(headers::policy(level, &gcra, outcome));
    let mut map = HeaderMap::new();
    info.write(config.headers, &mut map);
    map.insert(RETRY_AFTER, headers::retry_after(outcome));
    // `Refusal::into_response`, with the headers given to the gateway
    // response before it renders (so a configured override of one of them
    // still wins, as it does for every gateway response).
    let mut response = refusal
        .gateway_response()
        .with_headers(map)
        .into_response(request);
    response.extensions_mut().insert(refusal);
    // For a layer outside that merges its own policies in.
    response.extensions_mut().insert(info);
    Verdict::Reject(Box::new(response))
}

/// The verdict when the store failed: admitted when the layer fails open,
/// else 500 `API_CONFIGURATION_ERROR`.
#[cold]
#[inline(never)]
pub(crate) fn store_failed<ReqBody, ResBody>(
    config: &Config,
    error: &ThrottleStoreError,
    request: &Request<ReqBody>,
    span: &Span,
) -> Verdict<ResBody> {
    let fail_open = config.on_store_error == OnStoreError::Allow;
    let decision = if fail_open {
        Decision::fail_open()
    } else {
        Decision::refused(GatewayResponseType::ApiConfigurationError)
    }
    .with_detail("store_error");
    decision.record(span);
    let (outcome, reason, detail) = (
        decision.outcome().as_str(),
        decision.reason(),
        decision.detail(),
    );
    // One line when the store starts failing, not one per request: each
    // failure is counted below.
    if config.counters.store_started_failing() {
        tracing::warn!(
            layer = "throttle",
            outcome,
            reason,
            detail,
            %error,
            "throttle store failing: requests are decided by the failure policy until it \
             answers again (each one counted in portcullis_throttle_decisions_total)"
        );
    } else {
        tracing::debug!(layer = "throttle", outcome, reason, detail, %error);
    }
    config
        .counters
        .store_error(config.on_store_error)
        .increment(1);
    if fail_open {
        Verdict::Admit(None)
    } else {
        Verdict::Reject(Box::new(
            ThrottleRefusal::StoreFailed.into_response(request),
        ))
    }
}

/// A refusal for a request whose path has no canonical form (see
/// [`portcullis_core::path`]), found where a per-method limit had to be
/// matched against it.
#[cold]
pub(crate) fn path_refused<ReqBody, ResBody>(
    refusal: PathRefusal,
    request: &Request<ReqBody>,
    span: &Span,
) -> Verdict<ResBody> {
    let kind = refusal.gateway_response().kind();
    let path_refusal = refusal;
    let refusal = ThrottleRefusal::NonCanonicalPath(path_refusal);
    let decision = refusal.decision();
    decision.record(span);
    tracing::debug!(
        layer = "throttle",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        refusal = %path_refusal
    );
    metrics::counter!("portcullis_throttle_decisions_total", "outcome" => "refused", "reason" => kind.as_str())
        .increment(1);
    Verdict::Reject(Box::new(refusal.into_response(request)))
}

/// No bucket applies: the request passes untouched.
pub(crate) fn no_limit(span: &Span) {
    let decision = Decision::allowed().with_detail("no_limit");
    decision.record(span);
    tracing::trace!(
        layer = "throttle",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail()
    );
}
