//! `[api]`: per-method stacks from an API Gateway OpenAPI export, built from
//! the gateway's own layers.
//!
//! `portcullis-openapi` routes each request to its method and sends it down
//! the chain of protections the method names; this module hands it the
//! gateway's layers, one per kind of protection:
//!
//! - `awsSigv4` / `AWS_IAM` methods: the `[iam]` SigV4 layer;
//! - `cognito_user_pools` methods: the `[jwt]` layer (then the method's
//!   scopes, checked by `portcullis-openapi`);
//! - custom authorizers: an `AuthorizerLayer` per security scheme, calling
//!   the endpoint of `[api.authorizers.NAME]` with the settings the
//!   definition declares (type, identity sources, validation expression,
//!   cache TTL);
//! - `api_key` methods: the API-key layer, reading the key from the header
//!   or from the authorizer as `x-amazon-apigateway-api-key-source` says;
//! - every method: the throttle (stage per-method limits for all callers,
//!   the key's plan for methods with a key) and the quota.
//!
//! The WAF sits in front of the router, so it sees every request,
//! preflights and unknown routes included.

#[cfg(feature = "authorizer")]
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
#[cfg(feature = "authorizer")]
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;
#[cfg(feature = "authorizer")]
use portcullis_authorizer::{AuthorizerConfig, AuthorizerLayer, AuthorizerType, HttpAuthorizer};
use portcullis_core::client_ip::ClientIpResolver;
#[cfg(feature = "authorizer")]
use portcullis_core::clock::SharedClock;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{MethodSelector, ThrottleSettings};
use portcullis_core::{GatewayResponse, GatewayResponseType, ResponseBody};
#[cfg(feature = "authorizer")]
use portcullis_iam::ExecuteApiArn;
#[cfg(feature = "jwt")]
use portcullis_jwt::JwtLayer;
use portcullis_openapi::access_log::AccessLogLayer;
#[cfg(feature = "authorizer")]
use portcullis_openapi::definition::{Authorization, CustomAuthorizerKind};
use portcullis_openapi::{ApiDefinition, OpenApiLayer, OpenApiLayerBuilder, Route};
#[cfg(feature = "sigv4")]
use portcullis_sigv4::SigV4Layer;
use tower::ServiceExt;
use tower::util::{MapRequest, MapResponse};
use tower_layer::Layer;

use crate::boxed::{
    BoxError, Boxed, BoxedStack, GatewayBody, GatewayResponseBody, GatewayService, box_body,
    unwrap_body,
};
#[cfg(feature = "sigv4")]
use crate::chain::Auth;
use crate::chain::Chain;
use crate::config::{ApiSettings, ConfigError};

pin_project! {
    /// The body inside the per-method chains: a [`GatewayBody`] that can
    /// also be made from bytes (a validated body handed on, a refusal), as
    /// `portcullis-openapi` requires. Wrapping and unwrapping it allocates
    /// nothing.
    pub(crate) struct ApiBody {
        #[pin]
        inner: GatewayBody,
    }
}

impl ApiBody {
    fn new(inner: GatewayBody) -> Self {
        Self { inner }
    }

    fn into_inner(self) -> GatewayBody {
        self.inner
    }
}

impl From<Bytes> for ApiBody {
    fn from(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            return Self::new(GatewayBody::default());
        }
        Self::new(
            Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type ApiRoute<E> = Route<ApiBody, ApiBody, E>;
type IntoApi = fn(Request<GatewayBody>) -> Request<ApiBody>;
type FromApi = fn(Response<ApiBody>) -> Response<GatewayBody>;
type IntoGateway = fn(Request<ApiBody>) -> Request<GatewayBody>;
type ToRefusable = fn(Response<GatewayBody>) -> Response<ResponseBody<ApiBody>>;

/// A piece of the composed stack (SigV4, or throttle + quota) as one
/// protection of a chain: the piece's layers over the chain's next step,
/// with the bodies converted at both ends (no allocation: `GatewayBody` in
/// and out of the piece is passed through, not boxed again).
#[derive(Clone, Debug)]
struct Piece(Chain);

type PieceService<E> = MapResponse<MapRequest<Boxed<BoxedStack<E>>, IntoGateway>, ToRefusable>;

impl<E: Send + 'static> Layer<ApiRoute<E>> for Piece {
    type Service = PieceService<E>;

    fn layer(&self, route: ApiRoute<E>) -> Self::Service {
        let next = MapResponse::new(
            MapRequest::new(route, (|r| r.map(ApiBody::new)) as IntoApi),
            (|r| r.map(ApiBody::into_inner)) as FromApi,
        );
        MapResponse::new(
            MapRequest::new(
                self.0.layer(next),
                (|r| r.map(ApiBody::into_inner)) as IntoGateway,
            ),
            (|r| r.map(|body| ResponseBody::inner(ApiBody::new(body)))) as ToRefusable,
        )
    }
}

/// The `[api]` part of a gateway: the definition and the layers only the
/// per-method stacks use.
#[derive(Clone)]
pub(crate) struct ApiStack {
    pub(crate) definition: Arc<ApiDefinition>,
    #[cfg(feature = "sigv4")]
    pub(crate) sigv4: Option<SigV4Layer>,
    #[cfg(feature = "jwt")]
    pub(crate) jwt: Option<JwtLayer>,
    #[cfg(feature = "authorizer")]
    pub(crate) authorizers: BTreeMap<String, AuthorizerLayer<HttpAuthorizer>>,
    pub(crate) body_limit: Option<usize>,
}

impl fmt::Debug for ApiStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("ApiStack");
        f.field("methods", &self.definition.methods().count());
        #[cfg(feature = "sigv4")]
        f.field("sigv4", &self.sigv4.is_some());
        #[cfg(feature = "jwt")]
        f.field("jwt", &self.jwt.is_some());
        #[cfg(feature = "authorizer")]
        f.field("authorizers", &self.authorizers.keys().collect::<Vec<_>>());
        f.field("body_limit", &self.body_limit).finish()
    }
}

impl ApiStack {
    /// The per-method chains' builder, with `layer`'s API key, throttle and
    /// quota.
    fn builder<E: Send + 'static>(
        &self,
        layer: &Chain,
    ) -> OpenApiLayerBuilder<ApiBody, ApiBody, E> {
        let mut builder =
            OpenApiLayer::builder::<ApiBody, ApiBody, E>(ApiDefinition::clone(&self.definition));
        if let Some(limit) = self.body_limit {
            builder = builder.body_limit(limit);
        }
        #[cfg(feature = "sigv4")]
        if let Some(sigv4) = &self.sigv4 {
            builder = builder.sigv4(Piece(Chain {
                auth: Some(Auth::Iam(sigv4.clone())),
                ..Chain::default()
            }));
        }
        #[cfg(feature = "jwt")]
        if let Some(jwt) = &self.jwt {
            builder = builder.cognito(jwt.clone());
        }
        #[cfg(feature = "authorizer")]
        for (name, authorizer) in &self.authorizers {
            builder = builder.authorizer(name.clone(), authorizer.clone());
        }
        if let Some(api_key) = &layer.api_key {
            // The definition's `x-amazon-apigateway-api-key-source`, read by
            // the API-key layer: one core type for both crates.
            let source = self.definition.api_key_source();
            builder = builder.api_key(api_key.clone().source(source));
        }
        let usage = Chain {
            throttle: layer.throttle.clone(),
            quota: layer.quota.clone(),
            #[cfg(feature = "redis")]
            usage_plan: layer.usage_plan.clone(),
            ..Chain::default()
        };
        if usage.throttle.is_some() || usage.quota.is_some() || usage_plan_set(&usage) {
            builder = builder.throttle(Piece(usage));
        }
        builder
    }

    /// Checks that the definition's every protection has its layer: a
    /// method is never served unprotected by omission.
    pub(crate) fn check(&self, layer: &Chain) -> Result<(), ConfigError> {
        self.builder::<std::convert::Infallible>(layer)
            .build()
            .map(drop)
            .map_err(|e| {
                ConfigError::new(
                    "api.openapi",
                    format!(
                        "{e} (a method of the definition needs a layer this configuration does not build: [iam] (and portcullis's `sigv4` feature) for awsSigv4, [jwt] (and the `jwt` feature) for cognito_user_pools, [api.authorizers.NAME] (and the `authorizer` feature) for a custom authorizer, API keys for api_key)"
                    ),
                )
            })
    }

    /// The stack: the request's span, gateway responses, then the WAF (if
    /// `layer` has one), then the per-method chains, then `inner`.
    pub(crate) fn layer<S, ResBody>(&self, layer: &Chain, inner: S) -> Boxed<BoxedStack<S::Error>>
    where
        S: GatewayService<ResBody>,
        ResBody: GatewayResponseBody,
    {
        let chains = match self.builder::<S::Error>(layer).build() {
            Ok(chains) => chains,
            Err(error) => {
                // The gateway checked its own layers; a stack a caller took
                // a layer out of (`without_api_key`) may lack one. Fail
                // closed, loudly, rather than serve a method unprotected.
                tracing::error!(
                    %error,
                    "the API definition names a protection this stack lacks: every request gets 500 API_CONFIGURATION_ERROR"
                );
                let refuse = tower::service_fn(|request: Request<GatewayBody>| {
                    let response = GatewayResponse::new(GatewayResponseType::ApiConfigurationError)
                        .render(&request)
                        .map(|bytes| unwrap_body(ResponseBody::rejection(bytes)));
                    std::future::ready(Ok::<_, S::Error>(response))
                });
                return Boxed::new(BoxedStack::erase(layer.request_span().layer(refuse)));
            }
        };
        let app = inner
            .map_request(|r: Request<ApiBody>| r.map(ApiBody::into_inner))
            .map_response(|r: Response<ResBody>| r.map(|body| ApiBody::new(box_body(body))));
        let routed = chains
            .layer(app)
            .map_request(|r: Request<GatewayBody>| r.map(ApiBody::new))
            .map_response(|r: Response<ApiBody>| r.map(ApiBody::into_inner));
        let routed = Boxed::new(BoxedStack::erase(routed));
        let responses = self.definition.gateway_responses().cloned();
        let with_responses = move |mut r: Request<GatewayBody>| {
            if let Some(responses) = &responses {
                r.request_context_mut()
                    .set_gateway_responses(responses.clone());
            }
            r
        };
        #[cfg(feature = "waf")]
        if let Some(waf) = &layer.waf {
            let waf = ServiceExt::<Request<GatewayBody>>::map_response(
                waf.layer(routed),
                |r: Response<ResponseBody<GatewayBody>>| r.map(unwrap_body),
            );
            let stack = Boxed::new(waf).map_request(with_responses);
            return Boxed::new(BoxedStack::erase(layer.request_span().layer(stack)));
        }
        let stack = routed.map_request(with_responses);
        Boxed::new(BoxedStack::erase(layer.request_span().layer(stack)))
    }
}

#[cfg(feature = "redis")]
fn usage_plan_set(layer: &Chain) -> bool {
    layer.usage_plan.is_some()
}

#[cfg(not(feature = "redis"))]
fn usage_plan_set(_: &Chain) -> bool {
    false
}

/// Everything `[api]`'s custom authorizers need from the rest of the
/// gateway.
#[cfg(feature = "authorizer")]
pub(crate) struct ApiInputs<'a> {
    pub(crate) api: ExecuteApiArn,
    pub(crate) clock: &'a SharedClock,
    pub(crate) resolver: &'a ClientIpResolver,
}

/// Reads the definition of `[api]`.
pub(crate) fn load_definition(
    settings: &ApiSettings,
    base: &Path,
) -> Result<ApiDefinition, ConfigError> {
    let full = base.join(&settings.openapi);
    let bytes = std::fs::read(&full).map_err(|e| {
        ConfigError::new(
            "api.openapi",
            format!("cannot read {}: {e}", full.display()),
        )
    })?;
    ApiDefinition::from_slice(&bytes)
        .map_err(|e| ConfigError::new("api.openapi", format!("{}: {e}", full.display())))
}

/// `[api.method_throttles]`, checked against the definition.
pub(crate) fn method_throttles(
    settings: &ApiSettings,
    definition: &ApiDefinition,
) -> Result<Vec<(MethodSelector, ThrottleSettings)>, ConfigError> {
    let mut selectors = Vec::new();
    for (key, limit) in &settings.method_throttles {
        let field = format!("api.method_throttles.\"{key}\"");
        let selector: MethodSelector = key.parse().map_err(|e| {
            ConfigError::new(
                field.clone(),
                format!("not a method selector (`/pets/{{petId}}/GET`): {e}"),
            )
        })?;
        definition
            .method_throttles([(selector.clone(), *limit)])
            .map_err(|e| ConfigError::new(field, e.to_string()))?;
        selectors.push((selector, *limit));
    }
    selectors.sort_by_key(|(selector, _)| std::cmp::Reverse(selector.specificity()));
    Ok(selectors)
}

/// One `AuthorizerLayer` per `[api.authorizers.NAME]`, configured as the
/// definition declares the scheme `NAME`.
#[cfg(feature = "authorizer")]
pub(crate) fn authorizers(
    settings: &ApiSettings,
    definition: &ApiDefinition,
    inputs: &ApiInputs<'_>,
) -> Result<BTreeMap<String, AuthorizerLayer<HttpAuthorizer>>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, endpoint) in &settings.authorizers {
        let field = format!("api.authorizers.{name}");
        let declared = definition.methods().find_map(|m| match m.authorization() {
            Authorization::Custom {
                scheme,
                kind,
                identity_source,
                identity_validation_expression,
                result_ttl_seconds,
            } if scheme == name => Some((
                *kind,
                identity_source.clone(),
                identity_validation_expression.clone(),
                *result_ttl_seconds,
            )),
            _ => None,
        });
        let Some((kind, sources, expression, ttl)) = declared else {
            return Err(ConfigError::new(
                field,
                "no method of the definition uses a custom authorizer of this name",
            ));
        };
        let uri: http::Uri = endpoint
            .url
            .parse()
            .map_err(|e| ConfigError::new(format!("{field}.url"), format!("not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(ConfigError::new(
                format!("{field}.url"),
                "must be an http:// URL (reach https through a local proxy)",
            ));
        }
        let mut client = HttpAuthorizer::new(uri);
        if let Some(ms) = endpoint.timeout_ms {
            client = client.timeout(Duration::from_millis(ms));
        }
        let identity_source = sources
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e: portcullis_authorizer::IdentitySourceError| {
                ConfigError::new(field.clone(), e.to_string())
            })?;
        let config = AuthorizerConfig {
            kind: match kind {
                CustomAuthorizerKind::Token => AuthorizerType::Token,
                _ => AuthorizerType::Request,
            },
            identity_source,
            identity_validation_expression: expression,
            result_ttl_in_seconds: ttl,
            max_cache_entries: portcullis_authorizer::DEFAULT_MAX_CACHE_ENTRIES,
            method_arn: Some(inputs.api.clone()),
            stage_variables: BTreeMap::new(),
        };
        let layer = AuthorizerLayer::from_config(client, &config)
            .map_err(|e| ConfigError::new(format!("{field}.{}", e.path()), e.message()))?
            .clock(inputs.clock.clone())
            .client_ip_resolver(inputs.resolver.clone());
        out.insert(name.clone(), layer);
    }
    Ok(out)
}

/// The access-log layer of `[api.access_log]`, or one that only sets
/// `x-amzn-RequestId`.
pub(crate) fn access_log(
    settings: &ApiSettings,
    resolver: &ClientIpResolver,
) -> Result<AccessLogLayer, ConfigError> {
    let Some(log) = &settings.access_log else {
        return Ok(AccessLogLayer::request_ids_only());
    };
    log.build(resolver.clone())
        .map_err(|e| e.within("api.access_log"))
}
