//! Credentials: what an access key id stands for, and where the layer finds it.
//!
//! The layer asks a [`CredentialProvider`] for the [`Credential`] behind the
//! access key id of each signed request. [`StaticCredentialProvider`] holds
//! them in memory and loads from serde configuration; other providers (a
//! database, an identity pool handing out temporary credentials) implement the
//! same trait.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use portcullis_core::config::ConfigError;
use portcullis_core::store::Answer;
use portcullis_iam::PolicyDocument;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// A secret string: redacted in `Debug`, compared in constant time.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The secret value. Handle with care.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with `other`.
    #[must_use]
    pub fn ct_eq_str(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq_str(other.expose())
    }
}

impl Eq for Secret {}

/// What an access key id stands for: its secret, the principal it
/// authenticates, that principal's IAM policies and, for temporary
/// credentials, the session token and when it expires.
#[derive(Clone)]
pub struct Credential {
    access_key_id: Arc<str>,
    secret_access_key: Secret,
    secret_digest: [u8; 32],
    principal_arn: Arc<str>,
    policies: Vec<Arc<PolicyDocument>>,
    session_token: Option<Secret>,
    expires_at: Option<OffsetDateTime>,
}

impl Credential {
    /// Long-term credentials: `access_key_id` and its secret, authenticating
    /// `principal_arn` (such as `arn:aws:iam::123456789012:user/alice`), with no
    /// policies yet (IAM's default is deny).
    pub fn new(
        access_key_id: impl Into<Arc<str>>,
        secret_access_key: impl Into<Arc<str>>,
        principal_arn: impl Into<Arc<str>>,
    ) -> Self {
        let secret_access_key = Secret::new(secret_access_key);
        let secret_digest = Sha256::digest(secret_access_key.expose().as_bytes()).into();
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            secret_digest,
            principal_arn: principal_arn.into(),
            policies: Vec::new(),
            session_token: None,
            expires_at: None,
        }
    }

    /// Adds an identity policy.
    #[must_use]
    pub fn with_policy(mut self, policy: impl Into<Arc<PolicyDocument>>) -> Self {
        self.policies.push(policy.into());
        self
    }

    /// Sets the identity policies.
    #[must_use]
    pub fn with_policies(mut self, policies: Vec<Arc<PolicyDocument>>) -> Self {
        self.policies = policies;
        self
    }

    /// Makes these temporary credentials: requests must carry `session_token`
    /// in `X-Amz-Security-Token`, and are refused with EXPIRED_TOKEN from
    /// `expires_at` on.
    #[must_use]
    pub fn with_session_token(
        mut self,
        session_token: impl Into<Arc<str>>,
        expires_at: Option<OffsetDateTime>,
    ) -> Self {
        self.session_token = Some(Secret::new(session_token));
        self.expires_at = expires_at;
        self
    }

    /// Sets when the credentials expire, temporary or not.
    #[must_use]
    pub fn with_expiry(mut self, expires_at: OffsetDateTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The access key id.
    #[must_use]
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The access key id, shared.
    #[must_use]
    pub fn access_key_id_arc(&self) -> &Arc<str> {
        &self.access_key_id
    }

    /// The secret access key.
    #[must_use]
    pub fn secret_access_key(&self) -> &Secret {
        &self.secret_access_key
    }

    /// SHA-256 of the secret access key: the key under which derived signing
    /// keys are cached.
    #[must_use]
    pub(crate) fn secret_digest(&self) -> &[u8; 32] {
        &self.secret_digest
    }

    /// The principal's ARN.
    #[must_use]
    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    /// The principal's ARN, shared.
    #[must_use]
    pub fn principal_arn_arc(&self) -> &Arc<str> {
        &self.principal_arn
    }

    /// The principal's identity policies.
    #[must_use]
    pub fn policies(&self) -> &[Arc<PolicyDocument>] {
        &self.policies
    }

    /// The session token of temporary credentials.
    #[must_use]
    pub fn session_token(&self) -> Option<&Secret> {
        self.session_token.as_ref()
    }

    /// When the credentials expire.
    #[must_use]
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("principal_arn", &self.principal_arn)
            .field("policies", &self.policies.len())
            .field("session_token", &self.session_token)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A credential provider failed (its backend is down, for example). The layer
/// answers AUTHORIZER_FAILURE (500) and logs the error; the message never
/// reaches the client.
#[derive(Debug, thiserror::Error)]
#[error("credential provider failed: {0}")]
pub struct ProviderError(pub Box<dyn std::error::Error + Send + Sync>);

impl ProviderError {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

/// What a credential lookup finds: the credential, or `None` for an access
/// key id the provider does not know.
pub type CredentialResult = Result<Option<Arc<Credential>>, ProviderError>;

/// The answer of [`CredentialProvider::lookup`]: the workspace's one store
/// answer ([`Answer`]), known at once ([`Answer::Ready`], from an in-memory
/// map) or a boxed future ([`Answer::Pending`], a database or a remote
/// service).
///
/// An answer given at once keeps the layer's fast path free of allocation.
pub type CredentialLookup = Answer<CredentialResult, PendingCredential>;

/// The future of a [`CredentialLookup`] that needs async work. It must own
/// what it uses (clone an `Arc` of the provider's state into it).
pub type PendingCredential = Pin<Box<dyn Future<Output = CredentialResult> + Send + 'static>>;

/// Maps an access key id to its [`Credential`].
///
/// The trait is object-safe (the layer holds an `Arc<dyn CredentialProvider>`)
/// and async-friendly: a provider that must do I/O returns
/// [`Answer::Pending`] with a boxed `'static` future; one that knows at
/// once returns [`Answer::Ready`] and costs no allocation.
///
/// ```
/// use std::sync::Arc;
/// use portcullis_sigv4::{Credential, CredentialLookup, CredentialProvider};
///
/// /// Credentials kept in a remote store, looked up asynchronously.
/// #[derive(Debug)]
/// struct Remote(Arc<Credential>);
///
/// impl CredentialProvider for Remote {
///     fn lookup(&self, access_key_id: &str) -> CredentialLookup {
///         let known = (access_key_id == self.0.access_key_id()).then(|| self.0.clone());
///         CredentialLookup::Pending(Box::pin(async move {
///             // ... await the store here ...
///             Ok(known)
///         }))
///     }
/// }
/// ```
pub trait CredentialProvider: Send + Sync + fmt::Debug + 'static {
    /// The credential for `access_key_id`, or `None` when the key is unknown.
    fn lookup(&self, access_key_id: &str) -> CredentialLookup;

    /// The credential for `access_key_id`, given the request's session token
    /// (`X-Amz-Security-Token`, when the request carries one).
    ///
    /// The layer calls this method. Providers of stateless temporary
    /// credentials (such as an identity pool, whose session token is a sealed
    /// blob holding the identity, role and expiry) read the credential out of
    /// the token. The default ignores the token and calls
    /// [`lookup`](Self::lookup). The layer still compares the credential's
    /// session token with the request's, in constant time.
    fn lookup_with_token(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> CredentialLookup {
        let _ = session_token;
        self.lookup(access_key_id)
    }
}

impl<P: CredentialProvider + ?Sized> CredentialProvider for Arc<P> {
    fn lookup(&self, access_key_id: &str) -> CredentialLookup {
        (**self).lookup(access_key_id)
    }

    fn lookup_with_token(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> CredentialLookup {
        (**self).lookup_with_token(access_key_id, session_token)
    }
}

/// Credentials held in memory, keyed by access key id.
///
/// ```
/// use portcullis_sigv4::{StaticCredentialProvider, CredentialProvider, CredentialLookup};
///
/// let provider = StaticCredentialProvider::from_json(r#"{"credentials": [{
///     "access_key_id": "AKIDEXAMPLE",
///     "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
///     "principal_arn": "arn:aws:iam::123456789012:user/alice",
///     "policies": [{"Version": "2012-10-17", "Statement": {
///         "Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}}]
/// }]}"#)?;
/// assert_eq!(provider.len(), 1);
/// assert!(format!("{provider:?}").contains("AKIDEXAMPLE"));
/// assert!(!format!("{provider:?}").contains("wJalr"));
/// # Ok::<(), portcullis_core::config::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct StaticCredentialProvider {
    credentials: HashMap<Arc<str>, Arc<Credential>>,
}

impl StaticCredentialProvider {
    /// An empty provider.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a credential.
    #[must_use]
    pub fn with(mut self, credential: Credential) -> Self {
        self.insert(credential);
        self
    }

    /// Adds (or replaces) a credential.
    pub fn insert(&mut self, credential: Credential) {
        self.credentials
            .insert(credential.access_key_id.clone(), Arc::new(credential));
    }

    /// How many credentials the provider holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// Whether the provider holds no credential.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Builds the provider from its configuration.
    ///
    /// # Errors
    ///
    /// An empty access key id, secret or principal ARN, or an access key id
    /// given twice, named by its path (`credentials[2].access_key_id`).
    pub fn from_config(config: CredentialsConfig) -> Result<Self, ConfigError> {
        let mut provider = Self::new();
        for (i, entry) in config.credentials.into_iter().enumerate() {
            let field = |name: &str| format!("credentials[{i}].{name}");
            let id = &entry.access_key_id;
            if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ConfigError::new(
                    field("access_key_id"),
                    "must be 1 to 128 ASCII letters and digits",
                ));
            }
            if entry.secret_access_key.is_empty() {
                return Err(ConfigError::new(
                    field("secret_access_key"),
                    "must not be empty",
                ));
            }
            if entry.principal_arn.is_empty() {
                return Err(ConfigError::new(
                    field("principal_arn"),
                    "must not be empty",
                ));
            }
            if entry.session_token.as_deref() == Some("") {
                return Err(ConfigError::new(
                    field("session_token"),
                    "must not be empty",
                ));
            }
            if provider.credentials.contains_key(id.as_str()) {
                return Err(ConfigError::new(field("access_key_id"), "is given twice"));
            }
            let mut credential = Credential::new(
                entry.access_key_id.as_str(),
                entry.secret_access_key.as_str(),
                entry.principal_arn.as_str(),
            )
            .with_policies(entry.policies.into_iter().map(Arc::new).collect());
            if let Some(token) = entry.session_token {
                credential = credential.with_session_token(token, entry.expiration);
            } else if let Some(expiration) = entry.expiration {
                credential = credential.with_expiry(expiration);
            }
            provider.insert(credential);
        }
        Ok(provider)
    }

    /// Builds the provider from JSON configuration (see [`CredentialsConfig`]).
    ///
    /// # Errors
    ///
    /// Malformed JSON or an invalid field, named by its path.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let deserializer = &mut serde_json::Deserializer::from_str(json);
        let config: CredentialsConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                ConfigError::new(error.path().to_string(), error.inner().to_string())
            })?;
        Self::from_config(config)
    }
}

impl CredentialProvider for StaticCredentialProvider {
    fn lookup(&self, access_key_id: &str) -> CredentialLookup {
        CredentialLookup::Ready(Ok(self.credentials.get(access_key_id).cloned()))
    }
}

/// The serde form of [`StaticCredentialProvider`].
///
/// ```json
/// {"credentials": [{
///   "access_key_id": "AKIDEXAMPLE",
///   "secret_access_key": "...",
///   "principal_arn": "arn:aws:iam::123456789012:user/alice",
///   "policies": [{"Version": "2012-10-17", "Statement": [...]}],
///   "session_token": "optional, for temporary credentials",
///   "expiration": "2026-11-24T00:00:00Z"
/// }]}
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// The credentials.
    #[serde(default)]
    pub credentials: Vec<CredentialConfig>,
}

/// One credential in [`CredentialsConfig`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The access key id: 1 to 128 ASCII letters and digits.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The principal's ARN.
    pub principal_arn: String,
    /// The principal's identity policies.
    #[serde(default)]
    pub policies: Vec<PolicyDocument>,
    /// The session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// When the credentials expire (RFC 3339).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration: Option<OffsetDateTime>,
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("principal_arn", &self.principal_arn)
            .field("policies", &self.policies.len())
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}
