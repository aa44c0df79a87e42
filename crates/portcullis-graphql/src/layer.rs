//! The tower layer: selects the request's mode from its credentials, runs
//! that mode's layer, and answers AppSync's 401 when the credentials fail.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use portcullis_core::clock::{Clock, SystemClock};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BoxBody, BoxError, box_response};
use crate::mode::{AuthMode, AuthModes};
use crate::rules::RequestAuth;
use crate::service::{AppSyncAuth, ModeFactory, ModeService, ModeTerminal, Settings};

/// A mode's layer, as [`AppSyncAuthLayer::new`] and
/// [`AppSyncAuthLayer::additional_mode`] take it: a
/// `Layer<`[`ModeTerminal`]`>` (`Send + Sync + 'static`) whose service is
/// `Clone + Send + Sync + 'static` with a `Send` future, never fails
/// (`Error = Infallible`), and answers with a body of [`Bytes`] whose error
/// converts into [`BoxError`].
///
/// Implemented for every such layer (portcullis-api-key's `ApiKeyLayer`,
/// portcullis-sigv4's `SigV4Layer`, portcullis-jwt's `JwtLayer`,
/// portcullis-authorizer's `AuthorizerLayer`, a `ServiceBuilder` stack of
/// them); it cannot be implemented otherwise.
pub trait ModeLayer: sealed::IntoModeFactory {}

impl<L: sealed::IntoModeFactory> ModeLayer for L {}

mod sealed {
    use super::{
        BoxBody, BoxCloneSyncService, BoxError, Bytes, Infallible, Layer, ModeFactory,
        ModeTerminal, Request, Response, Service, ServiceExt, box_response,
    };
    use http_body::Body;
    use std::sync::Arc;

    /// Turns a mode's layer into the factory that wraps each
    /// [`ModeTerminal`] in it.
    pub trait IntoModeFactory {
        fn into_factory(self) -> ModeFactory;
    }

    impl<L, RB> IntoModeFactory for L
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
        fn into_factory(self) -> ModeFactory {
            Arc::new(move |terminal| {
                BoxCloneSyncService::new(self.layer(terminal).map_response(box_response))
            })
        }
    }
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
    pub fn new<L: ModeLayer>(default_mode: AuthMode, layer: L) -> Self {
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
    pub fn additional_mode<L: ModeLayer>(mut self, mode: AuthMode, layer: L) -> Self {
        let factory = layer.into_factory();
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
