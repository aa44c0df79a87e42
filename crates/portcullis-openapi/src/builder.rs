//! [`OpenApiLayerBuilder`]: a definition and one layer per kind of
//! protection it names.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;

use crate::chain::{RouteLayer, Wrap};
use portcullis_core::config::ConfigError;

use crate::definition::{ApiDefinition, AuthKind};
use crate::layer::{DEFAULT_BODY_LIMIT, OpenApiLayer, Shared};

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

impl<B, RB, E> OpenApiLayerBuilder<B, RB, E>
where
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    RB: From<Bytes> + Send + 'static,
    E: Send + 'static,
{
    /// The layer for every `awsSigv4` (and `AWS_IAM`) method, such as
    /// portcullis-sigv4's `SigV4Layer`.
    pub fn sigv4<L: RouteLayer<B, RB, E>>(mut self, layer: L) -> Self {
        self.sigv4 = Some(layer.into_wrap());
        self
    }

    /// The layer for every `cognito_user_pools` method without a layer of
    /// its own from [`scheme`](Self::scheme), such as portcullis-jwt's
    /// `JwtLayer`. The method's scopes are checked after it, on the
    /// [`Caller`](portcullis_core::context::Caller) it leaves.
    pub fn cognito<L: RouteLayer<B, RB, E>>(mut self, layer: L) -> Self {
        self.cognito = Some(layer.into_wrap());
        self
    }

    /// The layer for methods that require an API key, such as
    /// portcullis-api-key's `ApiKeyLayer` (with the throttle and quota
    /// layers inside it, as a `ServiceBuilder` stack). Configure it for the
    /// definition's [`api_key_source`](ApiDefinition::api_key_source).
    pub fn api_key<L: RouteLayer<B, RB, E>>(mut self, layer: L) -> Self {
        self.api_key = Some(layer.into_wrap());
        self
    }

    /// The layer every method goes through after its authorizer and its API
    /// key, such as portcullis-throttle's `ThrottleLayer` with the quota
    /// layer inside it: the stage's per-method limits then apply to every
    /// method, with or without a key, and a key's usage plan to the methods
    /// that require one (API Gateway's order: authorizer, API key, throttle,
    /// quota, request validation). Give the throttle and quota here *or*
    /// inside [`api_key`](Self::api_key), not in both.
    pub fn throttle<L: RouteLayer<B, RB, E>>(mut self, layer: L) -> Self {
        self.throttle = Some(layer.into_wrap());
        self
    }

    /// The layer for the custom authorizer declared as the security scheme
    /// `name`, such as portcullis-authorizer's `AuthorizerLayer`.
    pub fn authorizer<L: RouteLayer<B, RB, E>>(self, name: impl Into<String>, layer: L) -> Self {
        self.scheme(name, layer)
    }

    /// The layer for the security scheme `name`, whatever its kind; it wins
    /// over [`sigv4`](Self::sigv4) and [`cognito`](Self::cognito) for that
    /// scheme (for example, one `JwtLayer` per user pool).
    pub fn scheme<L: RouteLayer<B, RB, E>>(mut self, name: impl Into<String>, layer: L) -> Self {
        self.schemes.insert(name.into(), layer.into_wrap());
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
    /// A [`ConfigError`] naming the security scheme (`securitySchemes.{name}`,
    /// or `security.api_key`) that no layer was given for: failing here is what keeps a
    /// method from being served unprotected.
    pub fn build(self) -> Result<OpenApiLayer<B, RB, E>, ConfigError> {
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
                            .ok_or_else(|| {
                                ConfigError::new(
                                    format!("securitySchemes.{scheme}"),
                                    "no layer was given for this security scheme",
                                )
                            })?,
                    )
                }
            };
            let api_key = if key.api_key {
                Some(self.api_key.clone().ok_or_else(|| {
                    ConfigError::new(
                        "security.api_key",
                        "methods require an API key, and no api_key layer was given",
                    )
                })?)
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
