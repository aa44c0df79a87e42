//! The layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use portcullis_core::ResponseBody;
use portcullis_core::context::RequestContextExt;
use portcullis_core::future::ResponseFuture as Decided;
use tower_service::Service;
use tracing::Span;

use crate::decision::{Shared, record_accept};
use crate::key::KeyDigest;
use crate::refusal::record_refusal;
use crate::store::ApiKeyStore;
use portcullis_core::refusal::Refusal as _;

pin_project! {
    /// The future of [`ApiKey`](crate::ApiKey).
    ///
    /// With a store that answers at once (the in-memory store) it is
    /// `portcullis_core`'s unboxed future: the inner service's future, or the
    /// refusal. With a store that must be awaited it first drives the store's
    /// lookup, then calls the inner service. Nothing is boxed.
    pub struct ResponseFuture<S, ReqBody, ResBody, St>
    where
        S: Service<Request<ReqBody>>,
        St: ApiKeyStore,
    {
        #[pin]
        kind: Kind<S, ReqBody, ResBody, St>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqBody, ResBody, St>
    where
        S: Service<Request<ReqBody>>,
        St: ApiKeyStore,
    {
        Decided { #[pin] future: Decided<S::Future, ResBody, S::Error> },
        // The layer's span, entered while the store is awaited and the
        // decision made.
        Lookup { #[pin] lookup: St::Lookup, span: Span, pending: Option<Pending<S, ReqBody, St>> },
    }
}

struct Pending<S, ReqBody, St> {
    request: Request<ReqBody>,
    service: S,
    shared: Arc<Shared<St>>,
    digest: KeyDigest,
}

impl<S, ReqBody, ResBody, St> ResponseFuture<S, ReqBody, ResBody, St>
where
    S: Service<Request<ReqBody>>,
    St: ApiKeyStore,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            kind: Kind::Decided {
                future: Decided::inner(future),
            },
        }
    }

    pub(crate) fn answered(response: Response<ResponseBody<ResBody>>) -> Self {
        Self {
            kind: Kind::Decided {
                future: Decided::answered(response),
            },
        }
    }

    pub(crate) fn lookup(
        lookup: St::Lookup,
        request: Request<ReqBody>,
        service: S,
        shared: Arc<Shared<St>>,
        digest: KeyDigest,
        span: Span,
    ) -> Self {
        Self {
            kind: Kind::Lookup {
                lookup,
                span,
                pending: Some(Pending {
                    request,
                    service,
                    shared,
                    digest,
                }),
            },
        }
    }
}

impl<S, ReqBody, ResBody, St> Future for ResponseFuture<S, ReqBody, ResBody, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: ApiKeyStore,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().kind.project() {
                KindProj::Decided { future } => return future.poll(cx),
                KindProj::Lookup {
                    lookup,
                    span,
                    pending,
                } => {
                    let entered = span.enter();
                    let found = ready!(lookup.poll(cx));
                    // Polling after completion is a caller bug: stay pending
                    // rather than panic.
                    let Some(Pending {
                        mut request,
                        mut service,
                        shared,
                        digest,
                    }) = pending.take()
                    else {
                        return Poll::Pending;
                    };
                    let decision = match found {
                        Ok(record) => shared.decide(&digest, Ok(record.as_deref()), span),
                        Err(error) => shared.decide(&digest, Err(error), span),
                    };
                    match decision {
                        Ok(context) => {
                            record_accept(&context, span);
                            request.request_context_mut().set_api_key(context);
                            // The span covers the decision, not the inner
                            // service.
                            drop(entered);
                            Decided::inner(service.call(request))
                        }
                        Err(refusal) => {
                            record_refusal(refusal, span);
                            Decided::answered(refusal.into_response(&request))
                        }
                    }
                }
            };
            self.as_mut()
                .project()
                .kind
                .set(Kind::Decided { future: next });
        }
    }
}

impl<S, ReqBody, ResBody, St> fmt::Debug for ResponseFuture<S, ReqBody, ResBody, St>
where
    S: Service<Request<ReqBody>>,
    St: ApiKeyStore,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Decided { .. } => "decided",
            Kind::Lookup { .. } => "lookup",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
