//! The tower layer: selects the request's mode from its credentials, runs
//! that mode's layer, and answers AppSync's 401 when the credentials fail.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{ApiKeyContext, Caller};
use portcullis_core::refusal::Refusal;
use portcullis_core::trace::{self, Decision};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::mode::{AuthMode, AuthModes, select_mode};
use crate::response::AppSyncRefusal;
use crate::rules::RequestAuth;

/// The error type of boxed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the layer hands on and answers with.
pub type BoxBody = UnsyncBoxBody<Bytes, BodyError>;

/// The error of a [`BoxBody`]: the wrapped body's error, boxed.
#[derive(Debug)]
pub struct BodyError(pub BoxError);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

type ModeService = BoxCloneSyncService<Request<BoxBody>, Response<BoxBody>, Infallible>;
type ModeFactory = Arc<dyn Fn(ModeTerminal) -> ModeService + Send + Sync>;

/// Marks a response that came from the service behind a mode's layer, not
/// from the layer's refusal.
#[derive(Clone, Copy, Debug)]
struct Reached;

/// When [`AppSyncAuth`] received the request, and its span: the mode's
/// verdict is timed from it and recorded on it, where the verdict is known
/// ([`ModeTerminal`] for an allowed request).
#[derive(Clone, Debug)]
struct DecisionStart(Instant, Span);

/// `portcullis_graphql_decision_seconds`: from the request's arrival to the
/// verdict (the mode's layer included, the resolvers not).
fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_graphql_decision_seconds")
        .record(start.elapsed().as_secs_f64());
}

/// A refusal's span, counter and duration.
fn record_refusal(start: Instant, span: &Span, refusal: &AppSyncRefusal) {
    refusal.decision().record(span);
    record_seconds(start);
    metrics::counter!("portcullis_graphql_decisions_total", "outcome" => "refused", "reason" => "UNAUTHORIZED").increment(1);
}

#[derive(Clone)]
struct Settings {
    default_mode: AuthMode,
    modes: Vec<(AuthMode, ModeFactory)>,
    key_expiry: HashMap<String, OffsetDateTime>,
    clock: SharedClock,
}

/// AppSync's authorization modes as a tower layer, for the service that
/// answers `POST /graphql`.
///
/// Each accepted mode has a layer of its own that establishes the caller
/// (portcullis-api-key's `ApiKeyLayer`, portcullis-sigv4's `SigV4Layer` with
/// service `appsync`, portcullis-jwt's `JwtLayer` for user pools and OIDC,
/// portcullis-authorizer's `AuthorizerLayer` for Lambda). For each request
/// the layer:
///
/// 1. selects the mode from the credentials the request carries
///    ([`select_mode`](crate::select_mode));
/// 2. runs the request through that mode's layer;
/// 3. if the mode's layer refuses it (any 401 or 403 of its own), answers
///    AppSync's 401 `UnauthorizedException` instead; other refusals (429
///    throttles, 413) pass unchanged;
/// 4. otherwise hands the request on with a [`RequestAuth`] (the mode, the
///    `Caller`, the `ApiKeyContext`) in its extensions, for
///    [`execute`](crate::execute) and the [`AppSyncDirectives`](crate::AppSyncDirectives)
///    extension.
///
/// API keys expire as AppSync's do: [`api_key_expires`](Self::api_key_expires)
/// gives a key (by id) its expiry, after which the key gets 401.
///
/// The wrapped service's error must be `Infallible` (axum's routers and
/// handlers are); bodies are boxed ([`BoxBody`]). Every clone shares the
/// settings and the modes' layers.
#[derive(Clone)]
#[must_use]
pub struct AppSyncAuthLayer {
    settings: Arc<Settings>,
}

impl fmt::Debug for AppSyncAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSyncAuthLayer")
            .field("default_mode", &self.settings.default_mode)
            .field("modes", &self.accepted())
            .field("expiring_keys", &self.settings.key_expiry.len())
            .finish_non_exhaustive()
    }
}

impl AppSyncAuthLayer {
    /// An API whose default mode is `default_mode`, verified by `layer`.
    pub fn new<L, RB>(default_mode: AuthMode, layer: L) -> Self
    where
        L: Layer<ModeTerminal> + Send + Sync + 'static,
        L::Service: Service<Request<BoxBody>, Response = Response<RB>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<BoxBody>>>::Future: Send + 'static,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        Self {
            settings: Arc::new(Settings {
                default_mode,
                modes: Vec::new(),
                key_expiry: HashMap::new(),
                clock: Arc::new(SystemClock),
            }),
        }
        .additional_mode(default_mode, layer)
    }

    /// Accepts `mode` too (AppSync's additional authorization providers),
    /// verified by `layer`. Naming a mode again replaces its layer.
    pub fn additional_mode<L, RB>(mut self, mode: AuthMode, layer: L) -> Self
    where
        L: Layer<ModeTerminal> + Send + Sync + 'static,
        L::Service: Service<Request<BoxBody>, Response = Response<RB>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<BoxBody>>>::Future: Send + 'static,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        let factory: ModeFactory = Arc::new(move |terminal| {
            BoxCloneSyncService::new(layer.layer(terminal).map_response(box_response))
        });
        let settings = Arc::make_mut(&mut self.settings);
        settings.modes.retain(|(m, _)| *m != mode);
        settings.modes.push((mode, factory));
        self
    }

    /// The API key with id `key_id` expires at `expires` (AppSync keys
    /// carry an expiry, rounded down to the hour, 1 to 365 days ahead):
    /// from then on it gets 401. Keys not named here do not expire.
    pub fn api_key_expires(mut self, key_id: impl Into<String>, expires: OffsetDateTime) -> Self {
        Arc::make_mut(&mut self.settings)
            .key_expiry
            .insert(key_id.into(), expires);
        self
    }

    /// Takes time from `clock` for key expiry (a manual clock in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        Arc::make_mut(&mut self.settings).clock = Arc::new(clock);
        self
    }

    /// The default mode.
    #[must_use]
    pub fn default_mode(&self) -> AuthMode {
        self.settings.default_mode
    }

    /// The modes accepted.
    #[must_use]
    pub fn accepted(&self) -> AuthModes {
        self.settings.modes.iter().map(|(m, _)| *m).collect()
    }
}

fn box_response<B>(response: Response<B>) -> Response<BoxBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|body| body.map_err(|e| BodyError(e.into())).boxed_unsync())
}

fn box_request<B>(request: Request<B>) -> Request<BoxBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    request.map(|body| body.map_err(|e| BodyError(e.into())).boxed_unsync())
}

/// AppSync's 401 for `refusal`, with the refusal in its extensions.
///
/// AppSync has no gateway responses to override its 401 and no gRPC, so the
/// refusal is rendered the same for every request (the request itself is
/// gone by the time the mode's layer has answered).
fn refuse(refusal: AppSyncRefusal) -> Response<BoxBody> {
    refusal
        .into_response::<(), BoxBody>(&Request::new(()))
        .map(|body| match body.into_inner() {
            Ok(body) => body,
            Err(bytes) => http_body_util::Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
        })
}

impl<S, B> Layer<S> for AppSyncAuthLayer
where
    S: Service<Request<BoxBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Service = AppSyncAuth;

    fn layer(&self, inner: S) -> Self::Service {
        let inner: ModeService = BoxCloneSyncService::new(inner.map_response(box_response));
        let modes = self
            .settings
            .modes
            .iter()
            .map(|(mode, factory)| {
                let terminal = ModeTerminal {
                    mode: *mode,
                    inner: inner.clone(),
                    settings: Arc::clone(&self.settings),
                };
                (*mode, factory(terminal))
            })
            .collect();
        AppSyncAuth {
            accepted: self.accepted(),
            modes: Arc::new(modes),
        }
    }
}

/// The service [`AppSyncAuthLayer`] builds.
#[derive(Clone)]
pub struct AppSyncAuth {
    accepted: AuthModes,
    modes: Arc<Vec<(AuthMode, ModeService)>>,
}

impl fmt::Debug for AppSyncAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSyncAuth")
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for AppSyncAuth
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each mode's service is cloned and driven to readiness in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let start = Instant::now();
        // The mode's own layer opens its span beside this one: this one is
        // not entered while the mode's layer runs.
        let span = portcullis_core::layer_span!("graphql", mode = tracing::field::Empty);
        let mode = match select_mode(request.headers(), self.accepted) {
            Ok(mode) => mode,
            Err(why) => {
                let _entered = span.enter();
                let refusal = AppSyncRefusal::NoMode(why);
                let decision = refusal.decision();
                tracing::info!(
                    layer = "graphql",
                    outcome = decision.outcome().as_str(),
                    reason = decision.reason(),
                    detail = ?why,
                    "no authorization mode"
                );
                record_refusal(start, &span, &refusal);
                return Box::pin(async { Ok(refuse(refusal)) });
            }
        };
        if !span.is_disabled() {
            span.record("mode", mode.as_str());
        }
        let Some(service) = self
            .modes
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, s)| s.clone())
        else {
            let refusal = AppSyncRefusal::ModeNotConfigured;
            record_refusal(start, &span, &refusal);
            return Box::pin(async { Ok(refuse(refusal)) });
        };
        let mut request = box_request(request);
        request
            .extensions_mut()
            .insert(DecisionStart(start, span.clone()));
        let answer = service.oneshot(request);
        Box::pin(async move {
            let response = answer.await?;
            let was_refused = response.extensions().get::<Reached>().is_none()
                && matches!(
                    response.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                );
            if was_refused {
                let _entered = span.enter();
                let refusal = response
                    .extensions()
                    .get::<AppSyncRefusal>()
                    .cloned()
                    .unwrap_or(AppSyncRefusal::ModeRefused);
                if let AppSyncRefusal::ApiKeyExpired { key_id } = &refusal {
                    trace::record_key_id(&span, key_id);
                }
                let decision = refusal.decision();
                tracing::info!(
                    layer = "graphql",
                    outcome = decision.outcome().as_str(),
                    reason = decision.reason(),
                    detail = decision.detail(),
                    mode = mode.as_str(),
                    status = response.status().as_u16(),
                    "the mode's layer refused the credentials"
                );
                record_refusal(start, &span, &refusal);
                return Ok(refuse(refusal));
            }
            if response.extensions().get::<Reached>().is_none() {
                // The mode's layer answered itself (not with 401 or 403): its
                // verdict came with its answer.
                record_seconds(start);
            }
            metrics::counter!("portcullis_graphql_decisions_total", "outcome" => "allowed", "reason" => "OK").increment(1);
            Ok(response)
        })
    }
}

/// What a mode's layer wraps: it records the mode and the caller the layer
/// established as a [`RequestAuth`], checks API-key expiry, and calls the
/// service behind [`AppSyncAuthLayer`].
#[derive(Clone)]
pub struct ModeTerminal {
    mode: AuthMode,
    inner: ModeService,
    settings: Arc<Settings>,
}

impl fmt::Debug for ModeTerminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModeTerminal")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for ModeTerminal
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut request = box_request(request);
        let caller = request.caller().cloned();
        let key = request.api_key().cloned();
        let mut auth = RequestAuth::new(self.mode);
        // Why the request is refused here, if it is.
        let mut refusal = AppSyncRefusal::NoCaller;
        let established = match self.mode {
            AuthMode::ApiKey => match key {
                Some(key) => {
                    let expired = self
                        .settings
                        .key_expiry
                        .get(key.key_id())
                        .is_some_and(|expires| self.settings.clock.now() >= *expires);
                    if expired {
                        refusal = AppSyncRefusal::ApiKeyExpired {
                            key_id: key.key_id().to_owned(),
                        };
                        let decision = refusal.decision();
                        tracing::info!(
                            layer = "graphql",
                            outcome = decision.outcome().as_str(),
                            reason = decision.reason(),
                            detail = decision.detail(),
                            key_id = key.key_id(),
                            "API key expired"
                        );
                        false
                    } else {
                        auth = auth.with_api_key(key);
                        true
                    }
                }
                None => false,
            },
            _ => match caller {
                Some(caller) => {
                    auth = auth.with_caller(caller);
                    true
                }
                None => false,
            },
        };
        // Taken out: the span must not live on with the request in the
        // inner service.
        let (start, decision_span) = match request.extensions_mut().remove::<DecisionStart>() {
            Some(DecisionStart(start, span)) => (Some(start), span),
            None => (None, Span::none()),
        };
        if !established {
            // Fail closed: the mode's layer let the request through without
            // saying who made it (or the key has expired). The span is
            // recorded by the layer, which sees this answer and its reason.
            return Box::pin(async move { Ok(refuse(refusal)) });
        }
        if let Some(start) = start {
            record_seconds(start);
        }
        let decision = Decision::allowed();
        decision.record(&decision_span);
        if let Some(key) = auth.api_key() {
            trace::record_key_id(&decision_span, key.key_id());
        }
        if let Some(caller) = auth.caller() {
            trace::record_principal(&decision_span, caller.principal());
        }
        let _entered = decision_span.enter();
        tracing::debug!(
            layer = "graphql",
            outcome = decision.outcome().as_str(),
            reason = decision.reason(),
            mode = self.mode.as_str(),
            key_id = auth.api_key().map(ApiKeyContext::key_id),
            principal = auth.caller().map(Caller::principal),
            "authorization mode established the caller"
        );
        drop(_entered);
        drop(decision_span);
        // Reads the inner service's readiness from `poll_ready` above.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        request.extensions_mut().insert(auth);
        Box::pin(async move {
            let mut response = ready.call(request).await?;
            response.extensions_mut().insert(Reached);
            Ok(response)
        })
    }
}

/// Authorizes credentials that arrive as headers outside an HTTP request to
/// the GraphQL endpoint, with the same modes and layers as the
/// [`AppSyncAuthLayer`] it comes from
/// ([`AppSyncAuthLayer::header_authorizer`]): the real-time endpoint's
/// `header` connection parameter and the `authorization` of each `start`
/// message.
///
/// The headers (and the body, which a SigV4 signature covers) become a
/// `POST` request to the given path, which goes through the mode selection
/// and the chosen mode's layer exactly as an HTTP request does.
#[derive(Clone)]
pub struct HeaderAuthorizer {
    service: AppSyncAuth,
}

impl fmt::Debug for HeaderAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderAuthorizer")
            .field("accepted", &self.service.accepted)
            .finish_non_exhaustive()
    }
}

impl AppSyncAuthLayer {
    /// A [`HeaderAuthorizer`] with this layer's modes, layers and API-key
    /// expiry.
    #[must_use]
    pub fn header_authorizer(&self) -> HeaderAuthorizer {
        let echo = tower::service_fn(|request: Request<BoxBody>| async move {
            let mut response = Response::new(http_body_util::Empty::<Bytes>::new());
            if let Some(auth) = request.extensions().get::<RequestAuth>().cloned() {
                response.extensions_mut().insert(auth);
            }
            Ok::<_, Infallible>(response)
        });
        HeaderAuthorizer {
            service: self.layer(echo),
        }
    }
}

impl HeaderAuthorizer {
    /// Who `headers` authorize for a `POST` of `body` to `path` (a SigV4
    /// signature must cover exactly that request), or `None` when the
    /// credentials are missing or refused.
    pub async fn authorize(
        &self,
        headers: http::HeaderMap,
        path: &str,
        body: Bytes,
    ) -> Option<RequestAuth> {
        let mut request = Request::new(http_body_util::Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::try_from(path).ok()?;
        *request.headers_mut() = headers;
        let response = self.service.clone().oneshot(request).await.ok()?;
        response.extensions().get::<RequestAuth>().cloned()
    }
}
