//! The request context: what a policy is evaluated against.

use std::borrow::Cow;
use std::net::IpAddr;

use http::Request;
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::Clock;
use time::OffsetDateTime;

use crate::keys::{ConditionKey, parse_bool, parse_date, time_string};

/// The action API Gateway authorizes: `execute-api:Invoke`.
pub const EXECUTE_API_INVOKE: &str = "execute-api:Invoke";

/// What a policy is evaluated against: who asks, to do what, on which
/// resource, and the condition keys of the request.
///
/// It borrows what it can (`Cow`), so building one per request costs little.
/// The well-known condition keys are `aws:SourceIp`, `aws:CurrentTime` (and
/// `aws:EpochTime`, derived from it), `aws:PrincipalArn`,
/// `aws:SecureTransport` and `aws:UserAgent`; any other key is supplied with
/// [`with_value`](Self::with_value) or [`with_values`](Self::with_values).
/// Key names are case-insensitive, as in IAM.
///
/// ```
/// use std::net::IpAddr;
/// use portcullis_iam::RequestContext;
///
/// let ctx = RequestContext::new(
///     "arn:aws:iam::123456789012:user/alice",
///     "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets",
/// )
/// .with_source_ip(Some("203.0.113.7".parse::<IpAddr>().unwrap()))
/// .with_secure_transport(true)
/// .with_value("aws:SourceVpc", "vpc-1a2b3c4d");
/// assert_eq!(ctx.action(), "execute-api:Invoke");
/// assert_eq!(ctx.principal_arn(), Some("arn:aws:iam::123456789012:user/alice"));
/// ```
#[derive(Clone, Debug)]
pub struct RequestContext<'a> {
    principal_arn: Option<Cow<'a, str>>,
    action: Cow<'a, str>,
    resource: Cow<'a, str>,
    source_ip: Option<IpAddr>,
    current_time: Option<OffsetDateTime>,
    secure_transport: Option<bool>,
    user_agent: Option<Cow<'a, str>>,
    extra: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>,
}

impl<'a> RequestContext<'a> {
    /// A request by `principal_arn` to invoke `resource` (an execute-api ARN,
    /// see [`ExecuteApiArn`](crate::ExecuteApiArn)). The action is
    /// `execute-api:Invoke`.
    pub fn new(principal_arn: impl Into<Cow<'a, str>>, resource: impl Into<Cow<'a, str>>) -> Self {
        let mut ctx = Self::anonymous(resource);
        ctx.principal_arn = Some(principal_arn.into());
        ctx
    }

    /// A request by no authenticated principal: only resource-policy
    /// statements whose `Principal` is `*` can match it.
    pub fn anonymous(resource: impl Into<Cow<'a, str>>) -> Self {
        Self {
            principal_arn: None,
            action: Cow::Borrowed(EXECUTE_API_INVOKE),
            resource: resource.into(),
            source_ip: None,
            current_time: None,
            secure_transport: None,
            user_agent: None,
            extra: Vec::new(),
        }
    }

    /// A context for `request`: the client IP from `resolver` (`aws:SourceIp`),
    /// the time from `clock` (`aws:CurrentTime`), `aws:UserAgent` from the
    /// `User-Agent` header, and `aws:SecureTransport` true when the request URI
    /// has the `https` scheme (behind a TLS-terminating proxy, set it with
    /// [`with_secure_transport`](Self::with_secure_transport)).
    pub fn from_request<B>(
        request: &'a Request<B>,
        principal_arn: Option<&'a str>,
        resource: impl Into<Cow<'a, str>>,
        resolver: &ClientIpResolver,
        clock: &dyn Clock,
    ) -> Self {
        let mut ctx = Self::anonymous(resource);
        ctx.principal_arn = principal_arn.map(Cow::Borrowed);
        ctx.source_ip = resolver.resolve(request);
        ctx.current_time = Some(clock.now());
        ctx.secure_transport = Some(request.uri().scheme() == Some(&http::uri::Scheme::HTTPS));
        ctx.user_agent = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed);
        ctx
    }

    /// Sets the action (default `execute-api:Invoke`).
    #[must_use]
    pub fn with_action(mut self, action: impl Into<Cow<'a, str>>) -> Self {
        self.action = action.into();
        self
    }

    /// Sets the principal.
    #[must_use]
    pub fn with_principal_arn(mut self, principal_arn: Option<impl Into<Cow<'a, str>>>) -> Self {
        self.principal_arn = principal_arn.map(Into::into);
        self
    }

    /// Sets `aws:SourceIp`, as resolved by
    /// [`ClientIpResolver`](portcullis_core::client_ip::ClientIpResolver).
    #[must_use]
    pub fn with_source_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip.map(|ip| ip.to_canonical());
        self
    }

    /// Sets `aws:CurrentTime` (and so `aws:EpochTime`).
    #[must_use]
    pub fn with_current_time(mut self, now: OffsetDateTime) -> Self {
        self.current_time = Some(now);
        self
    }

    /// Sets `aws:SecureTransport`.
    #[must_use]
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = Some(secure);
        self
    }

    /// Sets `aws:UserAgent`.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<Cow<'a, str>>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sets another condition key to one value (it replaces any earlier
    /// value of the same key).
    #[must_use]
    pub fn with_value(self, key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Self {
        self.with_values(key, [value])
    }

    /// Sets a multi-valued condition key, for `ForAnyValue:` and
    /// `ForAllValues:` (an empty list counts as absent).
    #[must_use]
    pub fn with_values<I, V>(mut self, key: impl Into<Cow<'a, str>>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Cow<'a, str>>,
    {
        let key = key.into();
        let values = values.into_iter().map(Into::into).collect();
        self.extra.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
        self.extra.push((key, values));
        self
    }

    /// The principal's ARN, or `None` for an anonymous request.
    #[must_use]
    pub fn principal_arn(&self) -> Option<&str> {
        self.principal_arn.as_deref()
    }

    /// The action.
    #[must_use]
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The resource ARN.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// `aws:SourceIp`.
    #[must_use]
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source_ip
    }

    /// `aws:CurrentTime`.
    #[must_use]
    pub fn current_time(&self) -> Option<OffsetDateTime> {
        self.current_time
    }

    /// `aws:SecureTransport`.
    #[must_use]
    pub fn secure_transport(&self) -> Option<bool> {
        self.secure_transport
    }

    /// `aws:UserAgent`.
    #[must_use]
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// The values of any condition key, well-known or supplied, as strings.
    #[must_use]
    pub fn values_of(&self, key: &str) -> Vec<String> {
        let key = ConditionKey::parse(key);
        self.lookup(&key)
            .iter()
            .map(|v| v.as_string().into_owned())
            .collect()
    }

    pub(crate) fn lookup(&self, key: &ConditionKey) -> Values<'_> {
        match key {
            ConditionKey::SourceIp => self.source_ip.map(ContextValue::Ip).into(),
            ConditionKey::CurrentTime => self.current_time.map(ContextValue::Time).into(),
            ConditionKey::EpochTime => self
                .current_time
                .map(|t| ContextValue::Number(t.unix_timestamp() as f64))
                .into(),
            ConditionKey::PrincipalArn => {
                self.principal_arn.as_deref().map(ContextValue::Str).into()
            }
            ConditionKey::SecureTransport => self.secure_transport.map(ContextValue::Bool).into(),
            ConditionKey::UserAgent => self.user_agent.as_deref().map(ContextValue::Str).into(),
            ConditionKey::Other(name) => self
                .extra
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map_or(Values::None, |(_, v)| Values::Many(v)),
        }
    }
}

/// One value of a condition key in the request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ContextValue<'a> {
    Str(&'a str),
    Ip(IpAddr),
    Time(OffsetDateTime),
    Bool(bool),
    Number(f64),
}

impl ContextValue<'_> {
    pub(crate) fn as_string(&self) -> Cow<'_, str> {
        match self {
            ContextValue::Str(s) => Cow::Borrowed(s),
            ContextValue::Ip(ip) => Cow::Owned(ip.to_string()),
            ContextValue::Time(t) => time_string(*t),
            ContextValue::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            ContextValue::Number(n) => Cow::Owned(n.to_string()),
        }
    }

    pub(crate) fn as_number(&self) -> Option<f64> {
        match self {
            ContextValue::Number(n) => Some(*n),
            ContextValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn as_unix_nanos(&self) -> Option<i128> {
        match self {
            ContextValue::Time(t) => Some(t.unix_timestamp_nanos()),
            ContextValue::Str(s) => parse_date(s),
            ContextValue::Number(n) if n.is_finite() => Some((*n as i128) * 1_000_000_000),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            ContextValue::Bool(b) => Some(*b),
            ContextValue::Str(s) => parse_bool(s),
            _ => None,
        }
    }

    pub(crate) fn as_ip(&self) -> Option<IpAddr> {
        match self {
            ContextValue::Ip(ip) => Some(*ip),
            ContextValue::Str(s) => s.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical()),
            _ => None,
        }
    }
}

/// The values of one key in the request: none, one, or a list.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Values<'a> {
    None,
    One(ContextValue<'a>),
    Many(&'a [Cow<'a, str>]),
}

impl<'a> From<Option<ContextValue<'a>>> for Values<'a> {
    fn from(value: Option<ContextValue<'a>>) -> Self {
        value.map_or(Values::None, Values::One)
    }
}

impl<'a> Values<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Values::None => true,
            Values::One(_) => false,
            Values::Many(list) => list.is_empty(),
        }
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = ContextValue<'a>> {
        let (one, many) = match self {
            Values::None => (None, &[][..]),
            Values::One(v) => (Some(v), &[][..]),
            Values::Many(list) => (None, list),
        };
        one.into_iter()
            .chain(many.iter().map(|s| ContextValue::Str(s.as_ref())))
    }
}
