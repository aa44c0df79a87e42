//! [`TokenSource`]: where the token is found in a request.

use std::borrow::Cow;

use http::{HeaderMap, Uri};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use crate::reject::JwtRefusal;

/// Where the layer looks for the token.
///
/// ```
/// use portcullis_jwt::TokenSource;
///
/// assert_eq!(TokenSource::default(), TokenSource::bearer());
/// let from_cookie = TokenSource::Cookie("id_token".into());
/// # let _ = from_cookie;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenSource {
    /// A header. With a `scheme` (`Bearer` for `Authorization`), the value is
    /// `<scheme> <token>`; a bare token with no space is also taken, as API
    /// Gateway's Cognito authorizer takes it. A value with another scheme
    /// (`Basic ...`) counts as no token.
    Header {
        /// The header name.
        name: String,
        /// The authentication scheme, matched case-insensitively.
        #[serde(default)]
        scheme: Option<String>,
    },
    /// A cookie of this name.
    Cookie(String),
    /// A query parameter of this name (percent-decoded).
    Query(String),
}

impl TokenSource {
    /// `Authorization: Bearer <token>`, the default.
    #[must_use]
    pub fn bearer() -> Self {
        TokenSource::Header {
            name: "authorization".to_owned(),
            scheme: Some("Bearer".to_owned()),
        }
    }

    /// The token in the request, if any. `max_bytes` is checked on the raw
    /// value, before any decoding.
    pub(crate) fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
        max_bytes: usize,
    ) -> Result<Option<Cow<'a, [u8]>>, JwtRefusal> {
        let token: Option<Cow<'a, [u8]>> = match self {
            TokenSource::Header { name, scheme } => {
                let Some(value) = headers.get(name.as_str()) else {
                    return Ok(None);
                };
                // The scheme and its space are allowed on top of the limit.
                if value.len() > max_bytes.saturating_add(16) {
                    return Err(JwtRefusal::TokenTooLarge);
                }
                // Bytes, not text: a cache hit compares the token's digest
                // with that of a token already verified (and so already
                // valid UTF-8); a miss checks UTF-8 before parsing.
                let value = value.as_bytes().trim_ascii();
                match scheme {
                    None => Some(Cow::Borrowed(value)),
                    Some(scheme) => match value.iter().position(|b| *b == b' ') {
                        Some(space) if value[..space].eq_ignore_ascii_case(scheme.as_bytes()) => {
                            Some(Cow::Borrowed(value[space + 1..].trim_ascii_start()))
                        }
                        Some(_) => None,
                        None if value.eq_ignore_ascii_case(scheme.as_bytes()) => None,
                        None => Some(Cow::Borrowed(value)),
                    },
                }
            }
            TokenSource::Cookie(name) => {
                let mut found = None;
                for header in headers.get_all(http::header::COOKIE) {
                    if header.len() > max_bytes.saturating_mul(4) {
                        return Err(JwtRefusal::TokenTooLarge);
                    }
                    let Ok(header) = header.to_str() else {
                        continue;
                    };
                    for pair in header.split(';') {
                        if let Some((k, v)) = pair.trim().split_once('=')
                            && k == name
                        {
                            found = Some(Cow::Borrowed(v.trim_matches('"').as_bytes()));
                        }
                    }
                }
                found
            }
            TokenSource::Query(name) => {
                let query = uri.query().unwrap_or_default();
                let mut found = None;
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if percent_decode_str(k)
                        .decode_utf8()
                        .is_ok_and(|k| k == name.as_str())
                    {
                        if v.len() > max_bytes.saturating_mul(3) {
                            return Err(JwtRefusal::TokenTooLarge);
                        }
                        found = Some(
                            match percent_decode_str(v)
                                .decode_utf8()
                                .map_err(|_| JwtRefusal::Malformed)?
                            {
                                Cow::Borrowed(v) => Cow::Borrowed(v.as_bytes()),
                                Cow::Owned(v) => Cow::Owned(v.into_bytes()),
                            },
                        );
                    }
                }
                found
            }
        };
        match token {
            Some(token) if token.is_empty() => Ok(None),
            Some(token) if token.len() > max_bytes => Err(JwtRefusal::TokenTooLarge),
            other => Ok(other),
        }
    }
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource::bearer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().expect("valid header"));
        }
        map
    }

    #[test]
    fn finds_bearer_tokens() {
        let uri = Uri::from_static("/");
        let source = TokenSource::bearer();
        let h = headers(&[("authorization", "Bearer abc.def.ghi")]);
        assert_eq!(
            source.extract(&h, &uri, 100).unwrap().as_deref(),
            Some(&b"abc.def.ghi"[..])
        );
        let h = headers(&[("authorization", "bearer   abc")]);
        assert_eq!(
            source.extract(&h, &uri, 100).unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        let h = headers(&[("authorization", "abc.def.ghi")]);
        assert_eq!(
            source.extract(&h, &uri, 100).unwrap().as_deref(),
            Some(&b"abc.def.ghi"[..])
        );
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(source.extract(&h, &uri, 100).unwrap(), None);
        let h = headers(&[("authorization", "Bearer")]);
        assert_eq!(source.extract(&h, &uri, 100).unwrap(), None);
        assert_eq!(source.extract(&HeaderMap::new(), &uri, 100).unwrap(), None);
        let h = headers(&[("authorization", "Bearer 0123456789")]);
        assert_eq!(source.extract(&h, &uri, 5), Err(JwtRefusal::TokenTooLarge));
    }

    #[test]
    fn finds_cookie_and_query_tokens() {
        let uri = Uri::from_static("/x?a=1&access_token=a%2Eb.c");
        let q = TokenSource::Query("access_token".into());
        assert_eq!(
            q.extract(&HeaderMap::new(), &uri, 100).unwrap().as_deref(),
            Some(&b"a.b.c"[..])
        );
        let c = TokenSource::Cookie("id".into());
        let h = headers(&[("cookie", "x=1; id=t.o.k"), ("cookie", "y=2")]);
        assert_eq!(
            c.extract(&h, &uri, 100).unwrap().as_deref(),
            Some(&b"t.o.k"[..])
        );
    }
}
