//! The protection chains: the type-erased route each protection layer
//! wraps, and the checks after each layer that it left what it vouches for.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use portcullis_core::ResponseBody;
use portcullis_core::context::RequestContextExt;
use portcullis_core::trace::{self, Decision};
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::definition::{Authorization, MethodSettings};
use crate::refusal::{OpenApiRefusal, refused};

/// The type-erased service each protection layer wraps.
pub type Route<B, RB, E> = BoxCloneSyncService<Request<B>, Response<RB>, E>;

pub(crate) type Wrap<B, RB, E> = Arc<dyn Fn(Route<B, RB, E>) -> Route<B, RB, E> + Send + Sync>;

/// One chain's authorizer layer and API-key layer.
pub(crate) type ChainLayers<B, RB, E> = (Option<Wrap<B, RB, E>>, Option<Wrap<B, RB, E>>);

/// A protection layer, as [`OpenApiLayerBuilder`](crate::OpenApiLayerBuilder)
/// takes it: a `Layer<`[`Route`]`<B, RB, E>>` (`Send + Sync + 'static`)
/// whose service takes `Request<B>`, answers with a
/// [`ResponseBody`]`<RB>` and fails with the route's `E`, and is
/// `Clone + Send + Sync + 'static` with a `Send` future.
///
/// Implemented for every such layer (portcullis-sigv4's `SigV4Layer`,
/// portcullis-jwt's `JwtLayer`, portcullis-api-key's `ApiKeyLayer`, a
/// `ServiceBuilder` stack of them); it cannot be implemented otherwise.
pub trait RouteLayer<B, RB, E>: sealed::IntoWrap<B, RB, E> {}

impl<L: sealed::IntoWrap<B, RB, E>, B, RB, E> RouteLayer<B, RB, E> for L {}

mod sealed {
    use super::{
        Arc, BoxCloneSyncService, Bytes, Layer, Request, Response, ResponseBody, Route, Service,
        ServiceExt, Wrap,
    };

    /// Turns a protection layer into the function that wraps a route in it.
    pub trait IntoWrap<B, RB, E> {
        fn into_wrap(self) -> Wrap<B, RB, E>;
    }

    impl<B, RB, E, L> IntoWrap<B, RB, E> for L
    where
        L: Layer<Route<B, RB, E>> + Send + Sync + 'static,
        L::Service: Service<Request<B>, Response = Response<ResponseBody<RB>>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<B>>>::Future: Send + 'static,
        B: 'static,
        RB: From<Bytes> + 'static,
        E: 'static,
    {
        fn into_wrap(self) -> Wrap<B, RB, E> {
            Arc::new(move |route| {
                BoxCloneSyncService::new(self.layer(route).map_response(|response| {
                    response.map(|body| match body.into_inner() {
                        Ok(body) => body,
                        Err(bytes) => RB::from(bytes),
                    })
                }))
            })
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Require {
    Caller,
    ApiKey,
}

/// After a protection layer: fail closed if it let the request through
/// without leaving what it vouches for, and check the method's scopes.
pub(crate) fn require<B, RB, E>(next: Route<B, RB, E>, what: Require) -> Route<B, RB, E>
where
    B: Send + 'static,
    RB: From<Bytes> + Send + 'static,
    E: Send + 'static,
{
    BoxCloneSyncService::new(service_fn(move |request: Request<B>| {
        let next = next.clone();
        async move {
            let start = Instant::now();
            let span = match what {
                Require::Caller => portcullis_core::layer_span!("openapi", step = "require_caller"),
                Require::ApiKey => {
                    portcullis_core::layer_span!("openapi", step = "require_api_key")
                }
            };
            portcullis_core::request_span::record_context(&request);
            let settings = request.extensions().get::<Arc<MethodSettings>>().cloned();
            let refusal = match what {
                Require::ApiKey => {
                    (request.api_key().is_none()).then_some(OpenApiRefusal::NoApiKey)
                }
                Require::Caller => match (request.caller(), settings.as_deref()) {
                    (None, Some(s)) => Some(OpenApiRefusal::NoCaller {
                        iam: matches!(s.authorization, Authorization::Iam { .. }),
                    }),
                    (
                        Some(caller),
                        Some(MethodSettings {
                            authorization: Authorization::CognitoUserPools { scopes, .. },
                            ..
                        }),
                    ) if !scopes.is_empty() && !scopes.iter().any(|s| caller.has_scope(s)) => {
                        Some(OpenApiRefusal::ScopeMissing)
                    }
                    _ => None,
                },
            };
            if let Some(refusal) = refusal {
                return refused(refusal, &request, start.elapsed(), &span);
            }
            record_allowed(&request, &span);
            drop(span);
            next.oneshot(request).await
        }
    }))
}

/// Records on a `require` step's span that the layer before it left what
/// it vouches for.
pub(crate) fn record_allowed<B>(request: &Request<B>, span: &Span) {
    Decision::allowed().record(span);
    if let Some(caller) = request.caller() {
        trace::record_principal(span, caller.principal());
    }
    if let Some(key) = request.api_key() {
        trace::record_key_id(span, key.key_id());
    }
}
