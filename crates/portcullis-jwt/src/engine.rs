//! The verification engine every clone of a layer shares: the issuers'
//! rules and keys, the token cache, and the verification of one token.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::SharedClock;
use portcullis_core::config::ConfigError;

use crate::cache::TokenCache;
use crate::claims::Verified;
use crate::config::JwtConfig;
use crate::fetch::key_url;
use crate::issuer::JwksSource;
use crate::keys::{AlgSet, JwksError, KeySet, Lookup, VerifyKey};
use crate::reject::JwtRefusal;
use crate::source::TokenSource;
use crate::store::{KeyStore, RemoteOptions, RemoteSource, SharedFetch};
use crate::verify::{ClaimRules, check_signature, parse};

pub(crate) struct IssuerState {
    pub(crate) rules: ClaimRules,
    pub(crate) algs: AlgSet,
    pub(crate) keys: Arc<KeyStore>,
}

/// The state every clone of a layer shares.
pub(crate) struct Shared {
    pub(crate) issuers: Vec<IssuerState>,
    pub(crate) source: TokenSource,
    pub(crate) max_token_bytes: usize,
    pub(crate) cache: Option<TokenCache>,
    pub(crate) clock: SharedClock,
}

pub(crate) enum Step {
    Done(Result<Arc<Verified>, JwtRefusal>),
    Wait(SharedFetch),
}

impl Shared {
    pub(crate) fn new(config: &JwtConfig, clock: SharedClock) -> Result<Self, ConfigError> {
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
            let token = std::str::from_utf8(token).map_err(|_| JwtRefusal::Malformed)?;
            let parsed = parse(token)?;
            let iss = parsed
                .claims
                .get("iss")
                .and_then(serde_json::Value::as_str)
                .ok_or(JwtRefusal::UnknownIssuer)?;
            let issuer = self
                .issuers
                .iter()
                .find(|i| i.rules.issuer == iss)
                .ok_or(JwtRefusal::UnknownIssuer)?;
            if !issuer.algs.contains(parsed.jws.alg) {
                return Err(JwtRefusal::AlgorithmNotAllowed);
            }
            {
                let keys = issuer.keys.current();
                match keys.find(parsed.jws.kid.as_deref(), parsed.jws.alg) {
                    Lookup::Found(key) => check_signature(&parsed.jws, key)?,
                    Lookup::Mismatch => return Err(JwtRefusal::KeyAlgorithmMismatch),
                    Lookup::Unknown => {
                        drop(keys);
                        if allow_fetch && let Some(fetch) = issuer.keys.refetch() {
                            return Ok(Err(fetch));
                        }
                        return Err(if issuer.keys.loaded() {
                            JwtRefusal::UnknownKeyId
                        } else {
                            JwtRefusal::KeysUnavailable
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
