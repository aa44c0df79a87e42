//! The layer's response future: unboxed when the decision is synchronous (a
//! cache hit, a known key, a refusal), boxed only while a key fetch is awaited.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use portcullis_core::ResponseBody;

type Waiting<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of [`Jwt`](crate::Jwt).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Now { #[pin] future: portcullis_core::future::ResponseFuture<F, B> },
        Waiting { future: Waiting<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn now(future: portcullis_core::future::ResponseFuture<F, B>) -> Self {
        Self {
            kind: Kind::Now { future },
        }
    }

    pub(crate) fn waiting(future: Waiting<B, E>) -> Self {
        Self {
            kind: Kind::Waiting { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Now { future } => future.poll(cx),
            KindProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Now { .. } => "now",
            Kind::Waiting { .. } => "waiting_for_keys",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
