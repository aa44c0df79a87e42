//! The response future of [`SigV4`](crate::SigV4).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;
use portcullis_core::ResponseBody;
use portcullis_core::future::ResponseFuture as CoreFuture;

type BoxedResponse<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static>>;

pin_project! {
    /// The response future of [`SigV4`](crate::SigV4).
    ///
    /// A request decided synchronously (the credential was known at once and
    /// the body did not need reading: every GET with an in-memory provider)
    /// keeps the inner future in place, unboxed. A request that had to await
    /// the credential provider or hash its body runs in a boxed future.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Decided { #[pin] future: CoreFuture<F, B> },
        Boxed { future: BoxedResponse<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Decided {
                future: CoreFuture::future(future),
            },
        }
    }

    pub(crate) fn reject(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Decided {
                future: CoreFuture::reject(response),
            },
        }
    }

    pub(crate) fn boxed(
        future: impl Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
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
            KindProj::Decided { future } => future.poll(cx),
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Decided { .. } => "decided",
            Kind::Boxed { .. } => "boxed",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
