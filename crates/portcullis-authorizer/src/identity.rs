//! Identity sources: where the authorizer's input comes from, and the cache
//! key made of it.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use http::HeaderName;
use http::request::Parts;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

/// One identity source, in API Gateway's notation.
///
/// | notation | source |
/// |---|---|
/// | `method.request.header.NAME` | a request header (case-insensitive) |
/// | `method.request.querystring.NAME` | a query parameter |
/// | `stageVariables.NAME` | a stage variable configured on the layer |
/// | `context.NAME` | a request-context value: `httpMethod`, `path`, `stage`, `identity.sourceIp`, `identity.userAgent` |
///
/// ```
/// use portcullis_authorizer::IdentitySource;
///
/// let source: IdentitySource = "method.request.header.Authorization".parse()?;
/// assert_eq!(source, IdentitySource::header(http::header::AUTHORIZATION));
/// assert!("method.request.body.x".parse::<IdentitySource>().is_err());
/// # Ok::<(), portcullis_authorizer::IdentitySourceError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IdentitySource {
    /// A request header.
    Header(HeaderName),
    /// A query parameter.
    Query(String),
    /// A stage variable.
    StageVariable(String),
    /// A request-context value.
    Context(ContextSource),
}

/// The request-context values an identity source can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContextSource {
    /// `context.httpMethod`.
    HttpMethod,
    /// `context.path`.
    Path,
    /// `context.stage`.
    Stage,
    /// `context.identity.sourceIp`, from the core client-IP resolver.
    SourceIp,
    /// `context.identity.userAgent`.
    UserAgent,
}

impl ContextSource {
    fn name(self) -> &'static str {
        match self {
            ContextSource::HttpMethod => "httpMethod",
            ContextSource::Path => "path",
            ContextSource::Stage => "stage",
            ContextSource::SourceIp => "identity.sourceIp",
            ContextSource::UserAgent => "identity.userAgent",
        }
    }
}

/// An identity source that is not in API Gateway's notation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid identity source `{source_text}`: {reason}")]
pub struct IdentitySourceError {
    source_text: String,
    reason: &'static str,
}

impl IdentitySource {
    /// A request header.
    #[must_use]
    pub fn header(name: HeaderName) -> Self {
        IdentitySource::Header(name)
    }

    /// A query parameter.
    #[must_use]
    pub fn query(name: impl Into<String>) -> Self {
        IdentitySource::Query(name.into())
    }

    /// A stage variable.
    #[must_use]
    pub fn stage_variable(name: impl Into<String>) -> Self {
        IdentitySource::StageVariable(name.into())
    }
}

impl FromStr for IdentitySource {
    type Err = IdentitySourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| IdentitySourceError {
            source_text: s.to_owned(),
            reason,
        };
        let s = s.trim();
        if let Some(name) = s.strip_prefix("method.request.header.") {
            HeaderName::from_bytes(name.as_bytes())
                .map(IdentitySource::Header)
                .map_err(|_| err("not a valid header name"))
        } else if let Some(name) = s.strip_prefix("method.request.querystring.") {
            if name.is_empty() {
                return Err(err("empty query parameter name"));
            }
            Ok(IdentitySource::Query(name.to_owned()))
        } else if let Some(name) = s.strip_prefix("stageVariables.") {
            if name.is_empty() {
                return Err(err("empty stage variable name"));
            }
            Ok(IdentitySource::StageVariable(name.to_owned()))
        } else if let Some(name) = s.strip_prefix("context.") {
            let source = [
                ContextSource::HttpMethod,
                ContextSource::Path,
                ContextSource::Stage,
                ContextSource::SourceIp,
                ContextSource::UserAgent,
            ]
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                err("unknown context value (httpMethod, path, stage, identity.sourceIp, identity.userAgent)")
            })?;
            Ok(IdentitySource::Context(source))
        } else {
            Err(err(
                "expected method.request.header.X, method.request.querystring.X, stageVariables.X or context.X",
            ))
        }
    }
}

impl TryFrom<String> for IdentitySource {
    type Error = IdentitySourceError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentitySource::Header(name) => write!(f, "method.request.header.{name}"),
            IdentitySource::Query(name) => write!(f, "method.request.querystring.{name}"),
            IdentitySource::StageVariable(name) => write!(f, "stageVariables.{name}"),
            IdentitySource::Context(c) => write!(f, "context.{}", c.name()),
        }
    }
}

impl fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentitySource({self})")
    }
}

impl From<IdentitySource> for String {
    fn from(source: IdentitySource) -> Self {
        source.to_string()
    }
}

/// The last value of query parameter `name` in `query`, percent-decoded.
pub(crate) fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query_pairs(query)
        .filter(|(k, _)| k == name)
        .last()
        .map(|(_, v)| v)
}

/// The query's `name=value` pairs, percent-decoded (`+` is kept, as API
/// Gateway keeps it).
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (
            percent_decode_str(k).decode_utf8_lossy(),
            percent_decode_str(v).decode_utf8_lossy(),
        )
    })
}

/// Reads the identity-source values of a request. Values borrowed from the
/// request where possible.
/// The header value as text when every byte is visible ASCII, a space or a
/// tab: what `HeaderValue::to_str` accepts, checked without an early exit so
/// that the compiler vectorises it (a token-sized value is checked several
/// times faster than byte by byte).
fn visible_str(value: &http::HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((0x20..0x7f).contains(&b) | (b == b'\t'))
    });
    // Every byte is ASCII, so this cannot fail; it costs one fast pass.
    if visible {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

pub(crate) fn read<'r>(
    source: &IdentitySource,
    parts: &'r Parts,
    stage_variables: &'r std::collections::BTreeMap<String, String>,
    stage: &'r str,
    source_ip: Option<&'r str>,
    path: &'r str,
) -> Option<Cow<'r, str>> {
    let value: Cow<'r, str> = match source {
        IdentitySource::Header(name) => {
            let mut values = parts.headers.get_all(name).iter();
            let first = visible_str(values.next()?)?;
            // API Gateway joins repeated headers with commas.
            match values.next() {
                None => Cow::Borrowed(first),
                Some(second) => {
                    let mut joined = format!("{first},{}", visible_str(second)?);
                    for value in values {
                        joined.push(',');
                        joined.push_str(visible_str(value)?);
                    }
                    Cow::Owned(joined)
                }
            }
        }
        IdentitySource::Query(name) => query_param(parts.uri.query()?, name)?,
        IdentitySource::StageVariable(name) => Cow::Borrowed(stage_variables.get(name)?.as_str()),
        IdentitySource::Context(ContextSource::HttpMethod) => Cow::Borrowed(parts.method.as_str()),
        IdentitySource::Context(ContextSource::Path) => Cow::Borrowed(path),
        IdentitySource::Context(ContextSource::Stage) => Cow::Borrowed(stage),
        IdentitySource::Context(ContextSource::SourceIp) => Cow::Borrowed(source_ip?),
        IdentitySource::Context(ContextSource::UserAgent) => {
            Cow::Borrowed(parts.headers.get(http::header::USER_AGENT)?.to_str().ok()?)
        }
    };
    // A present but empty source counts as missing, as in API Gateway.
    (!value.trim().is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_str_accepts_what_to_str_accepts() {
        let mut samples: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b'a', b, b'z']).collect();
        samples.push(b"Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln".to_vec());
        samples.push("caf\u{e9}".as_bytes().to_vec());
        for bytes in samples {
            let Ok(value) = http::HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            assert_eq!(visible_str(&value), value.to_str().ok(), "{bytes:?}");
        }
    }
}
