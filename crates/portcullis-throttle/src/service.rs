//! [`Throttle`]: the service the layer makes.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use portcullis_core::ResponseBody;
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::LayerClock;
use crate::decision::{
    DECISION_SAMPLE_MASK, Decider, NOTHING_CHECKED, Verdict, conclude, no_limit, path_refused,
};
use crate::future::ResponseFuture;
use crate::key::RequestHead;
use crate::layer::{Config, ThrottleHandle, ThrottleLayer};
use crate::memory::InMemoryThrottleStore;
use crate::route::{PathSlot, key_check, shared_checks};
use crate::store::{Answer, BucketCheck, ThrottleStore};

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
    fn from_layer(inner: S, layer: &ThrottleLayer<St>) -> Self {
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

impl<S, St> Layer<S> for ThrottleLayer<St> {
    type Service = Throttle<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttle::from_layer(inner, self)
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
            Verdict::Reject(response) => ResponseFuture::answered(*response),
        }
    }
}
