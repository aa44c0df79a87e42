//! [`SigV4Layer`] and its configuration.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::config::ConfigError;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use serde::{Deserialize, Serialize};
use tower_layer::Layer;

use crate::budget::BodyBudget;
use crate::canonical::UriEncoding;
use crate::credentials::CredentialProvider;
use crate::error::SigV4Error;
use crate::service::SigV4;
use crate::shared::Shared;
use crate::verify::{self, RequestView, Settings, SigningKeys, SigningTexts};

/// The default limit on the bytes of a body the layer reads to hash it: 10 MB,
/// API Gateway's payload limit.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// The default limit on the body bytes one layer buffers across all its
/// in-flight requests while it hashes them: 64 MiB, room for six bodies of
/// [`DEFAULT_MAX_BODY_BYTES`] at once. A request whose body does not fit
/// gets THROTTLED (429) at once; see [`SigV4Layer::max_buffered_body_bytes`].
pub const DEFAULT_MAX_BUFFERED_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// The default clock skew allowed either way: 5 minutes, as API Gateway.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// The default number of derived signing keys kept.
pub const DEFAULT_SIGNING_KEY_CACHE: usize = 4096;

/// API Gateway's IAM authorization as a Tower layer: verifies AWS Signature
/// Version 4 (header or presigned query), finds the principal behind the
/// access key through a [`CredentialProvider`], and evaluates its IAM policies
/// (and the API's resource policy) for `execute-api:Invoke` on the request's
/// execute-api ARN.
///
/// The state (settings, provider, clock, signing-key cache) is created once;
/// every clone of the layer and of its services shares it.
#[derive(Clone, Debug)]
#[must_use]
pub struct SigV4Layer {
    shared: Arc<Shared>,
}

impl SigV4Layer {
    /// A layer for the API stage `api` (its region is the signing region),
    /// with credentials from `provider`, the system clock and API Gateway's
    /// defaults: service `execute-api`, ±5 minutes of clock skew, path
    /// normalisation and double encoding, bodies hashed up to 10 MiB each and
    /// 64 MiB across all in-flight requests, `UNSIGNED-PAYLOAD` refused.
    pub fn new(api: ExecuteApiArn, provider: impl CredentialProvider) -> Self {
        Self::with_shared_provider(api, Arc::new(provider))
    }

    /// [`new`](Self::new) with a provider already shared.
    pub fn with_shared_provider(api: ExecuteApiArn, provider: Arc<dyn CredentialProvider>) -> Self {
        let settings = Settings {
            region: api.region().into(),
            ..Settings::default()
        };
        Self {
            shared: Arc::new(Shared {
                settings,
                provider,
                clock: Arc::new(SystemClock),
                keys: SigningKeys::new(DEFAULT_SIGNING_KEY_CACHE),
                key_cache_size: DEFAULT_SIGNING_KEY_CACHE,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                budget: BodyBudget::new(DEFAULT_MAX_BUFFERED_BODY_BYTES),
                api,
                authorize: true,
                resource_policy: None,
                client_ip: ClientIpResolver::new(),
                secure_transport: None,
            }),
        }
    }

    /// Builds the layer from its configuration.
    ///
    /// # Errors
    ///
    /// An invalid setting, named by its field.
    pub fn from_config(
        config: SigV4Config,
        provider: impl CredentialProvider,
    ) -> Result<Self, ConfigError> {
        if config.max_body_bytes == 0 {
            return Err(ConfigError::new("max_body_bytes", "must be at least 1"));
        }
        if config.max_buffered_body_bytes < config.max_body_bytes {
            return Err(ConfigError::new(
                "max_buffered_body_bytes",
                "must be at least max_body_bytes (a body the limit allows could never be read)",
            ));
        }
        if config.clock_skew_seconds > 3600 {
            return Err(ConfigError::new(
                "clock_skew_seconds",
                "must be at most 3600",
            ));
        }
        if config.service.is_empty() || config.service.contains('/') {
            return Err(ConfigError::new(
                "service",
                "must be a non-empty name without `/`",
            ));
        }
        let mut layer = Self::new(config.api, provider)
            .service(config.service)
            .clock_skew(Duration::from_secs(config.clock_skew_seconds))
            .max_body_bytes(config.max_body_bytes)
            .max_buffered_body_bytes(config.max_buffered_body_bytes)
            .normalize_path(config.normalize_path)
            .uri_encoding(config.uri_encoding)
            .debug_signatures(config.debug_signatures)
            .allow_unsigned_payload(config.allow_unsigned_payload)
            .signing_key_cache(config.signing_key_cache);
        if let Some(policy) = config.resource_policy {
            layer = layer.resource_policy(policy);
        }
        if config.authentication_only {
            layer = layer.authentication_only();
        }
        Ok(layer)
    }

    fn update(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            f(shared);
        } else {
            let mut shared = self.shared.fresh_copy();
            f(&mut shared);
            self.shared = Arc::new(shared);
        }
        self
    }

    /// Takes time from `clock` (a manual clock in tests).
    pub fn clock(self, clock: impl Clock) -> Self {
        let clock: SharedClock = Arc::new(clock);
        self.update(|s| s.clock = clock)
    }

    /// The signing service name the credential scope must name (default
    /// `execute-api`).
    pub fn service(self, service: impl Into<String>) -> Self {
        let service = std::sync::Arc::<str>::from(service.into());
        self.update(|s| s.settings.service = service)
    }

    /// The signing region the credential scope must name (default: the API's
    /// region).
    pub fn region(self, region: impl Into<String>) -> Self {
        let region = std::sync::Arc::<str>::from(region.into());
        self.update(|s| s.settings.region = region)
    }

    /// The clock skew allowed either way (default 5 minutes).
    pub fn clock_skew(self, skew: Duration) -> Self {
        self.update(|s| s.settings.clock_skew_seconds = skew.as_secs())
    }

    /// The most body bytes read and hashed (default 10 MiB); a larger body gets
    /// REQUEST_TOO_LARGE.
    pub fn max_body_bytes(self, limit: u64) -> Self {
        self.update(|s| s.max_body_bytes = limit)
    }

    /// The most body bytes buffered at once across every in-flight request
    /// of this layer and all its clones (default
    /// [`DEFAULT_MAX_BUFFERED_BODY_BYTES`], 64 MiB).
    ///
    /// A body must be read before a request can be admitted when its hash is
    /// not known from the headers: with no `x-amz-content-sha256` (what the
    /// AWS SDKs, botocore and awscurl send for execute-api), the signature
    /// can only be checked once the body is hashed; with a signed hex digest,
    /// the body must still be checked against it before the inner service
    /// sees a byte. Everything the headers allow is checked first (a known
    /// access key, the date and its skew, the credential scope, the shape of
    /// the signature and the signed headers), but a caller who knows an
    /// access key id and nothing else could still make the layer buffer a
    /// body per request. This budget bounds them all together.
    ///
    /// A request reserves its bytes before it buffers them: all of a
    /// `Content-Length` at once, a chunked body as its chunks arrive. A
    /// reservation that does not fit is answered at once with THROTTLED
    /// (429 `TooManyRequestsException`, "Too Many Requests"): nothing waits,
    /// memory never grows past the budget, and the AWS SDKs retry a 429
    /// with backoff, as they do API Gateway's own throttling (a 503 would be
    /// retried too, but says the server failed; this is load shedding, not
    /// a fault, and a 413 would wrongly tell the client its body is too
    /// large). Override the response through core's THROTTLED gateway
    /// response like any other. The bytes are given back when the request is
    /// refused, when the inner service has taken every buffered chunk, or
    /// when the request is dropped.
    ///
    /// Keep it at least [`max_body_bytes`](Self::max_body_bytes), or bodies
    /// between the two are always refused.
    pub fn max_buffered_body_bytes(self, limit: u64) -> Self {
        self.update(|s| s.budget = BodyBudget::new(limit))
    }

    /// Whether the canonical URI normalises `.`/`..` segments and `//`
    /// (default true, as every AWS service but S3).
    pub fn normalize_path(self, normalize: bool) -> Self {
        self.update(|s| s.settings.normalize_path = normalize)
    }

    /// How the canonical URI encodes the path (default
    /// [`UriEncoding::Double`], as execute-api).
    pub fn uri_encoding(self, encoding: UriEncoding) -> Self {
        self.update(|s| s.settings.uri_encoding = encoding)
    }

    /// Adds AWS's "The Canonical String for this request should have been ..."
    /// text to signature mismatches (default off). It shows the caller what
    /// the server computed; turn it on while debugging signers only.
    pub fn debug_signatures(self, debug: bool) -> Self {
        self.update(|s| s.settings.debug = debug)
    }

    /// Whether `x-amz-content-sha256: UNSIGNED-PAYLOAD` is accepted (default
    /// false: refused as IncompleteSignature).
    ///
    /// API Gateway's documentation names no unsigned payload for execute-api
    /// (only S3 documents `UNSIGNED-PAYLOAD`, and the AWS SDKs send it only
    /// for operations modelled with Smithy's `@unsignedPayload` trait, which
    /// no execute-api call is); the AWS SDKs, botocore and awscurl all sign
    /// the payload's hash. Turn it on for clients that stream bodies they
    /// cannot hash first (gRPC through tonic, for example): the inner
    /// service then reads a body the signature does not cover.
    pub fn allow_unsigned_payload(self, allow: bool) -> Self {
        self.update(|s| s.settings.allow_unsigned_payload = allow)
    }

    /// How many derived signing keys to keep (default 4096; 0 turns the cache
    /// off).
    pub fn signing_key_cache(self, capacity: usize) -> Self {
        self.update(|s| {
            s.key_cache_size = capacity;
            s.keys = SigningKeys::new(capacity);
        })
    }

    /// The API's resource policy, evaluated with the caller's identity
    /// policies as API Gateway does for callers of the same account: a Deny in
    /// either wins, an Allow in either allows.
    pub fn resource_policy(self, policy: impl Into<Arc<PolicyDocument>>) -> Self {
        let policy = policy.into();
        self.update(|s| s.resource_policy = Some(policy))
    }

    /// Verifies signatures only: no policy is evaluated, every authenticated
    /// caller gets through.
    pub fn authentication_only(self) -> Self {
        self.update(|s| s.authorize = false)
    }

    /// The client-IP resolver for `aws:SourceIp` (default: the peer address,
    /// no trusted proxy).
    pub fn client_ip_resolver(self, resolver: ClientIpResolver) -> Self {
        self.update(|s| s.client_ip = resolver)
    }

    /// Sets `aws:SecureTransport` for every request (behind a TLS-terminating
    /// proxy). By default it is true when the request URI's scheme is https.
    pub fn secure_transport(self, secure: bool) -> Self {
        self.update(|s| s.secure_transport = Some(secure))
    }
}

impl SigV4Layer {
    /// The canonical request and string to sign the layer computes for
    /// `request` with the payload hash `payload_hash` (hex SHA-256 of the body,
    /// or `UNSIGNED-PAYLOAD`): what a signer must produce. For tools that
    /// debug signers, and for tests.
    ///
    /// # Errors
    ///
    /// When the request carries no well-formed signature.
    pub fn signing_texts<B>(
        &self,
        request: &http::Request<B>,
        payload_hash: &str,
    ) -> Result<SigningTexts, SigV4Error> {
        let view = RequestView {
            method: request.method(),
            uri: crate::service::signed_uri(request.uri(), request.extensions()),
            headers: request.headers(),
        };
        let parsed = verify::parse(view, &self.shared.settings)?;
        Ok(verify::texts(
            view,
            &parsed,
            payload_hash,
            &self.shared.settings,
        ))
    }
}

impl<S> Layer<S> for SigV4Layer {
    type Service = SigV4<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SigV4::from_shared(inner, self.shared.clone())
    }
}

impl<S> SigV4<S> {
    /// Wraps `inner` with the settings of `layer`.
    pub fn new(inner: S, layer: &SigV4Layer) -> Self {
        Layer::layer(layer, inner)
    }

    /// A [`SigV4Layer`] for the API stage `api` with credentials from
    /// `provider`: the same as [`SigV4Layer::new`].
    pub fn layer(api: ExecuteApiArn, provider: impl CredentialProvider) -> SigV4Layer {
        SigV4Layer::new(api, provider)
    }
}

/// The serde form of a [`SigV4Layer`]'s settings.
///
/// ```
/// use portcullis_sigv4::{SigV4Config, SigV4Layer, StaticCredentialProvider};
///
/// let config: SigV4Config = serde_json::from_str(r#"{
///     "api": {"region": "eu-west-1", "account_id": "123456789012", "api_id": "a1b2c3", "stage": "prod"},
///     "clock_skew_seconds": 60
/// }"#).unwrap();
/// let layer = SigV4Layer::from_config(config, StaticCredentialProvider::new()).unwrap();
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigV4Config {
    /// The API stage: region, account, API id and stage of the execute-api
    /// ARNs.
    pub api: ExecuteApiArn,
    /// The signing service (default `execute-api`).
    #[serde(default = "default_service")]
    pub service: String,
    /// The clock skew allowed either way, in seconds (default 300, at most
    /// 3600).
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    /// The most body bytes hashed (default 10 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// The most body bytes buffered at once across all in-flight requests
    /// (default 64 MiB, at least `max_body_bytes`); see
    /// [`SigV4Layer::max_buffered_body_bytes`].
    #[serde(default = "default_max_buffered_body")]
    pub max_buffered_body_bytes: u64,
    /// Whether the path is normalised (default true).
    #[serde(default = "yes")]
    pub normalize_path: bool,
    /// `double` (default) or `single`.
    #[serde(default)]
    pub uri_encoding: UriEncoding,
    /// AWS's canonical-request text in signature mismatches (default false).
    #[serde(default)]
    pub debug_signatures: bool,
    /// Whether `UNSIGNED-PAYLOAD` is accepted (default false).
    #[serde(default)]
    pub allow_unsigned_payload: bool,
    /// How many signing keys are cached (default 4096).
    #[serde(default = "default_key_cache")]
    pub signing_key_cache: usize,
    /// The API's resource policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<PolicyDocument>,
    /// Verify signatures only, evaluating no policy (default false).
    #[serde(default)]
    pub authentication_only: bool,
}

fn default_service() -> String {
    "execute-api".to_owned()
}
fn default_skew() -> u64 {
    DEFAULT_CLOCK_SKEW.as_secs()
}
fn default_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_buffered_body() -> u64 {
    DEFAULT_MAX_BUFFERED_BODY_BYTES
}
fn default_key_cache() -> usize {
    DEFAULT_SIGNING_KEY_CACHE
}
fn yes() -> bool {
    true
}
