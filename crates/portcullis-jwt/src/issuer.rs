//! One trusted token issuer: where its keys come from and which claims it must
//! carry.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::pool_id::UserPoolId;

/// Where an issuer's verification keys come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[derive(Default)]
pub enum JwksSource {
    /// OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`,
    /// whose `jwks_uri` is then fetched. The document's `issuer` must equal the
    /// configured issuer.
    #[default]
    Discovery,
    /// OpenID Connect discovery from a document at another address (a local
    /// emulator, or a discovery endpoint behind a proxy).
    DiscoveryUrl(String),
    /// A JWKS fetched from this URL, refreshed in the background.
    JwksUrl(String),
    /// A static JWKS given as a JSON string.
    Jwks(String),
    /// A static JWKS read from a file when the layer is built.
    JwksFile(PathBuf),
}

/// Which Cognito token a route accepts (the `token_use` claim).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    /// An ID token (`token_use: id`, app client in `aud`).
    Id,
    /// An access token (`token_use: access`, app client in `client_id`).
    Access,
    /// Either, as long as `token_use` is `id` or `access`.
    #[default]
    Any,
}

impl TokenUse {
    pub(crate) fn accepts(self, claim: &str) -> bool {
        match self {
            TokenUse::Id => claim == "id",
            TokenUse::Access => claim == "access",
            TokenUse::Any => claim == "id" || claim == "access",
        }
    }
}

/// A shared HMAC secret, for issuers that sign with HS256/384/512.
///
/// Its `Debug` output is redacted and two secrets compare in constant time.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSecret {
    /// The `kid` tokens signed with this secret carry, if any.
    #[serde(default)]
    pub kid: Option<String>,
    /// The secret's bytes, as UTF-8 text.
    pub secret: String,
}

impl HmacSecret {
    /// A secret that tokens without a `kid` (or with any `kid`, when it is the
    /// only key) are verified with.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            kid: None,
            secret: secret.into(),
        }
    }

    /// A secret for tokens whose header names `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
}

impl PartialEq for HmacSecret {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid && bool::from(self.secret.as_bytes().ct_eq(other.secret.as_bytes()))
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSecret")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One trusted issuer: its `iss`, its keys, its algorithms and the claims its
/// tokens must carry.
///
/// ```
/// use portcullis_jwt::{Issuer, JwksSource, UserPoolId};
///
/// // A Cognito user pool: issuer, JWKS URL, RS256, token_use and app clients.
/// let pool_id: UserPoolId = "eu-west-1_AbCdEf123".parse().unwrap();
/// let pool = Issuer::user_pool(&pool_id).client_ids(["app-client"]);
/// assert_eq!(pool.issuer(), "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123");
///
/// // Any OpenID Connect issuer, found by discovery.
/// let oidc = Issuer::new("https://login.example.com").audiences(["api://loyalty"]);
/// assert_eq!(oidc.key_source(), &JwksSource::Discovery);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct Issuer {
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) keys: JwksSource,
    #[serde(default = "default_algorithms")]
    pub(crate) algorithms: Vec<Algorithm>,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    #[serde(default)]
    pub(crate) cognito: bool,
    #[serde(default)]
    pub(crate) client_ids: Vec<String>,
    #[serde(default)]
    pub(crate) leeway_seconds: u64,
    #[serde(default)]
    pub(crate) max_lifetime_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) required_claims: Vec<String>,
    #[serde(default = "default_groups_claim")]
    pub(crate) groups_claim: String,
    #[serde(default = "default_refresh")]
    pub(crate) refresh_interval_seconds: u64,
    #[serde(default = "default_min_refetch")]
    pub(crate) min_refetch_interval_seconds: u64,
    #[serde(default = "default_fetch_timeout")]
    pub(crate) fetch_timeout_seconds: u64,
    #[serde(default)]
    pub(crate) allow_insecure_http: bool,
    #[serde(default)]
    pub(crate) hmac_secrets: Vec<HmacSecret>,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
}

fn default_groups_claim() -> String {
    "cognito:groups".to_owned()
}

const fn default_refresh() -> u64 {
    3600
}

const fn default_min_refetch() -> u64 {
    10
}

const fn default_fetch_timeout() -> u64 {
    5
}

impl Issuer {
    /// An issuer whose tokens carry `iss` equal to `issuer`, with keys found by
    /// OpenID Connect discovery, and every asymmetric algorithm allowed.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            keys: JwksSource::Discovery,
            algorithms: default_algorithms(),
            audiences: Vec::new(),
            cognito: false,
            client_ids: Vec::new(),
            leeway_seconds: 0,
            max_lifetime_seconds: None,
            required_claims: Vec::new(),
            groups_claim: default_groups_claim(),
            refresh_interval_seconds: default_refresh(),
            min_refetch_interval_seconds: default_min_refetch(),
            fetch_timeout_seconds: default_fetch_timeout(),
            allow_insecure_http: false,
            hmac_secrets: Vec::new(),
        }
    }

    /// The Cognito preset: the user pool's issuer
    /// (`https://cognito-idp.{region}.amazonaws.com/{pool_id}`), its JWKS URL,
    /// RS256 only, `token_use` checked (`id` or `access`, narrowed per route
    /// with [`JwtLayer::token_use`](crate::JwtLayer::token_use)), and a maximum
    /// lifetime of one day (Cognito's own maximum for ID and access tokens).
    /// Add the app clients with [`client_ids`](Self::client_ids).
    pub fn user_pool(pool: &UserPoolId) -> Self {
        let issuer = format!("https://cognito-idp.{}.amazonaws.com/{pool}", pool.region());
        Self::user_pool_at(issuer)
    }

    /// The Cognito preset for a user pool whose issuer is `issuer` (a local
    /// Cognito emulator): the JWKS is `{issuer}/.well-known/jwks.json` unless
    /// [`jwks_url`](Self::jwks_url) says otherwise.
    pub fn user_pool_at(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        let jwks = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
        Self {
            keys: JwksSource::JwksUrl(jwks),
            algorithms: vec![Algorithm::RS256],
            cognito: true,
            max_lifetime_seconds: Some(86_400),
            ..Self::new(issuer)
        }
    }

    /// The exact `iss` tokens must carry.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the keys come from.
    #[must_use]
    pub fn key_source(&self) -> &JwksSource {
        &self.keys
    }

    /// Sets where the keys come from.
    pub fn keys(mut self, source: JwksSource) -> Self {
        self.keys = source;
        self
    }

    /// Fetches the JWKS from `url` (which may differ from the issuer, as with
    /// local Cognito emulators).
    pub fn jwks_url(self, url: impl Into<String>) -> Self {
        self.keys(JwksSource::JwksUrl(url.into()))
    }

    /// Uses a static JWKS, given as JSON.
    pub fn jwks(self, json: impl Into<String>) -> Self {
        self.keys(JwksSource::Jwks(json.into()))
    }

    /// The algorithm allow-list for this issuer. HS256/384/512 also need an
    /// explicit [`hmac_secret`](Self::hmac_secret).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Adds a shared HMAC secret, and allows HS256, HS384 and HS512 if the
    /// allow-list holds none of them yet.
    pub fn hmac_secret(mut self, secret: HmacSecret) -> Self {
        self.hmac_secrets.push(secret);
        if !self
            .algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            self.algorithms
                .extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
        }
        self
    }

    /// The accepted audiences: `aud` must hold one of them. Empty (the default)
    /// checks no `aud`, except for Cognito ID tokens (see
    /// [`client_ids`](Self::client_ids)).
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Turns the Cognito checks on: `token_use` must be `id` or `access`, and
    /// the app client (`aud` of an ID token, `client_id` of an access token)
    /// must be one of [`client_ids`](Self::client_ids).
    pub fn cognito(mut self, on: bool) -> Self {
        self.cognito = on;
        self
    }

    /// The Cognito app client ids accepted. Empty accepts any app client.
    pub fn client_ids<I, S>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_ids = client_ids.into_iter().map(Into::into).collect();
        self
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat` (default none).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway_seconds = leeway.as_secs();
        self
    }

    /// The longest lifetime (`exp - iat`) accepted.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime_seconds = Some(max.as_secs());
        self
    }

    /// Claims every token must carry.
    pub fn required_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Where the caller's groups are: a claim name (`cognito:groups` by
    /// default) or a dotted path into nested objects (`realm_access.roles`).
    pub fn groups_claim(mut self, claim: impl Into<String>) -> Self {
        self.groups_claim = claim.into();
        self
    }

    /// How often remote keys are refreshed in the background (default 1 h).
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval_seconds = every.as_secs().max(1);
        self
    }

    /// The least time between two refetches for an unknown `kid` (default
    /// 10 s, as awslabs/aws-jwt-verify).
    pub fn min_refetch_interval(mut self, every: Duration) -> Self {
        self.min_refetch_interval_seconds = every.as_secs();
        self
    }

    /// How long one key fetch may take (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout_seconds = timeout.as_secs().max(1);
        self
    }

    /// Allows `http://` key URLs on hosts other than loopback. Loopback
    /// (`127.0.0.0/8`, `[::1]`, `localhost`) is always allowed, for tests and
    /// local emulators.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }
}
