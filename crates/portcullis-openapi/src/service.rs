//! The service: route match on the canonical path, the matched method's
//! chain, and CORS on the way out.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use portcullis_core::context::RequestContextExt;
use portcullis_core::path::CanonicalPath;
use portcullis_core::refusal::Refusal;
use portcullis_core::resource::ApiResource;
use portcullis_core::trace::Decision;
use tower::ServiceExt;
use tower_service::Service;
use tracing::Span;

use crate::chain::Route;
use crate::cors::{is_preflight, preflight_response};
use crate::definition::ApiDefinition;
use crate::refusal::{OpenApiRefusal, refuse};

/// The service made by [`OpenApiLayer`](crate::OpenApiLayer).
pub struct OpenApi<B, RB, E> {
    pub(crate) definition: Arc<ApiDefinition>,
    pub(crate) chains: Arc<Vec<Route<B, RB, E>>>,
}

impl<B, RB, E> Clone for OpenApi<B, RB, E> {
    fn clone(&self) -> Self {
        Self {
            definition: Arc::clone(&self.definition),
            chains: Arc::clone(&self.chains),
        }
    }
}

impl<B, RB, E> fmt::Debug for OpenApi<B, RB, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApi").finish_non_exhaustive()
    }
}

/// The matched method's resource path template, left in the response
/// extensions for the access log (`$context.resourcePath`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath(pub Arc<str>);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B, RB, E> Service<Request<B>> for OpenApi<B, RB, E>
where
    B: Send + 'static,
    RB: From<Bytes> + Send + 'static,
    E: Send + 'static,
{
    type Response = Response<RB>;
    type Error = E;
    type Future = BoxFuture<Result<Response<RB>, E>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        // Each chain is made ready in `call`, on a clone (DESIGN contract 2).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let definition = Arc::clone(&self.definition);
        let chains = Arc::clone(&self.chains);
        if let Some(responses) = definition.gateway_responses() {
            let context = request.request_context_mut();
            if context.gateway_responses().is_none() {
                context.set_gateway_responses(responses.clone());
            }
        }
        let origin = request.headers().get(header::ORIGIN).cloned();
        let cors_origin = match (
            definition.cors(),
            origin.as_ref().and_then(|o| o.to_str().ok()),
        ) {
            (Some(cors), Some(origin)) => cors.allow_origin(origin),
            _ => None,
        };
        Box::pin(async move {
            let mut response = route(&definition, &chains, request).await?;
            if let (Some(cors), Some(allowed)) = (definition.cors(), cors_origin) {
                let headers = response.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&allowed) {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                }
                if cors.allow_credentials {
                    headers.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
                if !cors.expose_headers.is_empty()
                    && let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(","))
                {
                    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
                }
                if allowed != "*" {
                    headers.append(header::VARY, HeaderValue::from_static("Origin"));
                }
            }
            Ok(response)
        })
    }
}

async fn route<B, RB, E>(
    definition: &ApiDefinition,
    chains: &[Route<B, RB, E>],
    mut request: Request<B>,
) -> Result<Response<RB>, E>
where
    RB: From<Bytes>,
{
    let span = portcullis_core::layer_span!("openapi", step = "route");
    let path = match CanonicalPath::of_uri(request.uri()) {
        Ok(path) => path.into_owned(),
        Err(refusal) => {
            let refusal = OpenApiRefusal::NonCanonicalPath(refusal);
            route_refused(&refusal, &span);
            return Ok(refuse(refusal, &request));
        }
    };
    let preflight = is_preflight(&request);
    if preflight && let Some(cors) = definition.cors() {
        // An HTTP API answers preflights itself, before any authorizer.
        return Ok(preflight_response(cors, &request));
    }
    let Some(settings) = definition.route(request.method(), &path).cloned() else {
        route_refused(&OpenApiRefusal::NoRoute, &span);
        return Ok(refuse(OpenApiRefusal::NoRoute, &request));
    };
    let resource = ResourcePath(Arc::from(settings.resource_path.as_str()));
    if preflight && let Some(mock) = &settings.mock {
        // A REST export's OPTIONS mock: answered without credentials.
        let mut response = Response::new(RB::from(Bytes::new()));
        *response.status_mut() = mock.status;
        for (name, value) in &mock.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response.extensions_mut().insert(resource);
        return Ok(response);
    }
    let chain = chains.get(settings.chain).cloned();
    // The resource, for the layers of the chain: a per-method throttle keys
    // its selectors by it, a REQUEST authorizer sends it in its event.
    request
        .extensions_mut()
        .insert(api_resource(&settings.resource_path, path.as_str()));
    request.extensions_mut().insert(settings);
    let mut response = match chain {
        Some(chain) => {
            let decision = Decision::allowed().with_detail("routed");
            decision.record(&span);
            span.in_scope(|| {
                tracing::debug!(
                    layer = "openapi",
                    outcome = decision.outcome().as_str(),
                    reason = decision.reason(),
                    detail = decision.detail(),
                    resource = %resource.0,
                    "request routed"
                );
            });
            // The span covers the decision, not the inner service.
            drop(span);
            chain.oneshot(request).await?
        }
        None => {
            route_refused(&OpenApiRefusal::NoChain, &span);
            refuse(OpenApiRefusal::NoChain, &request)
        }
    };
    response.extensions_mut().insert(resource);
    Ok(response)
}

/// The span and event of a request no route takes (a client's mistake: at
/// DEBUG).
fn route_refused(refusal: &OpenApiRefusal, span: &Span) {
    let decision = refusal.decision();
    decision.record(span);
    let _entered = span.enter();
    tracing::debug!(
        layer = "openapi",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        "request refused"
    );
}

/// The resource `template` that [`ApiDefinition::route`] matched on the
/// canonical `path`, with the values its `{name}` segments took and the rest
/// of the path for its `{name+}` segment.
fn api_resource(template: &str, path: &str) -> ApiResource {
    let mut parameters = Vec::new();
    if template != "/" {
        let mut rest = path.strip_prefix('/').unwrap_or(path);
        for segment in template.trim_start_matches('/').split('/') {
            let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                rest = rest.split_once('/').map_or("", |(_, tail)| tail);
                continue;
            };
            if let Some(greedy) = name.strip_suffix('+') {
                parameters.push((greedy, rest));
                break;
            }
            let (value, tail) = rest.split_once('/').unwrap_or((rest, ""));
            parameters.push((name, value));
            rest = tail;
        }
    }
    ApiResource::new(template, parameters)
}
