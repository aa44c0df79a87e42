//! The layer's response future: core's, with two states of the quota's own.
//!
//! With a store that decides synchronously (the in-memory one) the future is
//! core's [`ResponseFuture`](portcullis_core::future::ResponseFuture): the
//! inner service's future, stored in place, or the refusal. Nothing is
//! boxed. Core's third state (async work, boxed) is not used: a store that
//! must do I/O names its future (`QuotaStore::Future`), which this future
//! awaits in place before it calls the inner service, and an admitted
//! response whose rate-limit headers are written on success keeps them
//! beside the inner future, so neither boxes nor needs `Send`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use portcullis_core::ResponseBody;
use portcullis_core::future::ResponseFuture as Decided;
use portcullis_core::ratelimit::RateLimitHeaders;
use tower_service::Service;
use tracing::Span;

use portcullis_core::refusal::Refusal;
use portcullis_core::store::OnStoreError;

use crate::refusal::QuotaRefusal;
use crate::shared::{Counters, RateInfo, trace_admitted, trace_refused};
use crate::store::Decision;

/// What the future needs to finish a decision the store makes later.
pub(crate) struct PendingMeta {
    key_id: Arc<str>,
    plan_id: Arc<str>,
    info: RateInfo,
    on_error: OnStoreError,
    headers_on_success: bool,
    counters: Arc<Counters>,
}

impl PendingMeta {
    pub(crate) fn new(
        key_id: Arc<str>,
        plan_id: Arc<str>,
        info: RateInfo,
        on_error: OnStoreError,
        headers_on_success: bool,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            key_id,
            plan_id,
            info,
            on_error,
            headers_on_success,
            counters,
        }
    }

    pub(crate) fn with<S, ReqBody>(
        self,
        inner: S,
        request: Request<ReqBody>,
        span: Span,
    ) -> Pending<S, ReqBody> {
        Pending {
            meta: self,
            inner,
            request,
            span,
        }
    }
}

/// A request waiting for the store's decision, with the inner service that
/// will serve it.
pub(crate) struct Pending<S, ReqBody> {
    meta: PendingMeta,
    inner: S,
    request: Request<ReqBody>,
    /// The layer's span, entered while the store is awaited.
    span: Span,
}

pin_project! {
    /// The response future of [`Quota`](crate::Quota).
    ///
    /// Decided at once (the in-memory store), it is `portcullis_core`'s
    /// unboxed [`ResponseFuture`](portcullis_core::future::ResponseFuture):
    /// the inner service's future, or the refusal. Admitted with rate-limit
    /// headers to add (only when the layer writes them on success), it is
    /// the inner future with the headers. With a store that must do I/O, it
    /// first awaits the store's named `Future` (`QuotaStore::Future`), then
    /// calls the inner service. Nothing is boxed.
    pub struct ResponseFuture<S, ReqBody, ResBody, SF>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, ResBody, SF>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody, SF>
    where
        S: Service<Request<ReqBody>>,
    {
        Decided { #[pin] future: Decided<S::Future, ResBody, S::Error> },
        InnerHeaders { #[pin] future: S::Future, info: Option<RateInfo> },
        Store { #[pin] future: SF, pending: Option<Pending<S, ReqBody>> },
    }
}

impl<S, ReqBody, ResBody, SF> State<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>>,
{
    /// Admitted: the inner future, with the rate-limit headers to add if
    /// there are any.
    #[inline]
    fn admitted(future: S::Future, info: Option<RateInfo>) -> Self {
        match info {
            None => State::Decided {
                future: Decided::inner(future),
            },
            Some(info) => State::InnerHeaders {
                future,
                info: Some(info),
            },
        }
    }
}

impl<S, ReqBody, ResBody, SF> ResponseFuture<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future, info: Option<RateInfo>) -> Self {
        Self {
            state: State::admitted(future, info),
        }
    }

    pub(crate) fn answered(response: Response<ResponseBody<ResBody>>) -> Self {
        Self {
            state: State::Decided {
                future: Decided::answered(response),
            },
        }
    }

    pub(crate) fn store(future: SF, pending: Pending<S, ReqBody>) -> Self {
        Self {
            state: State::Store {
                future,
                pending: Some(pending),
            },
        }
    }
}

impl<S, ReqBody, ResBody, SF, E> Future for ResponseFuture<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    SF: Future<Output = Result<Decision, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Decided { future } => return future.poll(cx),
                StateProj::InnerHeaders { future, info } => {
                    let result = std::task::ready!(future.poll(cx));
                    let info = info.take();
                    return Poll::Ready(result.map(|response| {
                        let mut response = response.map(ResponseBody::inner);
                        if let Some(info) = info {
                            info.apply(&mut response);
                        }
                        response
                    }));
                }
                StateProj::Store { future, pending } => {
                    let decided = {
                        let _entered = pending.as_ref().map(|p| p.span.enter());
                        std::task::ready!(future.poll(cx))
                    };
                    let Some(Pending {
                        meta,
                        mut inner,
                        request,
                        span,
                    }) = pending.take()
                    else {
                        return Poll::Pending;
                    };
                    let entered = span.enter();
                    if decided.is_ok() {
                        meta.counters.store_answered();
                    }
                    let next = match decided {
                        Ok(decision) if decision.admitted => {
                            trace_admitted(&span, &meta.plan_id, &meta.key_id, decision.remaining);
                            drop(entered);
                            meta.counters.admitted.increment(1);
                            let info = RateInfo {
                                remaining: decision.remaining,
                                ..meta.info
                            };
                            State::admitted(
                                inner.call(request),
                                (meta.headers_on_success && info.style != RateLimitHeaders::None)
                                    .then_some(info),
                            )
                        }
                        Ok(_) => {
                            trace_refused(
                                &span,
                                &meta.plan_id,
                                &meta.key_id,
                                meta.info.limit,
                                meta.info.reset_seconds,
                            );
                            meta.counters.rejected.increment(1);
                            State::Decided {
                                future: Decided::answered(meta.info.refusal(&request)),
                            }
                        }
                        Err(error) => {
                            meta.counters.store_failed(
                                meta.on_error,
                                &meta.plan_id,
                                &meta.key_id,
                                &error,
                                &span,
                            );
                            drop(entered);
                            match meta.on_error {
                                OnStoreError::Allow => State::admitted(inner.call(request), None),
                                OnStoreError::Refuse => State::Decided {
                                    future: Decided::answered(
                                        QuotaRefusal::StoreFailed.into_response(&request),
                                    ),
                                },
                            }
                        }
                    };
                    this.state.set(next);
                }
            }
        }
    }
}
