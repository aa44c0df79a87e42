//! The layer's response future: core's, with two states of the throttle's
//! own. Not boxed: the in-memory store decides in `call`, so the future is
//! core's [`ResponseFuture`](portcullis_core::future::ResponseFuture) (the
//! inner service's future, or the refusal); only a store that answers
//! [`Answer::Pending`](crate::Answer::Pending) makes it wait for the store
//! first, awaiting the store's named future in place (core's boxed waiting
//! state would need `Send` and a box per request), and an admitted response
//! whose rate-limit headers are written on success keeps them beside the
//! inner future.
//!
//! What core's future costs here: it is one enum nested in another, so the
//! future is one word larger than the inner future when the inner future
//! leaves no spare discriminant (`Bare`'s: 136 bytes, this future 144, the
//! throttle's own future was 136), and polling the admitted future checks
//! two discriminants. `throttle_hot_path` under callgrind counts 9
//! instructions more per admitted request (1,183.0 -> 1,192.0 over bare,
//! 0.8%) and 22 fewer per refusal (12,914.5 -> 12,892.5), which no longer
//! moves its response out of a box.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use portcullis_core::ResponseBody;
use portcullis_core::future::ResponseFuture as Decided;
use tower_service::Service;

use crate::decision::{Decider, Verdict};
use crate::headers::SuccessHeaders;
use crate::store::{Outcome, ThrottleStoreError};

pin_project! {
    /// The response future of [`Throttle`](crate::Throttle).
    ///
    /// Decided in `call` (the in-memory store), it is `portcullis_core`'s
    /// unboxed [`ResponseFuture`](portcullis_core::future::ResponseFuture):
    /// the inner service's future, or the refusal. Admitted with rate-limit
    /// headers to add, it is the inner future (boxed, with the headers: only
    /// when the layer writes them on success). With a store that answers
    /// later, it awaits the store's named future in place, then calls the
    /// inner service.
    pub struct ResponseFuture<S, ReqBody, ResBody, SF>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        #[pin]
        state: State<S, ReqBody, ResBody, SF>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody, SF>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        // Admitted (the inner future alone) or refused: core's future.
        Decided {
            #[pin]
            future: Decided<S::Future, ResBody, S::Error>,
        },
        // Admitted with rate-limit headers to add (only when the layer writes
        // them on success): the inner future is boxed with them rather than
        // making every future a word larger.
        InnerHeaders {
            future: Pin<Box<S::Future>>,
            headers: Option<Box<SuccessHeaders>>,
        },
        Waiting {
            #[pin]
            store: SF,
            // Boxed: only a networked store waits, and the request and
            // service it holds would make every future large.
            pending: Option<Box<Pending<S, ReqBody>>>,
        },
    }
}

impl<S, ReqBody, ResBody, SF> State<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    #[inline]
    fn admitted(future: S::Future, headers: Option<Box<SuccessHeaders>>) -> Self {
        match headers {
            None => State::Decided {
                future: Decided::inner(future),
            },
            Some(headers) => State::InnerHeaders {
                future: Box::pin(future),
                headers: Some(headers),
            },
        }
    }
}

/// What a request waiting for the store holds.
pub(crate) struct Pending<S, ReqBody> {
    service: S,
    request: Request<ReqBody>,
    decider: Decider,
}

impl<S, ReqBody, ResBody, SF> ResponseFuture<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    #[inline]
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Decided {
                future: Decided::inner(future),
            },
        }
    }

    /// Admitted, with rate-limit headers to add (out of line: only with
    /// `headers_on_success`).
    #[inline(never)]
    pub(crate) fn inner_headers(future: S::Future, headers: Box<SuccessHeaders>) -> Self {
        Self {
            state: State::admitted(future, Some(headers)),
        }
    }

    #[inline]
    pub(crate) fn answered(response: Response<ResponseBody<ResBody>>) -> Self {
        Self {
            state: State::Decided {
                future: Decided::answered(response),
            },
        }
    }

    pub(crate) fn waiting(
        store: SF,
        service: S,
        request: Request<ReqBody>,
        decider: Decider,
    ) -> Self {
        Self {
            state: State::Waiting {
                store,
                pending: Some(Box::new(Pending {
                    service,
                    request,
                    decider,
                })),
            },
        }
    }
}

impl<S, ReqBody, ResBody, SF> std::fmt::Debug for ResponseFuture<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Decided { .. } => "decided",
            State::InnerHeaders { .. } => "inner",
            State::Waiting { .. } => "waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqBody, ResBody, SF> Future for ResponseFuture<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    SF: Future<Output = Result<Outcome, ThrottleStoreError>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The decided path (admitted or refused) first, inlined into the
        // caller; every other state out of line.
        if let StateProj::Decided { future } = self.as_mut().project().state.project() {
            return future.poll(cx);
        }
        self.poll_other(cx)
    }
}

impl<S, ReqBody, ResBody, SF> ResponseFuture<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    SF: Future<Output = Result<Outcome, ThrottleStoreError>>,
{
    /// [`poll`](Future::poll) for every state but the decided one.
    #[inline(never)]
    fn poll_other(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResponseBody<ResBody>>, S::Error>> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Decided { future } => return future.poll(cx),
                StateProj::InnerHeaders { future, headers } => {
                    let response = match future.as_mut().poll(cx) {
                        Poll::Ready(Ok(response)) => response,
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Pending => return Poll::Pending,
                    };
                    let mut response = response.map(ResponseBody::inner);
                    if let Some(success) = headers.take() {
                        // Merged with the policies of a layer inside (the
                        // quota), written as one set.
                        success.info.apply(success.style, &mut response);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Waiting { store, pending } => {
                    let result = match store.poll(cx) {
                        Poll::Ready(result) => result,
                        Poll::Pending => return Poll::Pending,
                    };
                    let Some(pending) = pending.take() else {
                        return Poll::Pending;
                    };
                    let Pending {
                        mut service,
                        request,
                        decider,
                    } = *pending;
                    match decider.conclude::<ReqBody, ResBody>(result, &request) {
                        Verdict::Admit(headers) => State::admitted(service.call(request), headers),
                        Verdict::Reject(response) => State::Decided {
                            future: Decided::answered(*response),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}
