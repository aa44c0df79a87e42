//! `JwtLayer` and its builder.

use std::sync::Arc;

use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::config::ConfigError;
use portcullis_core::context::Caller;
use tower_layer::Layer;

use crate::cache::{TokenCache, TokenCacheConfig};
use crate::claims::{JwtClaims, Verified};
use crate::config::{DEFAULT_MAX_TOKEN_BYTES, JwtConfig};
use crate::engine::{Shared, Step};
use crate::issuer::{Issuer, TokenUse};
use crate::policy::{Match, RoutePolicy};
use crate::reject::JwtRefusal;
use crate::service::Jwt;
use crate::source::TokenSource;

/// Builds a [`JwtLayer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct JwtLayerBuilder {
    config: JwtConfig,
    clock: Option<SharedClock>,
}

impl JwtLayerBuilder {
    /// Trusts one more issuer.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.config.issuers.push(issuer);
        self
    }

    /// Where the token is found.
    pub fn token_source(mut self, source: TokenSource) -> Self {
        self.config.token_source = source;
        self
    }

    /// The token size limit (default 8 KB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.config.max_token_bytes = max;
        self
    }

    /// The verified-token cache (on by default).
    pub fn cache(mut self, cache: TokenCacheConfig) -> Self {
        self.config.cache = cache;
        self
    }

    /// The clock claims are checked against (the system clock by default).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the layer. Static keys are parsed now; remote keys are fetched
    /// now if a tokio runtime is running, else on the first request.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field at fault: no issuer, a duplicate
    /// issuer, an empty algorithm list, a bad URL, an unreadable or empty JWKS.
    pub fn build(self) -> Result<JwtLayer, ConfigError> {
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let shared = Shared::new(&self.config, clock)?;
        for issuer in &shared.issuers {
            issuer.keys.prefetch();
        }
        Ok(JwtLayer {
            shared: Arc::new(shared),
            policy: Arc::new(RoutePolicy::default()),
        })
    }
}

/// Verifies the caller's JWT, then passes the request on with the
/// [`Caller`] in its [`RequestContext`](portcullis_core::context::RequestContext)
/// (the [`JwtClaims`] read from it), or refuses it with a gateway response.
///
/// Every clone shares the keys and the token cache; the per-route methods
/// ([`token_use`](Self::token_use), [`require_groups`](Self::require_groups),
/// [`require_scopes`](Self::require_scopes), [`require`](Self::require)) return
/// a layer that shares them too, with the route's own requirements. See the
/// crate docs for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct JwtLayer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: Arc<RoutePolicy>,
}

impl JwtLayer {
    /// A builder.
    pub fn builder() -> JwtLayerBuilder {
        JwtLayerBuilder {
            config: JwtConfig {
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
                ..JwtConfig::default()
            },
            clock: None,
        }
    }

    /// A layer trusting one issuer, with the default settings.
    ///
    /// # Errors
    ///
    /// See [`JwtLayerBuilder::build`].
    pub fn new(issuer: Issuer) -> Result<Self, ConfigError> {
        Self::builder().issuer(issuer).build()
    }

    /// A layer from its configuration as data.
    ///
    /// # Errors
    ///
    /// See [`JwtLayerBuilder::build`].
    pub fn from_config(config: JwtConfig) -> Result<Self, ConfigError> {
        JwtLayerBuilder {
            config,
            clock: None,
        }
        .build()
    }

    fn with_policy(mut self, f: impl FnOnce(RoutePolicy) -> RoutePolicy) -> Self {
        self.policy = Arc::new(f((*self.policy).clone()));
        self
    }

    /// This route accepts only this kind of Cognito token (`token_use`). API
    /// Gateway takes ID tokens on routes without scopes and access tokens on
    /// routes with scopes.
    pub fn token_use(self, token_use: TokenUse) -> Self {
        self.with_policy(|p| p.with_token_use(token_use))
    }

    /// This route needs any or all of these groups (403 otherwise).
    pub fn require_groups<I, S>(self, how: Match, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let groups = groups.into_iter().map(Into::into).collect();
        self.with_policy(|p| p.with_groups(how, groups))
    }

    /// This route needs any or all of these scopes (403 otherwise).
    pub fn require_scopes<I, S>(self, how: Match, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.with_policy(|p| p.with_scopes(how, scopes))
    }

    /// This route needs `predicate` to hold for the caller (403 otherwise).
    pub fn require<F>(self, predicate: F) -> Self
    where
        F: Fn(&Caller, &JwtClaims) -> bool + Send + Sync + 'static,
    {
        self.with_policy(|p| p.with_predicate(Arc::new(predicate)))
    }

    /// Verifies one token outside any request (for tools and tests), with the
    /// layer's keys, cache and route requirements.
    ///
    /// # Errors
    ///
    /// Why the token is refused.
    pub async fn verify(&self, token: &str) -> Result<Verified, JwtRefusal> {
        if token.len() > self.shared.max_token_bytes {
            return Err(JwtRefusal::TokenTooLarge);
        }
        let verified = match self.shared.verify_token(token.as_bytes(), true) {
            Step::Done(result) => result?,
            Step::Wait(fetch) => {
                fetch.await;
                match self.shared.verify_token(token.as_bytes(), false) {
                    Step::Done(result) => result?,
                    Step::Wait(_) => return Err(JwtRefusal::KeysUnavailable),
                }
            }
        };
        self.policy.check(&verified.caller, &verified.claims)?;
        Ok((*verified).clone())
    }

    /// How many verified tokens are cached now.
    #[must_use]
    pub fn cached_tokens(&self) -> usize {
        self.shared.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// How many key fetches were started, over every issuer.
    #[must_use]
    pub fn key_fetches(&self) -> u64 {
        self.shared
            .issuers
            .iter()
            .map(|i| i.keys.fetch_count())
            .sum()
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = Jwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Jwt::new(inner, self.clone())
    }
}

impl<S> Jwt<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: JwtLayer) -> Self {
        Self {
            inner,
            shared: layer.shared,
            policy: layer.policy,
        }
    }

    /// The layer that builds this service, as `Jwt::layer(..)`.
    pub fn layer(layer: JwtLayer) -> JwtLayer {
        layer
    }
}
