//! `AuthorizerLayer`, its configuration, and the `CustomAuthorizer` service.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, Request, Response};
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::context::{AuthMethod, Caller, UsageIdentifierKey};
pub use portcullis_core::future::ResponseFuture;
use portcullis_core::path::CanonicalPath;
use portcullis_core::resource::ApiResource;
use portcullis_core::response::messages;
use portcullis_core::trace::{self, Decision as Traced};
use portcullis_core::{GatewayResponse, GatewayResponseType, ResponseBody};
use portcullis_iam::{Decision, ExecuteApiArn, RequestContext};
use regex::Regex;
use serde::{Deserialize, Serialize};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::authorizer::{Authorizer, AuthorizerError};
use crate::cache::{Cache, DecisionMemo, Lookup, Outcome, Prepared};
use crate::event::{
    AuthorizerEvent, AuthorizerResponse, IdentityEvent, RequestContextEvent, RequestEvent,
    TokenEvent,
};
use crate::identity::{self, IdentitySource};

/// The default result TTL: 300 seconds, as API Gateway.
pub const DEFAULT_TTL_SECONDS: u32 = 300;
/// The longest result TTL API Gateway allows: 3,600 seconds.
pub const MAX_TTL_SECONDS: u32 = 3600;
/// The default bound on cached results.
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 10_000;
/// The default bound on the identity-source values of one request, in bytes.
pub const DEFAULT_MAX_IDENTITY_BYTES: usize = 8 * 1024;

/// The message of a custom authorizer's explicit Deny.
pub const AUTHORIZER_DENIED_EXPLICIT: &str =
    "User is not authorized to access this resource with an explicit deny";

/// TOKEN or REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorizerType {
    /// One header holds the identity.
    #[serde(rename = "TOKEN")]
    Token,
    /// Headers, query parameters, stage variables and context values do.
    #[serde(rename = "REQUEST")]
    Request,
}

/// The layer's configuration as data (contract 8): read it from JSON or TOML
/// and give it to [`AuthorizerLayer::from_config`].
///
/// ```
/// use portcullis_authorizer::AuthorizerConfig;
///
/// let config: AuthorizerConfig = serde_json::from_str(r#"{
///     "type": "TOKEN",
///     "identity_source": ["method.request.header.Authorization"],
///     "identity_validation_expression": "^Bearer [-0-9a-zA-Z._]+$",
///     "result_ttl_in_seconds": 600
/// }"#)?;
/// assert_eq!(config.result_ttl_in_seconds, 600);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerConfig {
    /// TOKEN or REQUEST.
    #[serde(rename = "type")]
    pub kind: AuthorizerType,
    /// The identity sources. TOKEN takes exactly one header (default
    /// `method.request.header.Authorization`).
    #[serde(default)]
    pub identity_source: Vec<IdentitySource>,
    /// TOKEN only: a regex the token must match before the authorizer is
    /// called.
    #[serde(default)]
    pub identity_validation_expression: Option<String>,
    /// How long results are cached: 0 (off) to 3,600; default 300.
    #[serde(default = "default_ttl")]
    pub result_ttl_in_seconds: u32,
    /// The most results cached.
    #[serde(default = "default_max_entries")]
    pub max_cache_entries: usize,
    /// The API stage whose method ARNs are authorized.
    #[serde(default)]
    pub method_arn: Option<ExecuteApiArn>,
    /// Stage variables, for `stageVariables.X` sources and REQUEST events.
    #[serde(default)]
    pub stage_variables: BTreeMap<String, String>,
}

fn default_ttl() -> u32 {
    DEFAULT_TTL_SECONDS
}

fn default_max_entries() -> usize {
    DEFAULT_MAX_CACHE_ENTRIES
}

/// An invalid [`AuthorizerConfig`], naming the bad field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid authorizer configuration `{field}`: {message}")]
#[non_exhaustive]
pub struct AuthorizerConfigError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Where the identity comes from.
#[derive(Clone, Debug)]
enum Identity {
    Token {
        /// Always `IdentitySource::Header`.
        source: IdentitySource,
        validation: Option<Regex>,
    },
    Request {
        sources: Vec<IdentitySource>,
    },
}

/// The configuration every clone of the layer and its services shares.
#[derive(Clone)]
struct Config {
    identity: Identity,
    arns: ExecuteApiArn,
    stage_variables: BTreeMap<String, String>,
    resolver: ClientIpResolver,
    clock: SharedClock,
    max_identity_bytes: usize,
    /// Unique to this configuration: names it in the policy-decision memo.
    id: u64,
}

/// A fresh configuration id.
fn next_config_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("identity", &self.identity)
            .field("arns", &self.arns)
            .field("stage_variables", &self.stage_variables.keys())
            .field("max_identity_bytes", &self.max_identity_bytes)
            .finish_non_exhaustive()
    }
}

/// API Gateway's custom (Lambda) authorizers as a Tower layer.
///
/// The layer reads the request's identity sources, asks the [`Authorizer`]
/// (or its cache) for a principal and a policy, evaluates the policy with
/// `portcullis-iam` against the request's method ARN, and either lets the
/// request on, with the [`Caller`] (and any [`UsageIdentifierKey`]) in its
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
    /// When a field is invalid: a TOKEN authorizer without exactly one header
    /// source, a REQUEST authorizer without sources, a bad regex, a TTL over
    /// 3,600 s, or no room in the cache.
    pub fn from_config(
        authorizer: A,
        config: &AuthorizerConfig,
    ) -> Result<Self, AuthorizerConfigError> {
        let bad = |field, message: &str| AuthorizerConfigError {
            field,
            message: message.to_owned(),
        };
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
                    let regex = Regex::new(expression).map_err(|e| AuthorizerConfigError {
                        field: "identity_validation_expression",
                        message: e.to_string(),
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

/// The service [`AuthorizerLayer`] builds.
pub struct CustomAuthorizer<S, A> {
    inner: S,
    authorizer: Arc<A>,
    config: Arc<Config>,
    cache: Option<Arc<Cache>>,
}

impl<S: Clone, A> Clone for CustomAuthorizer<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            authorizer: self.authorizer.clone(),
            config: self.config.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<S: fmt::Debug, A> fmt::Debug for CustomAuthorizer<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomAuthorizer")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
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

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the layer's service, giving back the inner one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// A refusal before the authorizer answered.
fn refuse(
    kind: GatewayResponseType,
    reason: &'static str,
    start: Instant,
    span: &Span,
) -> GatewayResponse {
    record(reason, kind, None, start, span);
    GatewayResponse::new(kind)
}

/// A refusal's event (with its `detail`, and the principal the authorizer
/// named, if it answered), counter (by the gateway response it gets) and
/// duration.
fn record(
    detail: &'static str,
    kind: GatewayResponseType,
    principal: Option<&str>,
    start: Instant,
    span: &Span,
) {
    record_seconds(start);
    let decision = Traced::refused(kind).with_detail(detail);
    decision.record(span);
    if let Some(principal) = principal {
        trace::record_principal(span, principal);
    }
    tracing::debug!(
        layer = "authorizer",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail,
        principal,
        "custom authorizer decision"
    );
    metrics::counter!(
        "portcullis_authorizer_decisions_total",
        "outcome" => "refused",
        "reason" => kind.as_str()
    )
    .increment(1);
}

/// `portcullis_authorizer_decision_seconds`: from the request's arrival to
/// the verdict (a call to the authorizer it waited for included).
fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_authorizer_decision_seconds")
        .record(start.elapsed().as_secs_f64());
}

/// The identity of a request: the values of its sources. A TOKEN identity
/// needs no allocation.
enum IdentityValues<'r> {
    Token(Cow<'r, str>),
    Request(Vec<Cow<'r, str>>),
}

impl IdentityValues<'_> {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            IdentityValues::Token(token) => (Some(token.as_ref()), &[][..]),
            IdentityValues::Request(values) => (None, values.as_slice()),
        };
        one.into_iter().chain(many.iter().map(AsRef::as_ref))
    }
}

impl Config {
    fn read_identity<'r>(
        &'r self,
        parts: &'r Parts,
        source_ip: Option<&'r str>,
        path: &'r str,
    ) -> Result<IdentityValues<'r>, &'static str> {
        let stage = self.arns.stage();
        let values = match &self.identity {
            Identity::Token { source, validation } => {
                let token =
                    identity::read(source, parts, &self.stage_variables, stage, source_ip, path)
                        .ok_or("missing_identity")?;
                if token.len() > self.max_identity_bytes {
                    return Err("identity_too_large");
                }
                if validation.as_ref().is_some_and(|re| !re.is_match(&token)) {
                    return Err("token_failed_validation");
                }
                IdentityValues::Token(token)
            }
            Identity::Request { sources } => {
                let mut values = Vec::with_capacity(sources.len());
                let mut total = 0;
                for source in sources {
                    let value = identity::read(
                        source,
                        parts,
                        &self.stage_variables,
                        stage,
                        source_ip,
                        path,
                    )
                    .ok_or("missing_identity")?;
                    total += value.len();
                    if total > self.max_identity_bytes {
                        return Err("identity_too_large");
                    }
                    values.push(value);
                }
                IdentityValues::Request(values)
            }
        };
        Ok(values)
    }

    fn event(
        &self,
        parts: &Parts,
        path: &str,
        method_arn: String,
        identity: &IdentityValues<'_>,
        source_ip: Option<&str>,
    ) -> AuthorizerEvent {
        match &self.identity {
            Identity::Token { .. } => AuthorizerEvent::Token(TokenEvent {
                authorization_token: identity.iter().next().unwrap_or_default().to_owned(),
                method_arn,
            }),
            Identity::Request { .. } => {
                let mut headers = BTreeMap::new();
                let mut multi_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (name, value) in &parts.headers {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    multi_headers
                        .entry(name.as_str().to_owned())
                        .or_default()
                        .push(value.clone());
                    headers.insert(name.as_str().to_owned(), value);
                }
                let mut query = BTreeMap::new();
                let mut multi_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (k, v) in identity::query_pairs(parts.uri.query().unwrap_or("")) {
                    multi_query
                        .entry(k.to_string())
                        .or_default()
                        .push(v.to_string());
                    query.insert(k.into_owned(), v.into_owned());
                }
                let path = path.to_owned();
                // The resource a routing layer in front matched, as API
                // Gateway sends it; without one, the path stands for it.
                let (resource, path_parameters) = match parts.extensions.get::<ApiResource>() {
                    Some(routed) => (
                        routed.resource_path().to_owned(),
                        routed
                            .path_parameters()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect(),
                    ),
                    None => (path.clone(), BTreeMap::new()),
                };
                let method = parts.method.as_str().to_owned();
                let user_agent = parts
                    .headers
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                AuthorizerEvent::Request(Box::new(RequestEvent {
                    method_arn,
                    resource: resource.clone(),
                    path: path.clone(),
                    http_method: method.clone(),
                    headers,
                    multi_value_headers: multi_headers,
                    query_string_parameters: query,
                    multi_value_query_string_parameters: multi_query,
                    path_parameters,
                    stage_variables: self.stage_variables.clone(),
                    request_context: RequestContextEvent {
                        path: path.clone(),
                        account_id: self.arns.account_id().to_owned(),
                        stage: self.arns.stage().to_owned(),
                        api_id: self.arns.api_id().to_owned(),
                        resource_path: resource,
                        http_method: method,
                        protocol: format!("{:?}", parts.version),
                        identity: IdentityEvent {
                            source_ip: source_ip.map(str::to_owned),
                            user_agent,
                        },
                    },
                }))
            }
        }
    }
}

/// Checks an answer and makes it ready for reuse.
fn prepare(answer: Result<AuthorizerResponse, AuthorizerError>) -> Outcome {
    let answer = answer?;
    answer.validate().map_err(AuthorizerError::Malformed)?;
    let principal_id: Arc<str> = answer.principal_id.into();
    let caller =
        Caller::new(principal_id.clone(), AuthMethod::CustomAuthorizer).with_claims(answer.context);
    let memo = DecisionMemo::for_policy(&answer.policy_document);
    Ok(Arc::new(Prepared {
        principal_id,
        policy: answer.policy_document,
        caller,
        usage_key: answer.usage_identifier_key.map(UsageIdentifierKey::new),
        memo,
    }))
}

/// Applies an outcome to a request: on Allow, the caller goes into its
/// extensions; otherwise the refusal.
fn apply(
    outcome: &Outcome,
    path: &str,
    parts: &mut Parts,
    config: &Config,
    source_ip: Option<std::net::IpAddr>,
    start: Instant,
    span: &Span,
) -> Result<(), Refusal> {
    let prepared = match outcome {
        Ok(prepared) => prepared,
        Err(AuthorizerError::Unauthorized) => {
            record(
                "authorizer_unauthorized",
                GatewayResponseType::Unauthorized,
                None,
                start,
                span,
            );
            return Err(Refusal::Unauthorized);
        }
        Err(error) => {
            tracing::warn!(
                layer = "authorizer",
                outcome = trace::REFUSED,
                reason = GatewayResponseType::AuthorizerFailure.as_str(),
                detail = error.as_str(),
                %error,
                "custom authorizer failed"
            );
            record(
                error.as_str(),
                GatewayResponseType::AuthorizerFailure,
                None,
                start,
                span,
            );
            return Err(Refusal::Failure);
        }
    };
    let memo = prepared.memo.as_ref();
    let memoised = memo.and_then(|memo| memo.get(config.id, &parts.method, path));
    let decision = if let Some(decision) = memoised {
        decision
    } else {
        let method_arn = config.arns.resource(parts.method.as_str(), path);
        let mut ctx = RequestContext::new(&*prepared.principal_id, &method_arn)
            .with_source_ip(source_ip)
            .with_current_time(config.clock.now())
            .with_secure_transport(parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS));
        if let Some(agent) = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            ctx = ctx.with_user_agent(agent);
        }
        let decision = prepared.policy.evaluate(&ctx);
        if let Some(memo) = memo {
            memo.put(config.id, &parts.method, path, decision);
        }
        decision
    };
    match decision {
        Decision::Allow => {
            record_seconds(start);
            let traced = Traced::allowed().with_detail("policy_allow");
            traced.record(span);
            trace::record_principal(span, &prepared.principal_id);
            tracing::debug!(
                layer = "authorizer",
                outcome = traced.outcome().as_str(),
                reason = traced.reason(),
                detail = traced.detail(),
                principal = &*prepared.principal_id,
                "custom authorizer decision"
            );
            // Literal labels: the metrics key is built without allocating.
            metrics::counter!(
                "portcullis_authorizer_decisions_total",
                "outcome" => "allowed",
                "reason" => "OK"
            )
            .increment(1);
            parts.extensions.insert(prepared.caller.clone());
            if let Some(key) = &prepared.usage_key {
                parts.extensions.insert(key.clone());
            }
            Ok(())
        }
        Decision::ExplicitDeny => {
            record(
                "explicit_deny",
                GatewayResponseType::AccessDenied,
                Some(&*prepared.principal_id),
                start,
                span,
            );
            Err(Refusal::ExplicitDeny)
        }
        Decision::ImplicitDeny => {
            record(
                "no_matching_allow",
                GatewayResponseType::AccessDenied,
                Some(&*prepared.principal_id),
                start,
                span,
            );
            Err(Refusal::ImplicitDeny)
        }
    }
}

/// Why [`apply`] refused: small, so the `Result` stays small.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    Unauthorized,
    Failure,
    ExplicitDeny,
    ImplicitDeny,
}

impl Refusal {
    fn render(self, parts: &Parts) -> Response<Bytes> {
        let response = match self {
            Refusal::Unauthorized => GatewayResponse::new(GatewayResponseType::Unauthorized),
            Refusal::Failure => GatewayResponse::new(GatewayResponseType::AuthorizerFailure),
            Refusal::ExplicitDeny => GatewayResponse::new(GatewayResponseType::AccessDenied)
                .with_message(AUTHORIZER_DENIED_EXPLICIT),
            Refusal::ImplicitDeny => GatewayResponse::new(GatewayResponseType::AccessDenied)
                .with_message(messages::AUTHORIZER_DENIED),
        };
        response.render_parts(parts)
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for CustomAuthorizer<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    A: Authorizer,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let span = portcullis_core::layer_span!("authorizer");
        let entered = span.enter();
        let (mut parts, body) = request.into_parts();
        let config = &*self.config;
        // The method ARN, the REQUEST event's path and `$context.path` all
        // read the one canonical path. `Uri` clones share its bytes, so this
        // borrows from the clone without copying the path while `parts` is
        // changed below.
        let uri = parts.uri.clone();
        let path = match CanonicalPath::of_uri(&uri) {
            Ok(path) => path,
            Err(refusal) => {
                record(
                    "non_canonical_path",
                    refusal.gateway_response().kind(),
                    None,
                    start,
                    &span,
                );
                return ResponseFuture::answered(
                    refusal
                        .gateway_response()
                        .render_parts(&parts)
                        .map(ResponseBody::rejection),
                );
            }
        };
        let source_ip = config
            .resolver
            .resolve_parts(&parts.headers, &parts.extensions);
        // Only REQUEST authorizers can name the source IP as text.
        let source_ip_text = match config.identity {
            Identity::Request { .. } => source_ip.map(|ip| ip.to_string()),
            Identity::Token { .. } => None,
        };

        let key = match config.read_identity(&parts, source_ip_text.as_deref(), &path) {
            Ok(identity) => self.cache.as_ref().map(|cache| cache.key(identity.iter())),
            Err(reason) => {
                let refusal = refuse(GatewayResponseType::Unauthorized, reason, start, &span);
                return ResponseFuture::answered(
                    refusal.render_parts(&parts).map(ResponseBody::rejection),
                );
            }
        };
        let slot = match (&self.cache, key) {
            (Some(cache), Some(key)) => match cache.lookup(&key, config.clock.now_unix_nanos()) {
                Lookup::Hit(prepared) => {
                    let outcome: Outcome = Ok(prepared);
                    let applied =
                        apply(&outcome, &path, &mut parts, config, source_ip, start, &span);
                    // The span covers the decision, not the inner service.
                    drop(entered);
                    return match applied {
                        Ok(()) => {
                            ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
                        }
                        Err(refusal) => ResponseFuture::answered(
                            refusal.render(&parts).map(ResponseBody::rejection),
                        ),
                    };
                }
                Lookup::Miss(slot) => Some((cache.clone(), key, slot)),
            },
            _ => None,
        };

        // Read again (it was valid a moment ago) to build the event: the miss
        // path pays for this and for the method ARN, the hit path above does
        // not.
        let method_arn = config.arns.resource(parts.method.as_str(), &path);
        let event = match config.read_identity(&parts, source_ip_text.as_deref(), &path) {
            Ok(identity) => config.event(
                &parts,
                &path,
                method_arn,
                &identity,
                source_ip_text.as_deref(),
            ),
            Err(reason) => {
                let refusal = refuse(GatewayResponseType::Unauthorized, reason, start, &span);
                return ResponseFuture::answered(
                    refusal.render_parts(&parts).map(ResponseBody::rejection),
                );
            }
        };
        drop(entered);
        let path = path.into_owned();
        let authorizer = self.authorizer.clone();
        let config = self.config.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = async move {
            let call =
                async { prepare(authorizer.authorize(event).await) }.instrument(span.clone());
            let outcome = match &slot {
                Some((cache, key, slot)) => {
                    let ttl = cache.ttl_nanos();
                    let clock = config.clock.clone();
                    let outcome = slot
                        .get_or_init(move || clock.now_unix_nanos().saturating_add(ttl), call)
                        .await;
                    if outcome.is_err() {
                        cache.forget(key, slot);
                    }
                    outcome
                }
                None => call.await,
            };
            let applied = {
                let _entered = span.enter();
                apply(
                    &outcome, &path, &mut parts, &config, source_ip, start, &span,
                )
            };
            // The span covers the decision, not the inner service.
            drop(span);
            match applied {
                Ok(()) => inner
                    .call(Request::from_parts(parts, body))
                    .await
                    .map(|response| response.map(ResponseBody::inner)),
                Err(refusal) => Ok(refusal.render(&parts).map(ResponseBody::rejection)),
            }
        };
        ResponseFuture::waiting(Box::pin(future))
    }
}
