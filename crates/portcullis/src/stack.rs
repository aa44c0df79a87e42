//! The composed stack: WAF, then IAM or JWT, then API key, then throttle,
//! then quota, as one boxed layer.

use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use portcullis_api_key::ApiKeyLayer;
use portcullis_jwt::JwtLayer;
use portcullis_quota::QuotaLayer;
use portcullis_sigv4::SigV4Layer;
use portcullis_throttle::ThrottleLayer;
use portcullis_waf::WafLayer;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;
use tower_service::Service;

/// The error type of a boxed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type inside and out of the composed stack: any body, boxed.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// The composed stack as a service.
pub type BoxedStack<E> = BoxCloneSyncService<Request<GatewayBody>, Response<GatewayBody>, E>;

/// Boxes any request body into a [`GatewayBody`], then calls the inner
/// service: the service the composed layer builds.
#[derive(Clone)]
pub struct Boxed<S>(S);

impl<S> Boxed<S> {
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

/// Boxes a body.
pub fn box_body<B>(body: B) -> GatewayBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
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

/// Which authorizer the composed stack runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Auth {
    /// IAM: SigV4 signatures and policies.
    Iam(SigV4Layer),
    /// A JWT issuer.
    Jwt(JwtLayer),
}

/// The composed layer: WAF, then IAM or JWT, then API key, then throttle,
/// then quota (API Gateway's order), each present only if configured.
///
/// The composed service is boxed (one allocation per layer per request, and
/// a virtual call): composing five optional layers with unboxed types would
/// give a different type for every configuration. Where that cost matters,
/// take the layers one by one from [`Gateway`](crate::Gateway) and stack them
/// with `tower::ServiceBuilder`.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct GatewayLayer {
    pub(crate) waf: Option<WafLayer>,
    pub(crate) auth: Option<Auth>,
    pub(crate) api_key: Option<ApiKeyLayer>,
    pub(crate) throttle: Option<ThrottleLayer>,
    pub(crate) quota: Option<QuotaLayer>,
}

impl GatewayLayer {
    /// An empty stack, to fill with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or removes) the WAF.
    pub fn waf(mut self, waf: Option<WafLayer>) -> Self {
        self.waf = waf;
        self
    }

    /// Drops the WAF (for a per-route stack under an app-wide WAF).
    pub fn without_waf(self) -> Self {
        self.waf(None)
    }

    /// Sets (or removes) the authorizer.
    pub fn auth(mut self, auth: Option<Auth>) -> Self {
        self.auth = auth;
        self
    }

    /// Sets (or removes) the API-key layer. Without it, throttle and quota
    /// by key do not apply (API Gateway's methods that need no key).
    pub fn api_key(mut self, api_key: Option<ApiKeyLayer>) -> Self {
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
    pub fn throttle(mut self, throttle: Option<ThrottleLayer>) -> Self {
        self.throttle = throttle;
        self
    }

    /// Sets (or removes) the quota.
    pub fn quota(mut self, quota: Option<QuotaLayer>) -> Self {
        self.quota = quota;
        self
    }
}

/// Wraps `inner` in `layer`, boxing bodies on both sides.
fn wrap<L, E, RB>(layer: &L, inner: BoxedStack<E>) -> BoxedStack<E>
where
    L: Layer<Boxed<BoxedStack<E>>>,
    L::Service: Service<Request<GatewayBody>, Response = Response<RB>, Error = E>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as Service<Request<GatewayBody>>>::Future: Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
    E: 'static,
{
    BoxCloneSyncService::new(
        layer
            .layer(Boxed(inner))
            .map_response(|response: Response<RB>| response.map(box_body)),
    )
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
        let mut stack: BoxedStack<S::Error> = BoxCloneSyncService::new(
            inner.map_response(|response: Response<ResBody>| response.map(box_body)),
        );
        if let Some(quota) = &self.quota {
            stack = wrap(quota, stack);
        }
        if let Some(throttle) = &self.throttle {
            stack = wrap(throttle, stack);
        }
        if let Some(api_key) = &self.api_key {
            stack = wrap(api_key, stack);
        }
        match &self.auth {
            Some(Auth::Iam(sigv4)) => stack = wrap(sigv4, stack),
            Some(Auth::Jwt(jwt)) => stack = wrap(jwt, stack),
            None => {}
        }
        if let Some(waf) = &self.waf {
            stack = wrap(waf, stack);
        }
        Boxed(stack)
    }
}
