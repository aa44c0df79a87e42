//! The layer's response future. Not boxed: the in-memory store decides in
//! `call`, so the future is the inner service's future (or the refusal); only
//! a store that answers [`Answer::Pending`](crate::Answer::Pending) makes it
//! wait for the store first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use portcullis_core::ResponseBody;
use tower_service::Service;

use crate::decision::{Decider, Verdict};
use crate::headers::SuccessHeaders;
use crate::store::{Outcome, ThrottleStoreError};

pin_project! {
    /// The response future of [`Throttle`](crate::Throttle).
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
        // The admitted path: the inner future alone, so that this future
        // is no larger than the inner one (and moves as cheaply).
        Inner {
            #[pin]
            future: S::Future,
        },
        // Admitted with rate-limit headers to add (only when the layer writes
        // them on success): the inner future is boxed with them rather than
        // making every future a word larger.
        InnerHeaders {
            future: Pin<Box<S::Future>>,
            headers: Option<Box<SuccessHeaders>>,
        },
        Reject {
            response: Option<Box<Response<ResponseBody<ResBody>>>>,
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
            None => State::Inner { future },
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
            state: State::Inner { future },
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
    pub(crate) fn answered(response: Box<Response<ResponseBody<ResBody>>>) -> Self {
        Self {
            state: State::Reject {
                response: Some(response),
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
            State::Inner { .. } | State::InnerHeaders { .. } => "inner",
            State::Reject { .. } => "reject",
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
        // The admitted path first, inlined into the caller; every other
        // state out of line.
        if let StateProj::Inner { future } = self.as_mut().project().state.project() {
            return match future.poll(cx) {
                Poll::Ready(Ok(response)) => Poll::Ready(Ok(response.map(ResponseBody::inner))),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            };
        }
        self.poll_other(cx)
    }
}

impl<S, ReqBody, ResBody, SF> ResponseFuture<S, ReqBody, ResBody, SF>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    SF: Future<Output = Result<Outcome, ThrottleStoreError>>,
{
    /// [`poll`](Future::poll) for every state but the admitted one without
    /// headers.
    #[inline(never)]
    fn poll_other(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResponseBody<ResBody>>, S::Error>> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner { future } => {
                    return match future.poll(cx) {
                        Poll::Ready(Ok(response)) => {
                            Poll::Ready(Ok(response.map(ResponseBody::inner)))
                        }
                        Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                        Poll::Pending => Poll::Pending,
                    };
                }
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
                StateProj::Reject { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(*response)),
                        // Polled after completion: a caller bug. Answer
                        // pending rather than panic.
                        None => Poll::Pending,
                    };
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
                        Verdict::Reject(response) => State::Reject {
                            response: Some(response),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}
