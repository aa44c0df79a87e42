//! The layer: route match, per-method protection chains, validation, CORS.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use portcullis_core::context::{ApiKeyContext, Caller};
use portcullis_core::path::CanonicalPath;
use portcullis_core::resource::ApiResource;
use portcullis_core::response::GatewayResponses;
use portcullis_core::trace::{self, Decision};
use portcullis_core::{GatewayResponse, GatewayResponseType, ResponseBody};
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::definition::{
    ApiDefinition, AuthKind, Authorization, DefinitionError, MethodSettings, Parameter,
};

/// The type-erased service each protection layer wraps.
pub type Route<B, RB, E> = BoxCloneSyncService<Request<B>, Response<RB>, E>;

type Wrap<B, RB, E> = Arc<dyn Fn(Route<B, RB, E>) -> Route<B, RB, E> + Send + Sync>;

/// One chain's authorizer layer and API-key layer.
type ChainLayers<B, RB, E> = (Option<Wrap<B, RB, E>>, Option<Wrap<B, RB, E>>);

/// The default body limit: 10 MiB, API Gateway's payload limit.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Builds an [`OpenApiLayer`] from a definition and one layer per kind of
/// protection the definition names.
#[must_use]
pub struct OpenApiLayerBuilder<B, RB, E> {
    definition: Arc<ApiDefinition>,
    sigv4: Option<Wrap<B, RB, E>>,
    cognito: Option<Wrap<B, RB, E>>,
    api_key: Option<Wrap<B, RB, E>>,
    throttle: Option<Wrap<B, RB, E>>,
    schemes: BTreeMap<String, Wrap<B, RB, E>>,
    body_limit: usize,
}

impl<B, RB, E> fmt::Debug for OpenApiLayerBuilder<B, RB, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApiLayerBuilder")
            .field("sigv4", &self.sigv4.is_some())
            .field("cognito", &self.cognito.is_some())
            .field("api_key", &self.api_key.is_some())
            .field("throttle", &self.throttle.is_some())
            .field("schemes", &self.schemes.keys().collect::<Vec<_>>())
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

fn wrap<B, RB, E, L>(layer: L) -> Wrap<B, RB, E>
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
    Arc::new(move |route| {
        BoxCloneSyncService::new(layer.layer(route).map_response(|response| {
            response.map(|body| match body.into_inner() {
                Ok(body) => body,
                Err(bytes) => RB::from(bytes),
            })
        }))
    })
}

impl<B, RB, E> OpenApiLayerBuilder<B, RB, E>
where
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    RB: From<Bytes> + Send + 'static,
    E: Send + 'static,
{
    /// The layer for every `awsSigv4` (and `AWS_IAM`) method, such as
    /// portcullis-sigv4's `SigV4Layer`.
    pub fn sigv4<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route<B, RB, E>> + Send + Sync + 'static,
        L::Service: Service<Request<B>, Response = Response<ResponseBody<RB>>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<B>>>::Future: Send + 'static,
    {
        self.sigv4 = Some(wrap(layer));
        self
    }

    /// The layer for every `cognito_user_pools` method without a layer of
    /// its own from [`scheme`](Self::scheme), such as portcullis-jwt's
    /// `JwtLayer`. The method's scopes are checked after it, on the
    /// [`Caller`] it leaves.
    pub fn cognito<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route<B, RB, E>> + Send + Sync + 'static,
        L::Service: Service<Request<B>, Response = Response<ResponseBody<RB>>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<B>>>::Future: Send + 'static,
    {
        self.cognito = Some(wrap(layer));
        self
    }

    /// The layer for methods that require an API key, such as
    /// portcullis-api-key's `ApiKeyLayer` (with the throttle and quota
    /// layers inside it, as a `ServiceBuilder` stack). Configure it for the
    /// definition's [`api_key_source`](ApiDefinition::api_key_source).
    pub fn api_key<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route<B, RB, E>> + Send + Sync + 'static,
        L::Service: Service<Request<B>, Response = Response<ResponseBody<RB>>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<B>>>::Future: Send + 'static,
    {
        self.api_key = Some(wrap(layer));
        self
    }

    /// The layer every method goes through after its authorizer and its API
    /// key, such as portcullis-throttle's `ThrottleLayer` with the quota
    /// layer inside it: the stage's per-method limits then apply to every
    /// method, with or without a key, and a key's usage plan to the methods
    /// that require one (API Gateway's order: authorizer, API key, throttle,
    /// quota, request validation). Give the throttle and quota here *or*
    /// inside [`api_key`](Self::api_key), not in both.
    pub fn throttle<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route<B, RB, E>> + Send + Sync + 'static,
        L::Service: Service<Request<B>, Response = Response<ResponseBody<RB>>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<B>>>::Future: Send + 'static,
    {
        self.throttle = Some(wrap(layer));
        self
    }

    /// The layer for the custom authorizer declared as the security scheme
    /// `name`, such as portcullis-authorizer's `AuthorizerLayer`.
    pub fn authorizer<L>(self, name: impl Into<String>, layer: L) -> Self
    where
        L: Layer<Route<B, RB, E>> + Send + Sync + 'static,
        L::Service: Service<Request<B>, Response = Response<ResponseBody<RB>>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<B>>>::Future: Send + 'static,
    {
        self.scheme(name, layer)
    }

    /// The layer for the security scheme `name`, whatever its kind; it wins
    /// over [`sigv4`](Self::sigv4) and [`cognito`](Self::cognito) for that
    /// scheme (for example, one `JwtLayer` per user pool).
    pub fn scheme<L>(mut self, name: impl Into<String>, layer: L) -> Self
    where
        L: Layer<Route<B, RB, E>> + Send + Sync + 'static,
        L::Service: Service<Request<B>, Response = Response<ResponseBody<RB>>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<B>>>::Future: Send + 'static,
    {
        self.schemes.insert(name.into(), wrap(layer));
        self
    }

    /// The most body bytes read for validation (default
    /// [`DEFAULT_BODY_LIMIT`]); a larger body gets REQUEST_TOO_LARGE (413)
    /// before anything is parsed.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Checks that every protection the definition names has its layer.
    ///
    /// # Errors
    ///
    /// [`DefinitionError::Invalid`] naming the security scheme (or the API
    /// key) that no layer was given for: failing here is what keeps a
    /// method from being served unprotected.
    pub fn build(self) -> Result<OpenApiLayer<B, RB, E>, DefinitionError> {
        let mut chains = Vec::new();
        for key in &self.definition.chains {
            let auth = match &key.auth {
                None => None,
                Some((kind, scheme)) => {
                    let general = match kind {
                        AuthKind::Iam => self.sigv4.as_ref(),
                        AuthKind::Cognito => self.cognito.as_ref(),
                        AuthKind::Custom => None,
                    };
                    Some(
                        self.schemes
                            .get(scheme)
                            .or(general)
                            .cloned()
                            .ok_or_else(|| DefinitionError::Invalid {
                                path: format!("/securitySchemes/{scheme}"),
                                reason: "no layer was given for this security scheme".to_owned(),
                            })?,
                    )
                }
            };
            let api_key = if key.api_key {
                Some(
                    self.api_key
                        .clone()
                        .ok_or_else(|| DefinitionError::Invalid {
                            path: "/security/api_key".to_owned(),
                            reason: "methods require an API key, and no api_key layer was given"
                                .to_owned(),
                        })?,
                )
            } else {
                None
            };
            chains.push((auth, api_key));
        }
        Ok(OpenApiLayer {
            inner: Arc::new(Shared {
                definition: self.definition,
                chains,
                throttle: self.throttle,
                body_limit: self.body_limit,
            }),
        })
    }
}

struct Shared<B, RB, E> {
    definition: Arc<ApiDefinition>,
    chains: Vec<ChainLayers<B, RB, E>>,
    throttle: Option<Wrap<B, RB, E>>,
    body_limit: usize,
}

/// Applies an API definition to every request: see the [crate docs](crate).
#[must_use]
pub struct OpenApiLayer<B, RB, E> {
    inner: Arc<Shared<B, RB, E>>,
}

impl<B, RB, E> Clone for OpenApiLayer<B, RB, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B, RB, E> fmt::Debug for OpenApiLayer<B, RB, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApiLayer")
            .field("definition", &self.inner.definition)
            .field("body_limit", &self.inner.body_limit)
            .finish()
    }
}

impl OpenApiLayer<(), (), ()> {
    /// Starts a builder for `definition`.
    pub fn builder<B, RB, E>(definition: ApiDefinition) -> OpenApiLayerBuilder<B, RB, E> {
        OpenApiLayerBuilder {
            definition: Arc::new(definition),
            sigv4: None,
            cognito: None,
            api_key: None,
            throttle: None,
            schemes: BTreeMap::new(),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

impl<S, B, RB, E> Layer<S> for OpenApiLayer<B, RB, E>
where
    S: Service<Request<B>, Response = Response<RB>, Error = E> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    RB: From<Bytes> + Send + 'static,
    E: Send + 'static,
{
    type Service = OpenApi<B, RB, E>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner: Route<B, RB, E> = BoxCloneSyncService::new(inner);
        let mut terminal = validate(inner, self.inner.body_limit);
        if let Some(throttle) = &self.inner.throttle {
            terminal = throttle(terminal);
        }
        let chains = self
            .inner
            .chains
            .iter()
            .map(|(auth, api_key)| {
                let mut route = terminal.clone();
                if let Some(api_key) = api_key {
                    route = api_key(require(route, Require::ApiKey));
                }
                if let Some(auth) = auth {
                    route = auth(require(route, Require::Caller));
                }
                route
            })
            .collect();
        OpenApi {
            definition: Arc::clone(&self.inner.definition),
            chains: Arc::new(chains),
        }
    }
}

/// The service made by [`OpenApiLayer`].
pub struct OpenApi<B, RB, E> {
    definition: Arc<ApiDefinition>,
    chains: Arc<Vec<Route<B, RB, E>>>,
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

/// A refusal this crate made, left in the response extensions for the
/// access log (`$context.error.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalInfo {
    /// The response type.
    pub kind: GatewayResponseType,
    /// The message.
    pub message: String,
}

fn refuse<RB: From<Bytes>>(
    refusal: &GatewayResponse,
    overrides: Option<&GatewayResponses>,
    grpc: bool,
) -> Response<RB> {
    let mut response = refusal.render_with(overrides, grpc).map(RB::from);
    response.extensions_mut().insert(RefusalInfo {
        kind: refusal.kind(),
        message: refusal.message().to_owned(),
    });
    response
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `portcullis_openapi_decision_seconds`: the time a decision took.
fn record_seconds(spent: Duration) {
    metrics::histogram!("portcullis_openapi_decision_seconds").record(spent.as_secs_f64());
}

/// The span, event and counter of a refusal.
fn record_refusal(refusal: &GatewayResponse, detail: &'static str, span: &Span) {
    let decision = Decision::refused(refusal.kind()).with_detail(detail);
    decision.record(span);
    // Entered, not given as the event's parent, since a span no subscriber
    // wants would make the event a root, outside the request's span.
    let _entered = span.enter();
    tracing::info!(
        layer = "openapi",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        "request refused"
    );
    metrics::counter!("portcullis_openapi_decisions_total", "outcome" => "refused", "reason" => refusal.kind().as_str())
        .increment(1);
}

#[derive(Clone, Copy)]
enum Require {
    Caller,
    ApiKey,
}

/// After a protection layer: fail closed if it let the request through
/// without leaving what it vouches for, and check the method's scopes.
fn require<B, RB, E>(next: Route<B, RB, E>, what: Require) -> Route<B, RB, E>
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
            crate::access_log::record_context(&request);
            let settings = request.extensions().get::<Arc<MethodSettings>>().cloned();
            let overrides = request.extensions().get::<GatewayResponses>();
            let grpc = portcullis_core::response::is_grpc_request(request.headers());
            let refusal = match what {
                Require::ApiKey => (request.extensions().get::<ApiKeyContext>().is_none())
                    .then(|| GatewayResponse::new(GatewayResponseType::InvalidApiKey)),
                Require::Caller => {
                    match (request.extensions().get::<Caller>(), settings.as_deref()) {
                        (None, Some(s)) => Some(match s.authorization {
                            Authorization::Iam { .. } => GatewayResponse::new(
                                GatewayResponseType::MissingAuthenticationToken,
                            ),
                            _ => GatewayResponse::new(GatewayResponseType::Unauthorized),
                        }),
                        (
                            Some(caller),
                            Some(MethodSettings {
                                authorization: Authorization::CognitoUserPools { scopes, .. },
                                ..
                            }),
                        ) if !scopes.is_empty() && !scopes.iter().any(|s| caller.has_scope(s)) => {
                            Some(GatewayResponse::new(GatewayResponseType::Unauthorized))
                        }
                        _ => None,
                    }
                }
            };
            if let Some(refusal) = refusal {
                record_seconds(start.elapsed());
                let detail = match what {
                    Require::Caller
                        if refusal.kind() == GatewayResponseType::Unauthorized
                            && request.extensions().get::<Caller>().is_some() =>
                    {
                        "scope_missing"
                    }
                    Require::Caller => "no_caller",
                    Require::ApiKey => "no_api_key",
                };
                record_refusal(&refusal, detail, &span);
                return Ok(refuse(&refusal, overrides, grpc));
            }
            record_allowed(&request, &span);
            drop(span);
            next.oneshot(request).await
        }
    }))
}

/// The innermost step: request validation, then the mock integration or the
/// application.
fn validate<B, RB, E>(inner: Route<B, RB, E>, limit: usize) -> Route<B, RB, E>
where
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    RB: From<Bytes> + Send + 'static,
    E: Send + 'static,
{
    BoxCloneSyncService::new(service_fn(move |request: Request<B>| {
        let inner = inner.clone();
        let span = portcullis_core::layer_span!("openapi", step = "validate");
        async move {
            // The checks' time, without the wait for the body's bytes.
            let mut spent = Duration::ZERO;
            let mut since = Instant::now();
            crate::access_log::record_context(&request);
            let Some(settings) = request.extensions().get::<Arc<MethodSettings>>().cloned() else {
                drop(span);
                return inner.oneshot(request).await;
            };
            let overrides = request.extensions().get::<GatewayResponses>().cloned();
            let grpc = portcullis_core::response::is_grpc_request(request.headers());
            let refuse_with = |refusal: GatewayResponse,
                               detail: &'static str,
                               spent: Duration|
             -> Result<Response<RB>, E> {
                record_seconds(spent);
                record_refusal(&refusal, detail, &span);
                Ok(refuse(&refusal, overrides.as_ref(), grpc))
            };
            if settings.validate_parameters {
                let missing = missing_parameters(&request, &settings.required);
                if !missing.is_empty() {
                    return refuse_with(
                        GatewayResponse::new(GatewayResponseType::BadRequestParameters)
                            .with_message(format!(
                                "Missing required request parameters: [{}]",
                                missing.join(", ")
                            )),
                        "missing_parameters",
                        since.elapsed(),
                    );
                }
            }
            let request = if settings.validate_body && !settings.models.is_empty() {
                let too_large = request
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|n| n > limit as u64);
                if too_large {
                    return refuse_with(
                        GatewayResponse::new(GatewayResponseType::RequestTooLarge),
                        "body_too_large",
                        since.elapsed(),
                    );
                }
                spent += since.elapsed();
                let (parts, body) = request.into_parts();
                let bytes = match http_body_util::Limited::new(body, limit)
                    .collect()
                    .instrument(span.clone())
                    .await
                {
                    Ok(collected) => collected.to_bytes(),
                    Err(error) => {
                        let (kind, detail) = if error.is::<http_body_util::LengthLimitError>() {
                            (GatewayResponseType::RequestTooLarge, "body_too_large")
                        } else {
                            (GatewayResponseType::BadRequestBody, "unreadable_body")
                        };
                        return refuse_with(GatewayResponse::new(kind), detail, spent);
                    }
                };
                since = Instant::now();
                if !body_is_valid(&settings, parts.headers.get(header::CONTENT_TYPE), &bytes) {
                    return refuse_with(
                        GatewayResponse::new(GatewayResponseType::BadRequestBody),
                        "body_invalid",
                        spent + since.elapsed(),
                    );
                }
                Request::from_parts(parts, B::from(bytes))
            } else {
                request
            };
            record_seconds(spent + since.elapsed());
            let decision = Decision::allowed();
            decision.record(&span);
            span.in_scope(|| {
                tracing::debug!(
                    layer = "openapi",
                    outcome = decision.outcome().as_str(),
                    reason = decision.reason(),
                    "request validated"
                );
            });
            // The span covers the decision, not the inner service.
            drop(span);
            metrics::counter!("portcullis_openapi_decisions_total", "outcome" => "allowed", "reason" => "OK")
                .increment(1);
            if let Some(mock) = &settings.mock {
                let mut response = Response::new(RB::from(Bytes::new()));
                *response.status_mut() = mock.status;
                for (name, value) in &mock.headers {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
                return Ok(response);
            }
            inner.oneshot(request).await
        }
    }))
}

fn missing_parameters<B>(request: &Request<B>, required: &[Parameter]) -> Vec<String> {
    let query = request.uri().query().unwrap_or("");
    required
        .iter()
        .filter(|p| match p {
            Parameter::Header(name) => request
                .headers()
                .get(name.as_str())
                .is_none_or(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace)),
            Parameter::Query(name) => !query.split('&').any(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                key == name && !value.is_empty()
            }),
        })
        .map(|p| p.name().to_owned())
        .collect()
}

/// Validates the body against the model for its media type; a media type
/// without a model of its own is validated against the `application/json`
/// model (or the only one), so that a changed `Content-Type` cannot bypass
/// validation.
fn body_is_valid(
    settings: &MethodSettings,
    content_type: Option<&HeaderValue>,
    bytes: &Bytes,
) -> bool {
    let media = content_type.and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let model = media
        .as_deref()
        .and_then(|m| settings.models.iter().find(|(media, _)| media == m))
        .or_else(|| {
            settings
                .models
                .iter()
                .find(|(media, _)| media == "application/json")
        })
        .or_else(|| settings.models.first());
    let Some((_, model)) = model else { return true };
    // An empty body is `{}` to API Gateway's validator, unless the body is
    // required.
    let instance: serde_json::Value = if bytes.is_empty() {
        if settings.body_required {
            return false;
        }
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(bytes) {
            Ok(value) => value,
            Err(_) => return false,
        }
    };
    model.validator.is_valid(&instance)
}

fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

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
        if let Some(responses) = definition.gateway_responses()
            && request.extensions().get::<GatewayResponses>().is_none()
        {
            request.extensions_mut().insert(responses.clone());
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
    let overrides = request.extensions().get::<GatewayResponses>().cloned();
    let grpc = portcullis_core::response::is_grpc_request(request.headers());
    let span = portcullis_core::layer_span!("openapi", step = "route");
    let path = match CanonicalPath::of_uri(request.uri()) {
        Ok(path) => path.into_owned(),
        Err(refusal) => {
            let refusal = refusal.gateway_response();
            route_refused(&refusal, "non_canonical_path", &span);
            return Ok(refuse(&refusal, overrides.as_ref(), grpc));
        }
    };
    let preflight = is_preflight(&request);
    if preflight && let Some(cors) = definition.cors() {
        // An HTTP API answers preflights itself, before any authorizer.
        return Ok(preflight_response(cors, &request));
    }
    let Some(settings) = definition.route(request.method(), &path).cloned() else {
        let refusal = GatewayResponse::new(GatewayResponseType::MissingAuthenticationToken);
        route_refused(&refusal, "no_route", &span);
        return Ok(refuse(&refusal, overrides.as_ref(), grpc));
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
            let refusal = GatewayResponse::new(GatewayResponseType::ApiConfigurationError);
            route_refused(&refusal, "no_chain", &span);
            refuse(&refusal, overrides.as_ref(), grpc)
        }
    };
    response.extensions_mut().insert(resource);
    Ok(response)
}

/// The span and event of a request no route takes (a client's mistake: at
/// DEBUG).
fn route_refused(refusal: &GatewayResponse, detail: &'static str, span: &Span) {
    let decision = Decision::refused(refusal.kind()).with_detail(detail);
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

/// Records on a `require` step's span that the layer before it left what
/// it vouches for.
fn record_allowed<B>(request: &Request<B>, span: &Span) {
    Decision::allowed().record(span);
    if let Some(caller) = request.extensions().get::<Caller>() {
        trace::record_principal(span, caller.principal());
    }
    if let Some(key) = request.extensions().get::<ApiKeyContext>() {
        trace::record_key_id(span, key.key_id());
    }
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

fn preflight_response<B, RB: From<Bytes>>(
    cors: &crate::definition::CorsConfig,
    request: &Request<B>,
) -> Response<RB> {
    let mut response = Response::new(RB::from(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("");
    let Some(allowed) = cors.allow_origin(origin) else {
        // Not an allowed origin: no CORS headers, and the browser refuses.
        return response;
    };
    let headers = response.headers_mut();
    let mut set = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if !cors.allow_methods.is_empty() {
        set(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            cors.allow_methods.join(","),
        );
    }
    if !cors.allow_headers.is_empty() {
        set(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            cors.allow_headers.join(","),
        );
    }
    if let Some(age) = cors.max_age {
        set(header::ACCESS_CONTROL_MAX_AGE, age.to_string());
    }
    if cors.allow_credentials {
        set(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".to_owned());
    }
    response
}
