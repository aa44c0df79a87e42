//! [`OpenApiLayer`]: the definition and its protection chains, shared by
//! every service the layer makes.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;
use tower_service::Service;

use crate::chain::{ChainLayers, Require, Route, Wrap, require};
use crate::definition::ApiDefinition;
use crate::service::OpenApi;
use crate::validate::validate;

/// The default body limit: 10 MiB, API Gateway's payload limit.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

pub(crate) struct Shared<B, RB, E> {
    pub(crate) definition: Arc<ApiDefinition>,
    pub(crate) chains: Vec<ChainLayers<B, RB, E>>,
    pub(crate) throttle: Option<Wrap<B, RB, E>>,
    pub(crate) body_limit: usize,
}

/// Applies an API definition to every request: see the [crate docs](crate).
#[must_use]
pub struct OpenApiLayer<B, RB, E> {
    pub(crate) inner: Arc<Shared<B, RB, E>>,
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
