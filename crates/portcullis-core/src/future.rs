//! [`ResponseFuture`]: the one response future of every Portcullis layer.
//!
//! A layer's call ends in one of three states:
//!
//! - **inner running**: the request was let through and the inner service's
//!   future runs in place, unboxed ([`ResponseFuture::inner`]);
//! - **answered at once**: the layer refused without calling the inner
//!   service ([`ResponseFuture::answered`]);
//! - **awaiting async work**: the decision needs I/O first (a JWKS fetch, a
//!   Redis round trip, a custom authorizer), so the future is boxed and
//!   calls the inner service itself when it is done
//!   ([`ResponseFuture::waiting`]).
//!
//! The two common states allocate nothing, so a layer whose store answers
//! [`Ready`](crate::store::Answer::Ready) keeps a fast path free of boxing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

/// The boxed future of a layer that awaits async work before deciding.
pub type Waiting<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of a Portcullis layer: the inner service's future
    /// `F` (whose response body is `B` and error `E`) run in place, a refusal
    /// answered at once, or async work awaited in a box.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Inner { #[pin] future: F },
        Answered { response: Option<Response<ResponseBody<B>>> },
        Waiting { future: Waiting<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    /// The inner service's future: the request was let through.
    pub fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    /// A response given without calling the inner service (a refusal).
    pub fn answered(response: Response<ResponseBody<B>>) -> Self {
        Self {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    /// Async work that decides, then calls the inner service or refuses.
    pub fn waiting(future: Waiting<B, E>) -> Self {
        Self {
            state: State::Waiting { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::inner))),
            StateProj::Answered { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polling a completed future is a caller bug; answer pending
                // rather than panic, as library code never panics.
                None => Poll::Pending,
            },
            StateProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Answered { .. } => "answered",
            State::Waiting { .. } => "waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
