//! The layer that puts [`GatewayResponses`] into every request's context.

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::GatewayResponses;
use crate::context::RequestContextExt;

/// Puts the gateway-response overrides into each request's context, where
/// every Portcullis layer inside it finds them when it refuses a request.
///
/// Place it outside all other Portcullis layers.
///
/// ```
/// use portcullis_core::response::{
///     GatewayResponse, GatewayResponseType, GatewayResponses, GatewayResponsesLayer, ResponseOverride,
/// };
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let overrides = GatewayResponses::new().with(
///     GatewayResponseType::InvalidApiKey,
///     ResponseOverride::new().status_code(http::StatusCode::UNAUTHORIZED),
/// );
/// // A stand-in for a layer that refuses every request.
/// let service = ServiceBuilder::new()
///     .layer(GatewayResponsesLayer::new(overrides))
///     .service_fn(|request: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(
///             GatewayResponse::new(GatewayResponseType::InvalidApiKey).render(&request),
///         )
///     });
/// let response = service.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(response.status(), 401);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct GatewayResponsesLayer {
    responses: GatewayResponses,
}

impl GatewayResponsesLayer {
    /// A layer that installs these overrides.
    pub fn new(responses: GatewayResponses) -> Self {
        Self { responses }
    }
}

impl<S> Layer<S> for GatewayResponsesLayer {
    type Service = GatewayResponsesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GatewayResponsesService {
            inner,
            responses: self.responses.clone(),
        }
    }
}

/// The service made by [`GatewayResponsesLayer`].
#[derive(Clone, Debug)]
pub struct GatewayResponsesService<S> {
    inner: S,
    responses: GatewayResponses,
}

impl<S> GatewayResponsesService<S> {
    /// Wraps `inner`, installing `responses` in every request.
    pub fn new(inner: S, responses: GatewayResponses) -> Self {
        Self { inner, responses }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for GatewayResponsesService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request
            .request_context_mut()
            .set_gateway_responses(self.responses.clone());
        self.inner.call(request)
    }
}
