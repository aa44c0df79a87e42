//! The boxing of the composed stack: its one body type, [`GatewayBody`],
//! and the type-erased service, [`BoxedStack`], behind which the whole stack
//! sits, once.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use portcullis_core::ResponseBody;
use tower::ServiceExt;
use tower_service::Service;

/// The error type of a boxed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type inside and out of the composed stack: any body, boxed.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// A service the gateway's stack can wrap: it takes the stack's
/// [`GatewayBody`] requests, answers with a body of `ResBody`, and it and its
/// future can be cloned and sent across threads. Every such service has it
/// (a blanket impl): the bounds of [`GatewayLayer`](crate::GatewayLayer)'s,
/// [`ReloadableLayer`](crate::ReloadableLayer)'s and the stack's own `Layer`
/// impls, named once.
pub trait GatewayService<ResBody>:
    Service<
        Request<GatewayBody>,
        Response = Response<ResBody>,
        Future: Send + 'static,
        Error: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S, ResBody> GatewayService<ResBody> for S where
    S: Service<
            Request<GatewayBody>,
            Response = Response<ResBody>,
            Future: Send + 'static,
            Error: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// A response body the gateway's stack can box into a [`GatewayBody`]:
/// bytes, an error that converts into a [`BoxError`], and `Send`. Every
/// such body has it (a blanket impl).
pub trait GatewayResponseBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<B> GatewayResponseBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{}

/// The future of a [`BoxedStack`] call.
pub type StackFuture<E> = Pin<Box<dyn Future<Output = Result<Response<GatewayBody>, E>> + Send>>;

type CallFn<E> = dyn Fn(Request<GatewayBody>) -> StackFuture<E> + Send + Sync;

/// A type-erased service of the composed stack: one layer's service (and,
/// through it, every layer inside it).
///
/// Cloning it costs one reference count, where `tower`'s
/// `BoxCloneSyncService` allocates and clones the whole stack inside it.
/// That matters because every Portcullis layer, like most tower
/// middleware, clones its inner service on each call (tower's "be careful
/// when cloning inner services"), and axum clones the routed service for
/// each request.
///
/// It is always ready: each call clones the erased service, waits until
/// that clone is ready, then calls it (tower's `oneshot`), in the returned
/// future. Its response body is boxed into a [`GatewayBody`].
pub struct BoxedStack<E> {
    call: Arc<CallFn<E>>,
}

impl<E> Clone for BoxedStack<E> {
    fn clone(&self) -> Self {
        Self {
            call: Arc::clone(&self.call),
        }
    }
}

impl<E> fmt::Debug for BoxedStack<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxedStack").finish_non_exhaustive()
    }
}

impl<E: Send + 'static> BoxedStack<E> {
    /// Erases `service`.
    pub fn new<S, B>(service: S) -> Self
    where
        S: Service<Request<GatewayBody>, Response = Response<B>, Error = E> + GatewayService<B>,
        B: GatewayResponseBody,
    {
        Self {
            call: Arc::new(move |request| {
                Box::pin(
                    service
                        .clone()
                        .map_response(|response: Response<B>| response.map(box_body))
                        .oneshot(request),
                )
            }),
        }
    }

    /// Erases `service`, whose responses already have a [`GatewayBody`]: as
    /// [`new`](Self::new), without mapping the body.
    pub(crate) fn erase<S>(service: S) -> Self
    where
        S: Service<Request<GatewayBody>, Response = Response<GatewayBody>, Error = E>
            + GatewayService<GatewayBody>,
    {
        Self {
            call: Arc::new(move |request| Box::pin(service.clone().oneshot(request))),
        }
    }
}

impl<E> Service<Request<GatewayBody>> for BoxedStack<E> {
    type Response = Response<GatewayBody>;
    type Error = E;
    type Future = StackFuture<E>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<GatewayBody>) -> Self::Future {
        (self.call)(request)
    }
}

/// Boxes any request body into a [`GatewayBody`], then calls the inner
/// service: the service the composed layer builds.
#[derive(Clone)]
pub struct Boxed<S>(S);

impl<S> Boxed<S> {
    /// Boxes the request bodies of `inner`.
    pub fn new(inner: S) -> Self {
        Self(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.0
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.0
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.0
    }
}

impl<S> fmt::Debug for Boxed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Boxed").finish_non_exhaustive()
    }
}

/// Boxes a body. A body that is already a [`GatewayBody`] is returned as it
/// is, not boxed a second time.
pub fn box_body<B>(body: B) -> GatewayBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    if let Some(boxed) = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<GatewayBody>>()
        .and_then(Option::take)
    {
        return boxed;
    }
    // `slot` is still full here: the downcast above took nothing.
    slot.map_or_else(GatewayBody::default, |body| {
        body.map_err(Into::into).boxed_unsync()
    })
}

impl<S, B> Service<Request<B>> for Boxed<S>
where
    S: Service<Request<GatewayBody>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.0.call(request.map(box_body))
    }
}

/// A layer's response body as a [`GatewayBody`], with
/// [`ResponseBody::into_inner`]: the inner body as it is (no allocation), or
/// a refusal's bytes, boxed.
pub(crate) fn unwrap_body(body: ResponseBody<GatewayBody>) -> GatewayBody {
    match body.into_inner() {
        Ok(inner) => inner,
        // Like an empty `ResponseBody::rejection`: ended, exact size 0.
        Err(bytes) if bytes.is_empty() => GatewayBody::default(),
        Err(bytes) => Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
    }
}
