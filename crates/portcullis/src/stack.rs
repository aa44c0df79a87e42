//! The composed stack: WAF, then IAM or JWT, then API key, then throttle,
//! then quota, composed with static types and boxed once.

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
use pin_project_lite::pin_project;
use portcullis_api_key::ApiKeyLayer;
use portcullis_core::ResponseBody;
use portcullis_core::request_span::{RecordContext, RequestSpanLayer};
#[cfg(feature = "jwt")]
use portcullis_jwt::JwtLayer;
use portcullis_quota::QuotaLayer;
#[cfg(feature = "sigv4")]
use portcullis_sigv4::SigV4Layer;
use portcullis_throttle::ThrottleLayer;
#[cfg(feature = "waf")]
use portcullis_waf::WafLayer;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

use crate::store::{GatewayKeyStore, GatewayQuotaStore, GatewayThrottleStore};

/// The error type of a boxed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type inside and out of the composed stack: any body, boxed.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

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
        S: Service<Request<GatewayBody>, Response = Response<B>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
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
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
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

/// Which authorizer the composed stack runs. Each variant needs its
/// layer's feature: `Iam` needs `sigv4`, `Jwt` needs `jwt` (without either,
/// the enum has no variant and the stack has no authorizer).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Auth {
    /// IAM: SigV4 signatures and policies. Needs the `sigv4` feature.
    #[cfg(feature = "sigv4")]
    Iam(SigV4Layer),
    /// A JWT issuer. Needs the `jwt` feature.
    #[cfg(feature = "jwt")]
    Jwt(JwtLayer),
}

/// The composed layer: WAF, then IAM or JWT, then API key, then throttle,
/// then quota (API Gateway's order), each present only if configured, all
/// inside the request's span, `portcullis.request`, whose id every
/// response carries as `x-amzn-RequestId` (see
/// [`without_request_span`](GatewayLayer::without_request_span)).
///
/// The layers are composed with static types: each optional layer sits in a
/// slot that is either the layer's service or the service inside it, so the
/// type is the same whatever is configured, and each layer's response body
/// is unwrapped (`ResponseBody::into_inner`) rather than boxed. Only the
/// whole stack is erased, once, behind a [`BoxedStack`]: per request that is
/// one boxed future, the request body boxed on the way in (once more below
/// the WAF or SigV4, whose bodies wrap it), the user's response body boxed
/// on the way out, and a refusal's bytes boxed; nothing per layer. Cloning
/// the stack (axum clones the routed service per request) costs one
/// reference count.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct GatewayLayer {
    pub(crate) waf: Option<WafSlot>,
    pub(crate) auth: Option<Auth>,
    pub(crate) api_key: Option<ApiKeyLayer<GatewayKeyStore>>,
    pub(crate) throttle: Option<ThrottleLayer<GatewayThrottleStore>>,
    pub(crate) quota: Option<QuotaLayer<GatewayQuotaStore>>,
    /// Throttle and quota together on Redis, in their place.
    #[cfg(feature = "redis")]
    pub(crate) usage_plan: Option<portcullis_redis::RedisUsagePlanLayer>,
    /// `[api]`: per-method chains from the definition, in place of the
    /// one stack for every route.
    pub(crate) api: Option<ApiSlot>,
    /// Set by [`without_request_span`](GatewayLayer::without_request_span):
    /// request ids only, no `portcullis.request` span.
    pub(crate) no_request_span: bool,
}

/// The WAF slot's layer.
#[cfg(feature = "waf")]
pub(crate) type WafSlot = WafLayer;

/// The WAF slot in a build without the `waf` feature: always empty.
#[cfg(not(feature = "waf"))]
#[derive(Clone, Debug)]
pub(crate) enum WafSlot {}

/// The `[api]` slot.
#[cfg(feature = "openapi")]
pub(crate) type ApiSlot = crate::api::ApiStack;

/// The `[api]` slot in a build without the `openapi` feature: always
/// empty.
#[cfg(not(feature = "openapi"))]
#[derive(Clone, Debug)]
pub(crate) enum ApiSlot {}

impl GatewayLayer {
    /// An empty stack, to fill with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or removes) the WAF. Needs the `waf` feature.
    #[cfg(feature = "waf")]
    pub fn waf(mut self, waf: Option<WafLayer>) -> Self {
        self.waf = waf;
        self
    }

    /// Whether the stack applies an API definition's per-method settings
    /// (`[api]`): then the authorizer and API key are chosen per method, and
    /// an unknown route gets 403 Missing Authentication Token. Always
    /// false without the `openapi` feature.
    #[must_use]
    pub fn has_api(&self) -> bool {
        self.api.is_some()
    }

    /// Drops the API definition: one stack for every route again, as
    /// without `[api]`.
    pub fn without_api(mut self) -> Self {
        self.api = None;
        self
    }

    /// Drops the WAF, and only the WAF: for a per-route stack under an
    /// app-wide WAF. The authorizer (IAM or JWT, as configured), API key,
    /// throttle and quota stay; drop the authorizer with
    /// [`auth(None)`](Self::auth), and the API key and quota with
    /// [`without_api_key`](Self::without_api_key).
    pub fn without_waf(mut self) -> Self {
        self.waf = None;
        self
    }

    /// Opens no `portcullis.request` span: the layers' spans are then
    /// children of whatever span the application entered. Each request
    /// still gets its `RequestId` and its response `x-amzn-RequestId`.
    ///
    /// By default the stack opens the request's span outermost (unless an
    /// outer layer, such as the access-log layer, already did), with the
    /// request id, and records on it the API key's id, the principal, the
    /// outcome, the reason and the status.
    pub fn without_request_span(mut self) -> Self {
        self.no_request_span = true;
        self
    }

    /// The request-span layer the stack opens outermost: the span and the
    /// id, or the id only after
    /// [`without_request_span`](Self::without_request_span).
    pub(crate) fn request_span(&self) -> RequestSpanLayer {
        if self.no_request_span {
            RequestSpanLayer::ids_only()
        } else {
            RequestSpanLayer::new()
        }
    }

    /// Sets (or removes, with `None`) the authorizer: `Auth::Iam` (the
    /// `sigv4` feature) or `Auth::Jwt` (the `jwt` feature).
    /// [`Gateway::layer`](crate::Gateway::layer) sets IAM when `[iam]` is
    /// configured, else JWT when `[jwt]` is; `auth(None)` gives a route that
    /// takes no credential (an API key alone, say).
    pub fn auth(mut self, auth: Option<Auth>) -> Self {
        self.auth = auth;
        self
    }

    /// Sets (or removes) the API-key layer. Without it, throttle and quota
    /// by key do not apply (API Gateway's methods that need no key).
    pub fn api_key(mut self, api_key: Option<ApiKeyLayer<GatewayKeyStore>>) -> Self {
        self.api_key = api_key;
        self
    }

    /// Drops the API key, throttle and quota (a method with no key).
    pub fn without_api_key(mut self) -> Self {
        self.api_key = None;
        self.quota = None;
        self
    }

    /// Sets (or removes) the throttle.
    pub fn throttle(mut self, throttle: Option<ThrottleLayer<GatewayThrottleStore>>) -> Self {
        self.throttle = throttle;
        self
    }

    /// Sets (or removes) the quota.
    pub fn quota(mut self, quota: Option<QuotaLayer<GatewayQuotaStore>>) -> Self {
        self.quota = quota;
        self
    }

    /// Sets (or removes) the throttle and quota decided together on Redis
    /// (`portcullis-redis`), in one round trip per request. Set it in place
    /// of [`throttle`](Self::throttle) and [`quota`](Self::quota).
    #[cfg(feature = "redis")]
    pub fn usage_plan(mut self, usage_plan: Option<portcullis_redis::RedisUsagePlanLayer>) -> Self {
        self.usage_plan = usage_plan;
        self
    }
}

/// The user's service at the bottom of the composed stack: it takes any
/// request body (boxed into a [`GatewayBody`] here, once, and not at all if
/// it already is one) and answers a [`GatewayBody`] (the service's own body,
/// boxed once, and not at all if it already is one).
///
/// Being generic over the request body, one value of it serves every
/// combination of the layers above it, whatever body each of them passes
/// down (the WAF's `WafBody`, SigV4's `SigV4Body`).
#[derive(Clone)]
struct Innermost<S>(S);

impl<S, B, ResBody> Service<Request<B>> for Innermost<S>
where
    S: Service<Request<GatewayBody>, Response = Response<ResBody>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = S::Error;
    type Future = InnermostFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        InnermostFuture {
            future: self.0.call(request.map(box_body)),
        }
    }
}

// The futures of the composed stack nest one inside the other, one level per
// layer, and rustc walks the whole nesting to decide whether a future is
// `Unpin` (for every `&mut` to it, at code generation, against the
// downstream crate's recursion limit). `!Unpin` stops that walk at the first
// of them: the composed stack's futures are always pinned in a box anyway.
pin_project! {
    /// The future of [`Innermost`]: the user's future, its response body
    /// boxed on the way out.
    #[project(!Unpin)]
    struct InnermostFuture<F> {
        #[pin]
        future: F,
    }
}

impl<F, ResBody, E> Future for InnermostFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<GatewayBody>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .future
            .poll(cx)
            .map(|result| result.map(|response| response.map(box_body)))
    }
}

/// One optional layer of the composed stack: `On`, the layer's service
/// around `S`, or `Off`, the service `S` itself. Both answer a
/// [`GatewayBody`], so the stack has one type whatever is configured, and
/// nothing is boxed per layer.
///
/// A layer's response body, `ResponseBody<GatewayBody>`, is unwrapped with
/// [`ResponseBody::into_inner`]: an admitted request's body passes through
/// as it is; only a refusal's bytes are boxed.
#[derive(Clone)]
enum Opt<A, S> {
    On(A),
    Off(S),
}

impl<A, S> Opt<A, S> {
    /// `layer` around `inner` if there is one, else `inner` alone.
    fn new<L: Layer<S, Service = A>>(layer: Option<&L>, inner: S) -> Self {
        match layer {
            Some(layer) => Self::On(layer.layer(inner)),
            None => Self::Off(inner),
        }
    }
}

impl<A, S, B, E> Service<Request<B>> for Opt<A, S>
where
    A: Service<Request<B>, Response = Response<ResponseBody<GatewayBody>>, Error = E>,
    S: Service<Request<B>, Response = Response<GatewayBody>, Error = E>,
{
    type Response = Response<GatewayBody>;
    type Error = E;
    type Future = OptFuture<A::Future, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::On(service) => service.poll_ready(cx),
            Self::Off(service) => service.poll_ready(cx),
        }
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self {
            Self::On(service) => OptFuture::On {
                future: service.call(request),
            },
            Self::Off(service) => OptFuture::Off {
                future: service.call(request),
            },
        }
    }
}

pin_project! {
    /// The future of [`Opt`].
    #[project = OptProj]
    #[project(!Unpin)]
    enum OptFuture<FA, FS> {
        On { #[pin] future: FA },
        Off { #[pin] future: FS },
    }
}

impl<FA, FS, E> Future for OptFuture<FA, FS>
where
    FA: Future<Output = Result<Response<ResponseBody<GatewayBody>>, E>>,
    FS: Future<Output = Result<Response<GatewayBody>, E>>,
{
    type Output = Result<Response<GatewayBody>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            OptProj::On { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(unwrap_body))),
            OptProj::Off { future } => future.poll(cx),
        }
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

impl<S, ResBody> Layer<S> for GatewayLayer
where
    S: Service<Request<GatewayBody>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Service = Boxed<BoxedStack<S::Error>>;

    fn layer(&self, inner: S) -> Self::Service {
        #[cfg(feature = "openapi")]
        if let Some(api) = &self.api {
            return api.layer(self, inner);
        }
        // Inside out: quota, (the Redis usage plan), throttle, API key, the
        // authorizer, the WAF, the request's span. Each slot is an `Opt`, so
        // the type is the same whatever is configured and nothing is boxed
        // per layer. Under the API key and under the authorizer, what they
        // found is copied to the request's span (`RecordContext`), so that
        // it names the key and the caller of a request refused further in.
        let stack = Innermost(inner);
        let stack = Opt::new(self.quota.as_ref(), stack);
        #[cfg(feature = "redis")]
        let stack = Opt::new(self.usage_plan.as_ref(), stack);
        let stack = Opt::new(self.throttle.as_ref(), stack);
        let stack = RecordContext::new(stack);
        let stack = Opt::new(self.api_key.as_ref(), stack);
        let stack = RecordContext::new(stack);
        // IAM or JWT or neither: two nested slots, or one slot when only
        // one of the two is built, or none.
        #[cfg(all(feature = "sigv4", feature = "jwt"))]
        let stack = match &self.auth {
            Some(Auth::Iam(sigv4)) => Opt::On(sigv4.layer(stack)),
            Some(Auth::Jwt(jwt)) => Opt::Off(Opt::On(jwt.layer(stack))),
            None => Opt::Off(Opt::Off(stack)),
        };
        #[cfg(all(feature = "sigv4", not(feature = "jwt")))]
        let stack = match &self.auth {
            Some(Auth::Iam(sigv4)) => Opt::On(sigv4.layer(stack)),
            None => Opt::Off(stack),
        };
        #[cfg(all(feature = "jwt", not(feature = "sigv4")))]
        let stack = match &self.auth {
            Some(Auth::Jwt(jwt)) => Opt::On(jwt.layer(stack)),
            None => Opt::Off(stack),
        };
        // Without either feature `Auth` has no variant: `auth` is `None`.
        #[cfg(not(any(feature = "sigv4", feature = "jwt")))]
        let _: &Option<Auth> = &self.auth;
        #[cfg(feature = "waf")]
        let stack = Opt::new(self.waf.as_ref(), stack);
        Boxed(BoxedStack::erase(self.request_span().layer(stack)))
    }
}
