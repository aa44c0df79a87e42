//! `AuthorizerLayer`: API Gateway's custom (Lambda) authorizers as a Tower
//! layer.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use http::HeaderName;
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::config::ConfigError;
use portcullis_iam::ExecuteApiArn;
use regex::Regex;
use tower_layer::Layer;

use crate::authorizer::Authorizer;
use crate::cache::Cache;
use crate::config::{
    AuthorizerConfig, AuthorizerType, Config, DEFAULT_MAX_CACHE_ENTRIES,
    DEFAULT_MAX_IDENTITY_BYTES, DEFAULT_TTL_SECONDS, Identity, MAX_TTL_SECONDS, next_config_id,
};
use crate::identity::IdentitySource;
use crate::service::CustomAuthorizer;

/// API Gateway's custom (Lambda) authorizers as a Tower layer.
///
/// The layer reads the request's identity sources, asks the [`Authorizer`]
/// (or its cache) for a principal and a policy, evaluates the policy with
/// `portcullis-iam` against the request's method ARN, and either lets the
/// request on, with the [`Caller`](portcullis_core::context::Caller) (and any
/// [`UsageIdentifierKey`](portcullis_core::context::UsageIdentifierKey)) in its
/// extensions, or answers as API Gateway does:
///
/// | case | answer |
/// |---|---|
/// | a missing (or empty) identity source, or a token failing the validation regex | 401 UNAUTHORIZED, authorizer not called |
/// | the authorizer answers `Unauthorized` | 401 UNAUTHORIZED |
/// | the authorizer fails, times out, or answers malformed JSON | 500 AUTHORIZER_FAILURE |
/// | the policy denies, or allows nothing that matches | 403 ACCESS_DENIED |
///
/// Results are cached by the identity-source values (as SHA-256 digests):
/// 300 s by default, at most 3,600 s, 0 for no cache. Concurrent misses on
/// the same identity call the authorizer once.
///
/// **A cached policy is reused for every method and path the same identity
/// calls.** As API Gateway's documentation warns, a policy that names only
/// the method ARN of the first request will deny the next, different one
/// until the entry expires: return wildcard resources, such as
/// `arn:aws:execute-api:*:*:abc123/prod/*`, or turn caching off.
#[must_use]
pub struct AuthorizerLayer<A> {
    authorizer: Arc<A>,
    config: Arc<Config>,
    cache: Option<Arc<Cache>>,
    ttl_seconds: u32,
    max_entries: usize,
}

// Manual impls: the authorizer (often a closure) need be neither `Clone` nor
// `Debug`, since it lives behind an `Arc`.
impl<A> Clone for AuthorizerLayer<A> {
    fn clone(&self) -> Self {
        Self {
            authorizer: self.authorizer.clone(),
            config: self.config.clone(),
            cache: self.cache.clone(),
            ttl_seconds: self.ttl_seconds,
            max_entries: self.max_entries,
        }
    }
}

impl<A> fmt::Debug for AuthorizerLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizerLayer")
            .field("authorizer", &std::any::type_name::<A>())
            .field("config", &self.config)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl<A: Authorizer> AuthorizerLayer<A> {
    /// A TOKEN authorizer reading the `Authorization` header.
    pub fn token(authorizer: A) -> Self {
        Self::with_identity(
            authorizer,
            Identity::Token {
                source: IdentitySource::Header(http::header::AUTHORIZATION),
                validation: None,
            },
        )
    }

    /// A REQUEST authorizer with these identity sources. Every source must be
    /// present, and they make the cache key.
    pub fn request(authorizer: A, sources: impl IntoIterator<Item = IdentitySource>) -> Self {
        Self::with_identity(
            authorizer,
            Identity::Request {
                sources: sources.into_iter().collect(),
            },
        )
    }

    /// A layer from configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] whose path is the invalid field: a TOKEN authorizer
    /// without exactly one header source, a REQUEST authorizer without
    /// sources, a bad regex, a TTL over 3,600 s, or no room in the cache.
    pub fn from_config(authorizer: A, config: &AuthorizerConfig) -> Result<Self, ConfigError> {
        let bad = |field: &'static str, message: &str| ConfigError::new(field, message);
        if config.result_ttl_in_seconds > MAX_TTL_SECONDS {
            return Err(bad("result_ttl_in_seconds", "at most 3600"));
        }
        let max_entries = NonZeroUsize::new(config.max_cache_entries)
            .ok_or_else(|| bad("max_cache_entries", "must be at least 1"))?;
        let mut layer = match config.kind {
            AuthorizerType::Token => {
                let header = match config.identity_source.as_slice() {
                    [] => http::header::AUTHORIZATION,
                    [IdentitySource::Header(name)] => name.clone(),
                    _ => {
                        return Err(bad(
                            "identity_source",
                            "a TOKEN authorizer takes exactly one method.request.header.X source",
                        ));
                    }
                };
                let mut layer = Self::token(authorizer).token_header(header);
                if let Some(expression) = &config.identity_validation_expression {
                    let regex = Regex::new(expression).map_err(|e| {
                        ConfigError::new("identity_validation_expression", e.to_string())
                    })?;
                    layer = layer.identity_validation(regex);
                }
                layer
            }
            AuthorizerType::Request => {
                if config.identity_source.is_empty() {
                    return Err(bad(
                        "identity_source",
                        "a REQUEST authorizer needs at least one source",
                    ));
                }
                if config.identity_validation_expression.is_some() {
                    return Err(bad(
                        "identity_validation_expression",
                        "only TOKEN authorizers validate their identity",
                    ));
                }
                Self::request(authorizer, config.identity_source.iter().cloned())
            }
        };
        layer = layer
            .result_ttl_seconds(config.result_ttl_in_seconds)
            .max_cache_entries(max_entries)
            .stage_variables(config.stage_variables.clone());
        if let Some(arns) = &config.method_arn {
            layer = layer.method_arn(arns.clone());
        }
        Ok(layer)
    }

    fn with_identity(authorizer: A, identity: Identity) -> Self {
        let arns = ExecuteApiArn::new("local", "000000000000", "api", "default")
            .unwrap_or_else(|_| unreachable!("the default ARN fields hold no `:` or `/`"));
        let config = Config {
            identity,
            arns,
            stage_variables: BTreeMap::new(),
            resolver: ClientIpResolver::new(),
            clock: Arc::new(SystemClock),
            max_identity_bytes: DEFAULT_MAX_IDENTITY_BYTES,
            id: next_config_id(),
        };
        Self {
            authorizer: Arc::new(authorizer),
            config: Arc::new(config),
            cache: Some(Arc::new(Cache::new(
                DEFAULT_TTL_SECONDS,
                DEFAULT_MAX_CACHE_ENTRIES,
            ))),
            ttl_seconds: DEFAULT_TTL_SECONDS,
            max_entries: DEFAULT_MAX_CACHE_ENTRIES,
        }
    }
}

impl<A> AuthorizerLayer<A> {
    fn config_mut(&mut self) -> &mut Config {
        let config = Arc::make_mut(&mut self.config);
        // A changed configuration may build other method ARNs: decisions
        // memoised under the old one must not apply to it.
        config.id = next_config_id();
        config
    }

    fn rebuild_cache(mut self) -> Self {
        self.cache = (self.ttl_seconds > 0)
            .then(|| Arc::new(Cache::new(self.ttl_seconds, self.max_entries)));
        self
    }

    /// TOKEN: the header holding the token (default `Authorization`). It has
    /// no effect on a REQUEST authorizer.
    pub fn token_header(mut self, header: HeaderName) -> Self {
        if let Identity::Token { source, .. } = &mut self.config_mut().identity {
            *source = IdentitySource::Header(header);
        }
        self
    }

    /// TOKEN: a regex the token must match, or the request gets 401 without
    /// the authorizer being called. It has no effect on a REQUEST authorizer.
    pub fn identity_validation(mut self, regex: Regex) -> Self {
        if let Identity::Token { validation, .. } = &mut self.config_mut().identity {
            *validation = Some(regex);
        }
        self
    }

    /// How long results are cached, in seconds: 0 turns caching off, and
    /// values over 3,600 are taken as 3,600 (API Gateway's maximum).
    pub fn result_ttl_seconds(mut self, seconds: u32) -> Self {
        self.ttl_seconds = seconds.min(MAX_TTL_SECONDS);
        self.rebuild_cache()
    }

    /// The most results the cache holds (default 10,000).
    pub fn max_cache_entries(mut self, entries: NonZeroUsize) -> Self {
        self.max_entries = entries.get();
        self.rebuild_cache()
    }

    /// The API stage whose method ARNs the policies are evaluated against
    /// (default `arn:aws:execute-api:local:000000000000:api/default/...`).
    pub fn method_arn(mut self, arns: ExecuteApiArn) -> Self {
        self.config_mut().arns = arns;
        self
    }

    /// Stage variables, for `stageVariables.X` sources and REQUEST events.
    pub fn stage_variables(mut self, variables: BTreeMap<String, String>) -> Self {
        self.config_mut().stage_variables = variables;
        self
    }

    /// The client-IP resolver, for `context.identity.sourceIp` and
    /// `aws:SourceIp` in policies.
    pub fn client_ip_resolver(mut self, resolver: ClientIpResolver) -> Self {
        self.config_mut().resolver = resolver;
        self
    }

    /// The clock for cache expiry and `aws:CurrentTime`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// The most bytes of identity-source values read from one request
    /// (default 8 KiB); more gets 401 without calling the authorizer.
    pub fn max_identity_bytes(mut self, bytes: usize) -> Self {
        self.config_mut().max_identity_bytes = bytes;
        self
    }
}

impl<A, S> Layer<S> for AuthorizerLayer<A> {
    type Service = CustomAuthorizer<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        CustomAuthorizer {
            inner,
            authorizer: self.authorizer.clone(),
            config: self.config.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<S, A> CustomAuthorizer<S, A> {
    /// The layer, for `CustomAuthorizer::layer(authorizer)` style
    /// construction: a TOKEN authorizer on `Authorization`.
    pub fn layer(authorizer: A) -> AuthorizerLayer<A>
    where
        A: Authorizer,
    {
        AuthorizerLayer::token(authorizer)
    }
}
