//! A response future shared by the layers that decide synchronously.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

pin_project! {
    /// The future of a layer that either calls the inner service or refuses at
    /// once. It is not boxed: the inner future is stored in place.
    #[derive(Debug)]
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F, B> {
        Future { #[pin] future: F },
        Reject { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    /// The inner service's future: the request was let through.
    pub fn future(future: F) -> Self {
        Self {
            kind: Kind::Future { future },
        }
    }

    /// A refusal, answered without calling the inner service.
    pub fn reject(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Reject {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Future { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::inner))),
            KindProj::Reject { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polling a completed future is a caller bug; answer pending
                // rather than panic, as library code never panics.
                None => Poll::Pending,
            },
        }
    }
}
