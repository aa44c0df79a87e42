//! [`Throttle`]: the service the layer makes.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::RETRY_AFTER;
use http::{HeaderMap, Request, Response};
use portcullis_core::context::ApiKeyContext;
use portcullis_core::path::{CanonicalPath, PathRefusal};
use portcullis_core::plan::{MethodSelector, ThrottleSettings, UsagePlan};
use portcullis_core::ratelimit::RateLimitInfo;
use portcullis_core::refusal::Refusal;
use portcullis_core::resource::ApiResource;
use portcullis_core::store::OnStoreError;
use portcullis_core::trace::{self, Decision};
use portcullis_core::{GatewayResponseType, ResponseBody};
use tower_service::Service;
use tracing::Span;

use crate::clock::LayerClock;
use crate::future::ResponseFuture;
use crate::gcra::Gcra;
use crate::headers::{self, RateLimitHeaders, SuccessHeaders};
use crate::key::{RequestHead, ResolvedKey};
use crate::layer::{Config, ThrottleHandle, ThrottleLayer};
use crate::memory::InMemoryThrottleStore;
use crate::refusal::ThrottleRefusal;
use crate::store::{
    Answer, BucketCheck, BucketKey, CallerKey, Level, Outcome, StageId, ThrottleStore,
    ThrottleStoreError,
};

/// The service [`ThrottleLayer`] makes: decides in `call`, and either calls
/// the inner service or answers 429 (`THROTTLED`) at once.
pub struct Throttle<S, St = InMemoryThrottleStore> {
    inner: S,
    /// Everything but the inner service behind one `Arc`, so that cloning
    /// the service (axum and tonic clone it per request) touches one
    /// reference count.
    shared: Arc<Shared<St>>,
}

struct Shared<St> {
    config: Arc<Config>,
    store: Arc<St>,
    clock: LayerClock,
    handle: ThrottleHandle,
}

impl<S: Clone, St> Clone for Throttle<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for Throttle<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S> Throttle<S> {
    /// A [`ThrottleLayer`] for the stage `stage` of the API `api_id`: the
    /// same as [`ThrottleLayer::new`].
    pub fn layer(api_id: impl Into<Arc<str>>, stage: impl Into<Arc<str>>) -> ThrottleLayer {
        ThrottleLayer::new(api_id, stage)
    }
}

impl<S, St> Throttle<S, St> {
    pub(crate) fn from_layer(inner: S, layer: &ThrottleLayer<St>) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                config: Arc::clone(&layer.config),
                store: Arc::clone(&layer.store),
                clock: layer.clock.clone(),
                handle: layer.handle.clone(),
            }),
        }
    }

    portcullis_core::inner_service_accessors!();
}

/// The levels a request's checks belong to, with their parameters, kept to
/// write headers once the store has decided.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checked {
    levels: [(Level, Gcra); 3],
    len: usize,
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

fn push<'a>(checked: &mut Checked, check: BucketCheck<'a>, checks: &mut [BucketCheck<'a>; 3]) {
    checked.levels[checked.len] = (check.key.level, check.gcra);
    checks[checked.len] = check;
    checked.len += 1;
}

const EMPTY_CHECK: BucketCheck<'static> = BucketCheck {
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
const NOTHING_CHECKED: Checked = Checked {
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
fn record_key(span: &Span, extensions: &http::Extensions) {
    if let Some(key) = extensions.get::<ApiKeyContext>() {
        trace::record_key_id(span, key.key_id());
        if let Some(plan) = key.usage_plan() {
            trace::record_plan_id(span, plan.id());
        }
    }
}

/// Which decisions `portcullis_throttle_decision_seconds` times: those whose
/// clock reading has these bits clear (one in 64).
const DECISION_SAMPLE_MASK: u64 = 0x3f;

/// The verdict on a store's answer. The admitted path without headers is
/// inlined into `call`; headers on success, refusals and store errors are out
/// of line.
#[inline(always)]
fn conclude<R: Reported + ?Sized, ReqBody, ResBody>(
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
fn success_headers<R: Reported + ?Sized>(
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
fn refuse<R: Reported + ?Sized, ReqBody, ResBody>(
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
fn store_failed<ReqBody, ResBody>(
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
fn path_refused<ReqBody, ResBody>(
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
fn no_limit(span: &Span) {
    let decision = Decision::allowed().with_detail("no_limit");
    decision.record(span);
    tracing::trace!(
        layer = "throttle",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail()
    );
}

/// The request's [`CanonicalPath`], computed at most once per request and
/// only where a per-method limit may apply.
type PathSlot<'a> = OnceCell<Result<CanonicalPath<'a>, PathRefusal>>;

/// The buckets a request takes a token from, most specific first: the
/// caller's key (under its plan's per-method override, else the plan's
/// throttle, else the layer's key limit), the stage's per-method limit, and
/// the account. `None` where a level does not apply. The service and
/// [`ThrottleLayer::resolve`] both decide through this one function (the
/// service's key-only fast path through [`key_check`], the first of the
/// three), so a store that plans ahead sees exactly the buckets the layer
/// would take.
#[inline(always)]
fn bucket_checks<'a>(
    config: &'a Config,
    handle: &ThrottleHandle,
    key: Option<&'a ResolvedKey<'a>>,
    head: &RequestHead<'a>,
    path: &PathSlot<'a>,
) -> (
    Option<BucketCheck<'a>>,
    Option<BucketCheck<'a>>,
    Option<BucketCheck<'a>>,
) {
    let (stage_check, account_check) = shared_checks(config, head, path);
    (
        key_check(config, handle, key, head, path),
        stage_check,
        account_check,
    )
}

/// Level 1: the caller's key.
#[inline(always)]
fn key_check<'a>(
    config: &'a Config,
    handle: &ThrottleHandle,
    key: Option<&'a ResolvedKey<'a>>,
    head: &RequestHead<'a>,
    path: &PathSlot<'a>,
) -> Option<BucketCheck<'a>> {
    let key = key?;
    let stage = StageId {
        api_id: &config.api_id,
        stage: &config.stage,
    };
    let (selector, gcra) = match key.api_key {
        // Another source than the API key: the layer's key limit, no plan.
        None => (None, config.key_limit?),
        Some(ctx) => {
            let plan = ctx.usage_plan();
            let (selector, plan_limit) = match plan {
                Some(plan) => {
                    let method_throttle = plan.has_method_throttles().then(|| route(head, path));
                    match method_throttle
                        .flatten()
                        .and_then(|route| route.plan_throttle(plan, &config.api_id, &config.stage))
                    {
                        Some((selector, limit)) => (Some(selector), Some(*limit)),
                        None => (None, plan.throttle().copied()),
                    }
                }
                None => (None, None),
            };
            let overridden = handle.lookup(ctx.key_id(), plan.map(|p| p.id()));
            let gcra = match overridden.or(plan_limit) {
                Some(limit) => Gcra::new(&limit),
                None => config.key_limit?,
            };
            (selector, gcra)
        }
    };
    Some(BucketCheck {
        key: BucketKey {
            level: Level::Key,
            stage: selector.map(|_| stage),
            method: selector,
            caller: Some(CallerKey {
                source: key.source,
                value: key.bytes.as_slice(),
            }),
        },
        gcra,
    })
}

/// Levels 2 and 3: the stage's per-method limit and the account, shared by
/// all callers.
#[inline(always)]
fn shared_checks<'a>(
    config: &'a Config,
    head: &RequestHead<'a>,
    path: &PathSlot<'a>,
) -> (Option<BucketCheck<'a>>, Option<BucketCheck<'a>>) {
    let stage = StageId {
        api_id: &config.api_id,
        stage: &config.stage,
    };
    // Level 2: the stage's per-method limit.
    let limits = &config.stage_limits;
    let stage_check = (!limits.is_empty())
        .then(|| {
            let route = route(head, path)?;
            limits.iter().find(|(selector, _)| route.matches(selector))
        })
        .flatten()
        .map(|(selector, gcra)| BucketCheck {
            key: BucketKey {
                level: Level::Stage,
                stage: Some(stage),
                method: Some(selector),
                caller: None,
            },
            gcra: *gcra,
        });
    // Level 3: the account.
    let account_check = config.account_limit.map(|gcra| BucketCheck {
        key: BucketKey {
            level: Level::Account,
            stage: None,
            method: None,
            caller: None,
        },
        gcra,
    });
    (stage_check, account_check)
}

/// The method and the resource per-method limits are matched against, in
/// this order:
///
/// 1. the [`ApiResource`] a routing layer in front (portcullis-openapi)
///    matched the request to: a selector applies when it names that
///    resource itself (or `/*`), as API Gateway keys method settings, so the
///    limit of `/loyalty/{proxy+}/*` is not also the limit of a resource
///    `/loyalty/{id}/get` of its own;
/// 2. the route template when axum matched one, matched segment by segment;
/// 3. the request's [`CanonicalPath`], matched segment by segment, so that
///    no spelling of a path escapes its limit.
///
/// `None` when neither of the first two is there and the path has no
/// canonical form (the slot keeps the refusal, and the request is refused).
/// Read only where a per-method limit may apply.
fn route<'a, 's>(head: &RequestHead<'a>, path: &'s PathSlot<'a>) -> Option<Route<'s>> {
    let method = head.method.as_str();
    if let Some(resource) = head.extensions.get::<ApiResource>() {
        return Some(Route {
            method,
            resource: resource.resource_path(),
            routed: true,
        });
    }
    #[cfg(feature = "axum")]
    if let Some(matched) = head.extensions.get::<axum::extract::MatchedPath>() {
        return Some(Route {
            method,
            resource: matched.as_str(),
            routed: false,
        });
    }
    match path.get_or_init(|| CanonicalPath::of_uri(head.uri)) {
        Ok(canonical) => Some(Route {
            method,
            resource: canonical.as_str(),
            routed: false,
        }),
        Err(_) => None,
    }
}

/// What [`route`] found: a request's method and its resource.
#[derive(Clone, Copy)]
struct Route<'r> {
    method: &'r str,
    resource: &'r str,
    /// `resource` is the template of an [`ApiResource`]: selectors name it
    /// exactly. Otherwise it is a route template or a path, which selectors
    /// match segment by segment.
    routed: bool,
}

impl Route<'_> {
    /// Whether a stage's per-method `selector` applies.
    fn matches(&self, selector: &MethodSelector) -> bool {
        if self.routed {
            selector.matches_resource(self.method, self.resource)
        } else {
            selector.matches(self.method, self.resource)
        }
    }

    /// The most specific per-method override of a usage `plan` that applies.
    fn plan_throttle<'p>(
        &self,
        plan: &'p UsagePlan,
        api_id: &str,
        stage: &str,
    ) -> Option<(&'p MethodSelector, &'p ThrottleSettings)> {
        if self.routed {
            plan.resource_method_throttle(api_id, stage, self.method, self.resource)
        } else {
            plan.method_throttle(api_id, stage, self.method, self.resource)
        }
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Throttle<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: ThrottleStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody, St::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let config = &*shared.config;
        let span = portcullis_core::layer_span!("throttle");
        let next = {
            let _entered = span.enter();
            let head = RequestHead {
                method: request.method(),
                uri: request.uri(),
                headers: request.headers(),
                extensions: request.extensions(),
            };
            let resolved = config.key_by.resolve(&head);
            let path = PathSlot::new();
            let key_check = key_check(config, &shared.handle, resolved.as_ref(), &head, &path);
            // The checks as an array of exactly their number, built in place:
            // a fixed array of three filled from a constant was a 288-byte
            // `memcpy` per request.
            let (one, two, three);
            let checks: &[BucketCheck<'_>] = if config.key_only {
                // No stage or account limit: only the key's bucket can apply
                // (what `shared_checks` would find is known to be nothing).
                // A slice of the check where it is, not a copy.
                match &key_check {
                    Some(a) => std::slice::from_ref(a),
                    None => &[],
                }
            } else {
                let (stage_check, account_check) = shared_checks(config, &head, &path);
                match (key_check, stage_check, account_check) {
                    (None, None, None) => &[],
                    (Some(a), None, None) | (None, Some(a), None) | (None, None, Some(a)) => {
                        one = [a];
                        &one
                    }
                    (Some(a), Some(b), None)
                    | (Some(a), None, Some(b))
                    | (None, Some(a), Some(b)) => {
                        two = [a, b];
                        &two
                    }
                    (Some(a), Some(b), Some(c)) => {
                        three = [a, b, c];
                        &three
                    }
                }
            };
            if let Some(Err(refusal)) = path.get() {
                Ok(path_refused(*refusal, &request, &span))
            } else if checks.is_empty() {
                no_limit(&span);
                config.counters.no_limit.increment(1);
                Ok(Verdict::Admit(None))
            } else {
                let now = shared.clock.now_unix_nanos();
                match shared.store.acquire(checks, now) {
                    Answer::Ready(result) => {
                        let verdict = conclude::<_, ReqBody, ResBody>(
                            config, checks, result, &request, &span,
                        );
                        // One decision in 64 (the low bits of the clock
                        // reading it needed anyway) is timed, with one more
                        // read: timing every one was +40 instructions a
                        // request (callgrind), 2% of the admitted path.
                        if (now & DECISION_SAMPLE_MASK) == 0 {
                            let elapsed = shared.clock.now_unix_nanos().saturating_sub(now);
                            config.counters.seconds.record(elapsed as f64 * 1e-9);
                        }
                        Ok(verdict)
                    }
                    Answer::Pending(future) => {
                        let mut checked = NOTHING_CHECKED;
                        for check in checks {
                            checked.levels[checked.len] = (check.key.level, check.gcra);
                            checked.len += 1;
                        }
                        Err((future, checked))
                    }
                }
            }
        };
        let verdict = match next {
            Ok(verdict) => verdict,
            Err((future, checked)) => {
                // The ready service goes with the request; this one keeps a
                // clone to be made ready again.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                let decider = Decider {
                    config: Arc::clone(&shared.config),
                    checked,
                    path_refusal: None,
                    span,
                };
                return ResponseFuture::waiting(future, service, request, decider);
            }
        };
        // The span covers the decision, not the inner service.
        drop(span);
        // One call site for the inner service, so that its future is built
        // in place.
        // The admitted future without headers is built directly (through
        // `State::admitted`'s match it was copied twice more).
        match verdict {
            Verdict::Admit(None) => ResponseFuture::inner(self.inner.call(request)),
            Verdict::Admit(Some(headers)) => {
                ResponseFuture::inner_headers(self.inner.call(request), headers)
            }
            Verdict::Reject(response) => ResponseFuture::answered(response),
        }
    }
}

/// A request's throttle checks, resolved by a [`ThrottleLayer`] for a store
/// that decides them together with other work (such as `portcullis-redis`'s
/// combined usage-plan layer, which decides the throttle and the quota in one
/// round trip), and how to conclude once that store has answered.
///
/// Made by [`ThrottleLayer::resolve`].
#[derive(Clone, Debug)]
pub struct ThrottleChecks {
    decider: Decider,
}

impl ThrottleChecks {
    /// What the layer would do with `result`: `Ok` with the rate-limit
    /// headers to add to the inner service's response (when the layer writes
    /// them on success), or `Err` with the refusal (429 `THROTTLED`, or 500
    /// when the store failed and the layer fails closed). Counts and traces
    /// the decision as the layer does.
    ///
    /// # Errors
    ///
    /// The refusal, as a response ready to send.
    pub fn conclude<ReqBody, ResBody>(
        &self,
        result: Result<Outcome, ThrottleStoreError>,
        request: &Request<ReqBody>,
    ) -> Result<Option<HeaderMap>, Box<Response<ResponseBody<ResBody>>>> {
        match self.decider.conclude(result, request) {
            Verdict::Admit(headers) => Ok(headers.map(|success| {
                let mut map = HeaderMap::new();
                success.info.write(success.style, &mut map);
                map
            })),
            Verdict::Reject(response) => Err(response),
        }
    }

    /// As [`conclude`](Self::conclude), but an admitted request's rate-limit
    /// policy comes unwritten, with the convention the layer writes it in:
    /// for a caller that merges it with another layer's policies into one
    /// set of headers ([`RateLimitInfo::apply`], applied after the policies
    /// of the layers inside), as a stack of layers does.
    ///
    /// # Errors
    ///
    /// The refusal, as a response ready to send (its policy is in its
    /// extensions, for a layer outside to merge into).
    pub fn conclude_rate_limit<ReqBody, ResBody>(
        &self,
        result: Result<Outcome, ThrottleStoreError>,
        request: &Request<ReqBody>,
    ) -> Result<Option<Policy>, Box<Response<ResponseBody<ResBody>>>> {
        match self.decider.conclude(result, request) {
            Verdict::Admit(headers) => Ok(headers.map(|success| (success.info, success.style))),
            Verdict::Reject(response) => Err(response),
        }
    }
}

/// An admitted request's rate-limit policy and the convention to write it
/// in.
type Policy = (RateLimitInfo, RateLimitHeaders);

impl<St> ThrottleLayer<St> {
    /// Resolves `request`'s buckets exactly as the layer's service does, and
    /// hands them with the layer's clock reading to `decide`, which must copy
    /// what it needs (a networked store starts its call there). `None` when
    /// no bucket applies: the layer would admit the request untouched.
    ///
    /// This is for a store that decides the throttle together with other
    /// work in one call; a plain store needs none of it (use the layer).
    pub fn resolve<ReqBody, R>(
        &self,
        request: &Request<ReqBody>,
        decide: impl FnOnce(&[BucketCheck<'_>], u64) -> R,
    ) -> Option<(R, ThrottleChecks)> {
        let config = &*self.config;
        let span = portcullis_core::layer_span!("throttle");
        let entered = span.enter();
        let head = RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        };
        let mut checks = [EMPTY_CHECK; 3];
        let mut checked = Checked {
            levels: [(Level::Account, Gcra::PLACEHOLDER); 3],
            len: 0,
        };
        let resolved = config.key_by.resolve(&head);
        let path = PathSlot::new();
        let (key_check, stage_check, account_check) =
            bucket_checks(config, &self.handle, resolved.as_ref(), &head, &path);
        let path_refusal = path.get().and_then(|path| path.as_ref().err().copied());
        for check in [key_check, stage_check, account_check]
            .into_iter()
            .flatten()
        {
            push(&mut checked, check, &mut checks);
        }
        if checked.len == 0 && path_refusal.is_none() {
            no_limit(&span);
            return None;
        }
        let now = self.clock.now_unix_nanos();
        let answer = decide(&checks[..checked.len], now);
        drop(entered);
        Some((
            answer,
            ThrottleChecks {
                decider: Decider {
                    config: Arc::clone(&self.config),
                    checked,
                    path_refusal,
                    span,
                },
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use portcullis_core::plan::ThrottleSettings;

    use super::*;

    /// The service skips [`shared_checks`] when `key_only` is set: the flag
    /// must be set exactly when no stage or account limit exists, and then
    /// `shared_checks` finds nothing for any request.
    #[test]
    fn key_only_is_set_exactly_when_no_shared_level_can_apply() {
        let limit = ThrottleSettings::new(10.0, 5).unwrap();
        let cases = [
            (ThrottleLayer::new("a", "prod"), true),
            (ThrottleLayer::new("a", "prod").key_limit(limit), true),
            (
                ThrottleLayer::new("a", "prod").stage_limit("/pets/GET".parse().unwrap(), limit),
                false,
            ),
            (ThrottleLayer::new("a", "prod").account_limit(limit), false),
            (
                ThrottleLayer::new("a", "prod")
                    .key_limit(limit)
                    .stage_limit("/*/*".parse().unwrap(), limit)
                    .account_limit(limit),
                false,
            ),
        ];
        for (layer, key_only) in cases {
            let config = &*layer.config;
            assert_eq!(config.key_only, key_only, "{config:?}");
            assert_eq!(
                config.key_only,
                config.stage_limits.is_empty() && config.account_limit.is_none()
            );
            for (method, path) in [
                (Method::GET, "/pets"),
                (Method::POST, "/"),
                (Method::PUT, "/x/y"),
            ] {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .body(())
                    .unwrap();
                let head = RequestHead {
                    method: request.method(),
                    uri: request.uri(),
                    headers: request.headers(),
                    extensions: request.extensions(),
                };
                let (stage, account) = shared_checks(config, &head, &PathSlot::new());
                if key_only {
                    assert!(stage.is_none() && account.is_none());
                } else {
                    assert!(stage.is_some() || account.is_some() || path != "/pets");
                }
            }
        }
    }
}
