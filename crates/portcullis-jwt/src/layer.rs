//! `JwtLayer`, its configuration, and the verification engine all its clones
//! share.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::config::ConfigError;
use portcullis_core::context::Caller;
use serde::{Deserialize, Serialize};
use tower_layer::Layer;

use crate::cache::{TokenCache, TokenCacheConfig};
use crate::claims::{JwtClaims, Verified};
use crate::fetch::key_url;
use crate::issuer::{Issuer, JwksSource, TokenUse};
use crate::keys::{AlgSet, JwksError, KeySet, Lookup, VerifyKey};
use crate::policy::{Match, RoutePolicy};
use crate::reject::RejectReason;
use crate::service::Jwt;
use crate::source::TokenSource;
use crate::store::{KeyStore, RemoteOptions, RemoteSource, SharedFetch};
use crate::verify::{ClaimRules, check_signature, parse};

/// The default token size limit: 8 KB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The whole configuration of a [`JwtLayer`], as data.
///
/// ```
/// use portcullis_jwt::JwtConfig;
///
/// let config = JwtConfig::from_json(r#"{
///     "issuers": [{
///         "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
///         "keys": {"jwks_url": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json"},
///         "algorithms": ["RS256"],
///         "cognito": true,
///         "client_ids": ["app-client"]
///     }],
///     "cache": {"max_entries": 1000, "ttl_seconds": 60}
/// }"#).unwrap();
/// assert_eq!(config.issuers.len(), 1);
///
/// let error = JwtConfig::from_json(r#"{"issuers":[{"issuer":"i","algorithms":["XX999"]}]}"#).unwrap_err();
/// assert_eq!(error.path(), "issuers[0].algorithms[0]");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The trusted issuers. A token's `iss` picks one.
    pub issuers: Vec<Issuer>,
    /// Where the token is found (default `Authorization: Bearer`). Read as
    /// `token_location` too, its name before 0.x's rename.
    #[serde(default, alias = "token_location")]
    pub token_source: TokenSource,
    /// Tokens longer than this are refused before parsing (default 8 KB).
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// The verified-token cache.
    #[serde(default)]
    pub cache: TokenCacheConfig,
}

const fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}

impl JwtConfig {
    /// Parses a JSON configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] whose path is the bad field's.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigError::new(e.path().to_string(), e.into_inner().to_string()))
    }
}

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
/// [`Caller`] and the [`JwtClaims`] in its extensions, or refuses it with a
/// gateway response.
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
    pub async fn verify(&self, token: &str) -> Result<Verified, RejectReason> {
        if token.len() > self.shared.max_token_bytes {
            return Err(RejectReason::TokenTooLarge);
        }
        let verified = match self.shared.verify_token(token.as_bytes(), true) {
            Step::Done(result) => result?,
            Step::Wait(fetch) => {
                fetch.await;
                match self.shared.verify_token(token.as_bytes(), false) {
                    Step::Done(result) => result?,
                    Step::Wait(_) => return Err(RejectReason::KeysUnavailable),
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

pub(crate) struct IssuerState {
    rules: ClaimRules,
    algs: AlgSet,
    pub(crate) keys: Arc<KeyStore>,
}

/// The state every clone of a layer shares.
pub(crate) struct Shared {
    pub(crate) issuers: Vec<IssuerState>,
    pub(crate) source: TokenSource,
    pub(crate) max_token_bytes: usize,
    cache: Option<TokenCache>,
    clock: SharedClock,
}

pub(crate) enum Step {
    Done(Result<Arc<Verified>, RejectReason>),
    Wait(SharedFetch),
}

impl Shared {
    fn new(config: &JwtConfig, clock: SharedClock) -> Result<Self, ConfigError> {
        if config.issuers.is_empty() {
            return Err(ConfigError::new(
                "issuers",
                "at least one issuer is required",
            ));
        }
        if config.max_token_bytes == 0 {
            return Err(ConfigError::new("max_token_bytes", "must be above zero"));
        }
        let mut issuers = Vec::with_capacity(config.issuers.len());
        for (i, issuer) in config.issuers.iter().enumerate() {
            let field = |name: &str| format!("issuers[{i}].{name}");
            if config.issuers[..i]
                .iter()
                .any(|other| other.issuer == issuer.issuer)
            {
                return Err(ConfigError::new(field("issuer"), "duplicate issuer"));
            }
            if issuer.issuer.is_empty() {
                return Err(ConfigError::new(field("issuer"), "must not be empty"));
            }
            let mut algs = AlgSet::of(&issuer.algorithms);
            if algs.is_empty() {
                return Err(ConfigError::new(
                    field("algorithms"),
                    "at least one algorithm is required",
                ));
            }
            let mut secrets = Vec::new();
            for (j, secret) in issuer.hmac_secrets.iter().enumerate() {
                if secret.secret.len() < 32 {
                    return Err(ConfigError::new(
                        field(&format!("hmac_secrets[{j}].secret")),
                        "an HMAC secret needs at least 32 bytes",
                    ));
                }
                secrets.push(VerifyKey {
                    kid: secret.kid.as_deref().map(Arc::from),
                    key: jsonwebtoken::DecodingKey::from_secret(secret.secret.as_bytes()),
                    algs: AlgSet::HMAC,
                });
            }
            if secrets.is_empty() {
                // HS* is never allowed without an explicit secret.
                algs = AlgSet::of(
                    &issuer
                        .algorithms
                        .iter()
                        .copied()
                        .filter(|a| !AlgSet::HMAC.contains(*a))
                        .collect::<Vec<_>>(),
                );
                if algs.is_empty() {
                    return Err(ConfigError::new(
                        field("algorithms"),
                        "HS256/384/512 need an hmac_secrets entry",
                    ));
                }
            }
            let remote = |source: RemoteSource| {
                KeyStore::remote(
                    RemoteOptions {
                        issuer: issuer.issuer.clone(),
                        source,
                        allow_insecure: issuer.allow_insecure_http,
                        refresh: Duration::from_secs(issuer.refresh_interval_seconds.max(1)),
                        min_refetch: Duration::from_secs(issuer.min_refetch_interval_seconds),
                        fetch_timeout: Duration::from_secs(issuer.fetch_timeout_seconds.max(1)),
                        clock: Arc::clone(&clock),
                    },
                    secrets.clone(),
                )
                .map_err(|e| ConfigError::new(field("keys"), e))
            };
            let static_set = |json: &[u8], name: &str| match KeySet::from_jwks(json) {
                Ok(set) => Ok(KeyStore::fixed(set.with_extra(&secrets))),
                // An issuer that signs only with HMAC secrets needs no JWKS.
                Err(JwksError::NoUsableKey) if !secrets.is_empty() => {
                    Ok(KeyStore::fixed(KeySet::new(secrets.clone())))
                }
                Err(e) => Err(ConfigError::new(field(name), e.to_string())),
            };
            let keys = match &issuer.keys {
                JwksSource::Jwks(json) => static_set(json.as_bytes(), "keys.jwks")?,
                JwksSource::JwksFile(path) => {
                    let json = std::fs::read(path).map_err(|e| {
                        ConfigError::new(
                            field("keys.jwks_file"),
                            format!("{}: {e}", path.display()),
                        )
                    })?;
                    static_set(&json, "keys.jwks_file")?
                }
                JwksSource::JwksUrl(url) => {
                    let uri = key_url(url, issuer.allow_insecure_http)
                        .map_err(|e| ConfigError::new(field("keys.jwks_url"), e))?;
                    remote(RemoteSource::Jwks(uri))?
                }
                JwksSource::Discovery | JwksSource::DiscoveryUrl(_) => {
                    let url = match &issuer.keys {
                        JwksSource::DiscoveryUrl(url) => url.clone(),
                        _ => format!(
                            "{}/.well-known/openid-configuration",
                            issuer.issuer.trim_end_matches('/')
                        ),
                    };
                    let uri = key_url(&url, issuer.allow_insecure_http)
                        .map_err(|e| ConfigError::new(field("keys"), e))?;
                    remote(RemoteSource::Discovery(uri))?
                }
            };
            issuers.push(IssuerState {
                rules: ClaimRules::new(issuer),
                algs,
                keys: Arc::new(keys),
            });
        }
        Ok(Self {
            issuers,
            source: config.token_source.clone(),
            max_token_bytes: config.max_token_bytes,
            cache: TokenCache::new(&config.cache),
            clock,
        })
    }

    /// Verifies a token (already within the size limit): from the cache, or
    /// by parsing, key lookup, signature and claims. `Wait` asks the caller to
    /// await a key fetch, then call again with `allow_fetch` false.
    /// The token is bytes: a cache hit needs no UTF-8 check (it is the same
    /// bytes as a token verified before); a miss checks it first.
    pub(crate) fn verify_token(&self, token: &[u8], allow_fetch: bool) -> Step {
        let now_nanos = self.clock.now_unix_nanos();
        let key = self.cache.as_ref().map(|cache| (cache, cache.key(token)));
        if let Some((cache, key)) = key
            && let Some(hit) = cache.get(key, token, now_nanos)
        {
            return Step::Done(Ok(hit));
        }
        let result = (|| {
            let token = std::str::from_utf8(token).map_err(|_| RejectReason::Malformed)?;
            let parsed = parse(token)?;
            let iss = parsed
                .claims
                .get("iss")
                .and_then(serde_json::Value::as_str)
                .ok_or(RejectReason::UnknownIssuer)?;
            let issuer = self
                .issuers
                .iter()
                .find(|i| i.rules.issuer == iss)
                .ok_or(RejectReason::UnknownIssuer)?;
            if !issuer.algs.contains(parsed.jws.alg) {
                return Err(RejectReason::AlgorithmNotAllowed);
            }
            {
                let keys = issuer.keys.current();
                match keys.find(parsed.jws.kid.as_deref(), parsed.jws.alg) {
                    Lookup::Found(key) => check_signature(&parsed.jws, key)?,
                    Lookup::Mismatch => return Err(RejectReason::KeyAlgorithmMismatch),
                    Lookup::Unknown => {
                        drop(keys);
                        if allow_fetch && let Some(fetch) = issuer.keys.refetch() {
                            return Ok(Err(fetch));
                        }
                        return Err(if issuer.keys.loaded() {
                            RejectReason::UnknownKeyId
                        } else {
                            RejectReason::KeysUnavailable
                        });
                    }
                }
            }
            let exp = issuer
                .rules
                .check(&parsed.claims, now_nanos / 1_000_000_000)?;
            let (caller, claims) = issuer.rules.caller(parsed.claims);
            Ok(Ok(Arc::new(Verified {
                caller,
                claims,
                exp,
            })))
        })();
        match result {
            Ok(Ok(verified)) => {
                if let Some((cache, key)) = key {
                    cache.insert(key, token, Arc::clone(&verified), now_nanos);
                }
                Step::Done(Ok(verified))
            }
            Ok(Err(fetch)) => Step::Wait(fetch),
            Err(reason) => Step::Done(Err(reason)),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| i.rules.issuer.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("source", &self.source)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}
