//! Which caller a request's [`Level::Key`](crate::Level::Key) bucket belongs
//! to.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::{Extensions, HeaderMap, HeaderName, Method, Uri};
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::context::{ApiKeyContext, RequestContextExt};

use crate::store::CallerKeySource;

/// The parts of a request a key function may read.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (the caller context earlier layers left).
    pub extensions: &'a Extensions,
}

type KeyFn = dyn Fn(&RequestHead<'_>) -> Option<String> + Send + Sync;

#[derive(Clone)]
enum Source {
    ApiKey,
    Principal,
    ClientIp(ClientIpResolver),
    Header(HeaderName),
    Global,
    Custom(Arc<KeyFn>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::ApiKey => f.write_str("ApiKey"),
            Source::Principal => f.write_str("Principal"),
            Source::ClientIp(r) => f.debug_tuple("ClientIp").field(r).finish(),
            Source::Header(h) => f.debug_tuple("Header").field(h).finish(),
            Source::Global => f.write_str("Global"),
            Source::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// How the layer finds the caller's key: one source, or several tried in
/// order ([`or`](Self::or)).
///
/// The default is [`KeyBy::api_key`]: the key the API-key layer accepted,
/// throttled by its usage plan. Every other source is throttled by the
/// layer's [`key_limit`](crate::ThrottleLayer::key_limit).
///
/// ```
/// use portcullis_core::client_ip::ClientIpResolver;
/// use portcullis_throttle::KeyBy;
///
/// // The API key when there is one, else the authenticated caller, else the
/// // client IP.
/// let key_by = KeyBy::api_key().or(KeyBy::principal()).or(KeyBy::client_ip(ClientIpResolver::new()));
/// # let _ = key_by;
/// ```
#[derive(Clone, Debug)]
pub struct KeyBy {
    sources: Vec<Source>,
}

impl Default for KeyBy {
    fn default() -> Self {
        Self::api_key()
    }
}

impl KeyBy {
    fn one(source: Source) -> Self {
        Self {
            sources: vec![source],
        }
    }

    /// The API key in the request's [`ApiKeyContext`] (by its id, never its
    /// value), under its usage plan's throttle.
    #[must_use]
    pub fn api_key() -> Self {
        Self::one(Source::ApiKey)
    }

    /// The principal of the authenticated [`Caller`](portcullis_core::context::Caller).
    #[must_use]
    pub fn principal() -> Self {
        Self::one(Source::Principal)
    }

    /// The client IP, as the core resolver finds it (the peer address, or the
    /// forwarding header when the peer is a trusted proxy).
    #[must_use]
    pub fn client_ip(resolver: ClientIpResolver) -> Self {
        Self::one(Source::ClientIp(resolver))
    }

    /// The value of a request header (a request without it has no key from
    /// this source). The value is not validated: pick a header a trusted
    /// component sets.
    #[must_use]
    pub fn header(name: HeaderName) -> Self {
        Self::one(Source::Header(name))
    }

    /// One key for every request: a single bucket shared by all.
    #[must_use]
    pub fn global() -> Self {
        Self::one(Source::Global)
    }

    /// A key computed by `f`; `None` means this source has no key for the
    /// request.
    #[must_use]
    pub fn function<F>(f: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    {
        Self::one(Source::Custom(Arc::new(f)))
    }

    /// Tries `other` when this finds no key.
    #[must_use]
    pub fn or(mut self, other: KeyBy) -> Self {
        self.sources.extend(other.sources);
        self
    }

    /// Finds the request's key, trying each source in order.
    #[inline]
    pub(crate) fn resolve<'a>(&self, head: &RequestHead<'a>) -> Option<ResolvedKey<'a>> {
        self.sources.iter().find_map(|source| resolve(source, head))
    }
}

/// The bytes of a resolved key.
#[derive(Debug)]
pub(crate) enum KeyBytes<'a> {
    Borrowed(&'a [u8]),
    Ip([u8; 16], usize),
    Owned(Vec<u8>),
}

impl KeyBytes<'_> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Borrowed(b) => b,
            KeyBytes::Ip(b, len) => &b[..*len],
            KeyBytes::Owned(b) => b,
        }
    }
}

/// A resolved caller key.
#[derive(Debug)]
pub(crate) struct ResolvedKey<'a> {
    pub(crate) source: CallerKeySource,
    pub(crate) bytes: KeyBytes<'a>,
    /// The API key, when the key is one (its plan gives the limit).
    pub(crate) api_key: Option<&'a ApiKeyContext>,
}

#[inline]
fn resolve<'a>(source: &Source, head: &RequestHead<'a>) -> Option<ResolvedKey<'a>> {
    let plain = |source, bytes| ResolvedKey {
        source,
        bytes,
        api_key: None,
    };
    match source {
        Source::ApiKey => {
            let ctx = head.extensions.api_key()?;
            Some(ResolvedKey {
                source: CallerKeySource::ApiKey,
                bytes: KeyBytes::Borrowed(ctx.key_id().as_bytes()),
                api_key: Some(ctx),
            })
        }
        Source::Principal => {
            let caller = head.extensions.caller()?;
            Some(plain(
                CallerKeySource::Principal,
                KeyBytes::Borrowed(caller.principal().as_bytes()),
            ))
        }
        Source::ClientIp(resolver) => {
            let ip = resolver.resolve_parts(head.headers, head.extensions)?;
            let mut buf = [0u8; 16];
            let len = match ip {
                IpAddr::V4(v4) => {
                    buf[..4].copy_from_slice(&v4.octets());
                    4
                }
                IpAddr::V6(v6) => {
                    buf.copy_from_slice(&v6.octets());
                    16
                }
            };
            Some(plain(CallerKeySource::ClientIp, KeyBytes::Ip(buf, len)))
        }
        Source::Header(name) => {
            let value = head.headers.get(name)?;
            Some(plain(
                CallerKeySource::Header,
                KeyBytes::Borrowed(value.as_bytes()),
            ))
        }
        Source::Global => Some(plain(CallerKeySource::Global, KeyBytes::Borrowed(&[]))),
        Source::Custom(f) => {
            let key = f(head)?;
            Some(plain(
                CallerKeySource::Custom,
                KeyBytes::Owned(key.into_bytes()),
            ))
        }
    }
}
