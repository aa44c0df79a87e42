//! The plain layer chain: WAF, then IAM or JWT, then API key, then
//! throttle, then quota, composed with static types and boxed once. The
//! composed layer ([`GatewayLayer`](crate::GatewayLayer)) is this chain,
//! or, with `[api]`, the per-method chains built from its layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use portcullis_api_key::ApiKeyLayer;
use portcullis_core::ResponseBody;
use portcullis_core::request_span::{RecordContext, RequestSpanLayer};
#[cfg(feature = "jwt")]
use portcullis_jwt::JwtLayer;
use portcullis_quota::QuotaLayer;
#[cfg(feature = "sigv4")]
use portcullis_sigv4::{SigV4Body, SigV4Layer};
use portcullis_throttle::ThrottleLayer;
#[cfg(feature = "waf")]
use portcullis_waf::{WafBody, WafLayer};
use tower_layer::Layer;
use tower_service::Service;

use crate::boxed::{
    BoxError, Boxed, BoxedStack, GatewayBody, GatewayResponseBody, GatewayService, box_body,
    unwrap_body,
};
use crate::store::{GatewayKeyStore, GatewayQuotaStore, GatewayThrottleStore};

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

/// The composed stack without `[api]`: its layers, each present only if
/// configured. [`GatewayLayer`](crate::GatewayLayer) holds one and its
/// setters fill it; as a layer it builds the one stack for every route.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chain {
    pub(crate) waf: Option<WafSlot>,
    pub(crate) auth: Option<Auth>,
    pub(crate) api_key: Option<ApiKeyLayer<GatewayKeyStore>>,
    pub(crate) throttle: Option<ThrottleLayer<GatewayThrottleStore>>,
    pub(crate) quota: Option<QuotaLayer<GatewayQuotaStore>>,
    /// Throttle and quota together on Redis, in their place.
    #[cfg(feature = "redis")]
    pub(crate) usage_plan: Option<portcullis_redis::RedisUsagePlanLayer>,
    /// Set by [`without_request_span`](crate::GatewayLayer::without_request_span):
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

impl Chain {
    /// The request-span layer the stack opens outermost: the span and the
    /// id, or the id only after
    /// [`without_request_span`](crate::GatewayLayer::without_request_span).
    pub(crate) fn request_span(&self) -> RequestSpanLayer {
        if self.no_request_span {
            RequestSpanLayer::ids_only()
        } else {
            RequestSpanLayer::new()
        }
    }
}

/// A request body as it reaches the bottom of the composed stack: the
/// [`GatewayBody`] the stack boxed on the way in, in the wrappers of the
/// layers that may read it (the WAF's `WafBody`, SigV4's `SigV4Body`).
trait IntoGatewayBody {
    /// The body as the user's service takes it: a wrapper that passes the
    /// body through untouched is taken off (no allocation), so the body is
    /// the one boxed on the way in; a wrapper that replays what its layer
    /// read is boxed.
    fn into_gateway_body(self) -> GatewayBody;
}

impl IntoGatewayBody for GatewayBody {
    #[inline]
    fn into_gateway_body(self) -> GatewayBody {
        self
    }
}

/// `IntoGatewayBody` for a layer's request body that can give back the body
/// it wraps (`into_inner(self) -> Result<B, Self>`): the wrapped body if it
/// passed through, else the wrapper, boxed.
macro_rules! into_gateway_body_by_unwrapping {
    ($($feature:literal => $wrapper:ident),* $(,)?) => {$(
        #[cfg(feature = $feature)]
        impl<B> IntoGatewayBody for $wrapper<B>
        where
            B: IntoGatewayBody,
            Self: Body<Data = Bytes> + Send + 'static,
            <Self as Body>::Error: Into<BoxError>,
        {
            #[inline]
            fn into_gateway_body(self) -> GatewayBody {
                match self.into_inner() {
                    Ok(body) => body.into_gateway_body(),
                    Err(body) => box_body(body),
                }
            }
        }
    )*};
}

into_gateway_body_by_unwrapping!("waf" => WafBody, "sigv4" => SigV4Body);

/// The user's service at the bottom of the composed stack: it takes the
/// request body the stack boxed on the way in (unwrapped from the layers'
/// bodies with [`IntoGatewayBody`]: boxed again only when a layer replays
/// what it read) and answers a [`GatewayBody`] (the service's own body,
/// boxed once, and not at all if it already is one).
///
/// Being generic over the request body, one value of it serves every
/// combination of the layers above it, whatever body each of them passes
/// down.
#[derive(Clone)]
struct Innermost<S>(S);

impl<S, B, ResBody> Service<Request<B>> for Innermost<S>
where
    S: Service<Request<GatewayBody>, Response = Response<ResBody>>,
    B: IntoGatewayBody,
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
            future: self.0.call(request.map(IntoGatewayBody::into_gateway_body)),
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

impl<S, ResBody> Layer<S> for Chain
where
    S: Service<Request<GatewayBody>, Response = Response<ResBody>> + GatewayService<ResBody>,
    ResBody: GatewayResponseBody,
{
    type Service = Boxed<BoxedStack<S::Error>>;

    fn layer(&self, inner: S) -> Self::Service {
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
        Boxed::new(BoxedStack::erase(self.request_span().layer(stack)))
    }
}
