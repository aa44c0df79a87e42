//! The one canonical request path that every decision naming a resource
//! reads.
//!
//! A request path has many spellings: `/loyalty/C-1004/get`,
//! `/loyalty/C%2D1004/get` and `/loyalty/%43-1004/get` are one resource to
//! the service behind the gateway (axum decodes `{customerId}` before the
//! handler sees it), so they must be one resource to every access decision
//! too. Otherwise an IAM `Deny`, a `NotResource` or a narrow `Allow` is
//! bypassed by re-spelling the path.
//!
//! [`CanonicalPath`] is that one reading. Every Portcullis decision that
//! names a resource uses it:
//!
//! - the execute-api resource ARN that IAM policies are evaluated against
//!   (the SigV4 layer, and through it the identity pool's role policies);
//! - a custom authorizer's `methodArn` and its REQUEST `path`;
//! - per-method throttle selectors such as `/pets/GET`;
//! - the routes of the usage admin service.
//!
//! The WAF is the exception, on purpose: AWS WAF inspects the URI as the
//! client sent it, and its text transformations (`URL_DECODE`,
//! `NORMALIZE_PATH`, ...) decode it when a rule asks them to.
//!
//! # The rules
//!
//! They follow what API Gateway does: it percent-decodes a request path once
//! before it matches the path against its resources and before it builds the
//! `methodArn`, and it splits resources on `/`.
//!
//! 1. The input is the path of the request target as sent (`Uri::path()`),
//!    without the query. It must start with `/`; anything else (`OPTIONS *`)
//!    is refused with MISSING_AUTHENTICATION_TOKEN, as API Gateway answers a
//!    request that matches no resource.
//! 2. Every `%HH` triplet is decoded once, whatever the case of its hex digits
//!    (`%2d` and `%2D` are both `-`). This covers the unreserved characters
//!    (`A-Z a-z 0-9 - . _ ~`), which RFC 3986 says are the same encoded or
//!    not, and every other byte, as the service's router decodes them. The
//!    result is never decoded again: `%2541` is the three characters `%41`.
//! 3. A `%` that does not start a triplet of hex digits is malformed:
//!    refused with DEFAULT_4XX (400 `Bad Request`).
//! 4. The decoded bytes must be UTF-8, and must not contain control
//!    characters (`%00`-`%1F`, `%7F`): otherwise DEFAULT_4XX (400).
//! 5. `%2F` (an encoded `/`) is refused with MISSING_AUTHENTICATION_TOKEN:
//!    API Gateway splits on the decoded `/`, while axum's router keeps
//!    `a%2Fb` as one segment, so the two cannot agree on which resource it
//!    names.
//! 6. Dot segments (`.` and `..`, in any spelling: `%2E`, `.%2e`, ...) and
//!    empty segments (`//`) are refused with MISSING_AUTHENTICATION_TOKEN.
//!    Some services and proxies resolve or collapse them and others don't,
//!    so they cannot name one resource. A trailing `/` is kept: `/pets/` and
//!    `/pets` are different routes to axum, and stay different here.
//! 7. `+` is a plus sign, not a space: in a path (unlike a form-encoded query)
//!    it has no other meaning. `%2B` decodes to `+` too.
//!
//! A path with no `%`, no dot segment and no empty segment (almost every
//! request) is its own canonical form, and costs one scan and no
//! allocation.
//!
//! # Example
//!
//! ```
//! use portcullis_core::path::{CanonicalPath, PathRefusal};
//!
//! let spellings = ["/loyalty/C-1004/get", "/loyalty/C%2D1004/get", "/loyalty/%43-1004/get", "/loyalty/C-100%34/get"];
//! for spelling in spellings {
//!     assert_eq!(CanonicalPath::parse(spelling).unwrap().as_str(), "/loyalty/C-1004/get");
//! }
//!
//! // What cannot name one resource is refused.
//! assert_eq!(CanonicalPath::parse("/loyalty/C-1004%2Fget"), Err(PathRefusal::EncodedSlash));
//! assert_eq!(CanonicalPath::parse("/admin/../loyalty"), Err(PathRefusal::DotSegment));
//! assert_eq!(CanonicalPath::parse("/a/%2e%2E/b"), Err(PathRefusal::DotSegment));
//! assert_eq!(CanonicalPath::parse("//loyalty"), Err(PathRefusal::EmptySegment));
//! assert_eq!(CanonicalPath::parse("/a%zz"), Err(PathRefusal::MalformedEncoding));
//! assert_eq!(CanonicalPath::parse("/%FF"), Err(PathRefusal::InvalidUtf8));
//!
//! // A refusal is a gateway response, as API Gateway would answer.
//! let refusal = PathRefusal::DotSegment.gateway_response();
//! assert_eq!(refusal.kind().as_str(), "MISSING_AUTHENTICATION_TOKEN");
//! ```

use std::borrow::Cow;
use std::fmt;

use http::Uri;

use crate::{GatewayResponse, GatewayResponseType};

/// The canonical form of a request path: see the [module docs](self) for
/// the rules.
///
/// It borrows the request's path when that is already canonical, and owns
/// the decoded text otherwise.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CanonicalPath<'a>(Cow<'a, str>);

/// Why a request path has no canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathRefusal {
    /// The path does not start with `/` (such as `OPTIONS *`).
    #[error("the request path does not start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the request path has a malformed percent-encoding")]
    MalformedEncoding,
    /// The decoded path is not UTF-8.
    #[error("the request path does not decode to UTF-8")]
    InvalidUtf8,
    /// The decoded path holds a control character, such as `%00`.
    #[error("the request path holds a control character")]
    ControlCharacter,
    /// An encoded `/` (`%2F`).
    #[error("the request path holds an encoded '/'")]
    EncodedSlash,
    /// A `.` or `..` segment, in any spelling.
    #[error("the request path holds a dot segment")]
    DotSegment,
    /// An empty segment (`//`).
    #[error("the request path holds an empty segment")]
    EmptySegment,
}

impl PathRefusal {
    /// The gateway response API Gateway would give: MISSING_AUTHENTICATION_TOKEN
    /// (403) for a path that matches no resource, DEFAULT_4XX (400) for one
    /// that cannot be decoded.
    pub fn gateway_response(self) -> GatewayResponse {
        match self {
            PathRefusal::MalformedEncoding
            | PathRefusal::InvalidUtf8
            | PathRefusal::ControlCharacter => {
                GatewayResponse::new(GatewayResponseType::Default4xx)
            }
            PathRefusal::NotAbsolute
            | PathRefusal::EncodedSlash
            | PathRefusal::DotSegment
            | PathRefusal::EmptySegment => {
                GatewayResponse::new(GatewayResponseType::MissingAuthenticationToken)
            }
        }
    }
}

impl<'a> CanonicalPath<'a> {
    /// The canonical form of `path`, the path of a request target as sent.
    ///
    /// # Errors
    ///
    /// A [`PathRefusal`] when the path cannot be made unambiguous.
    pub fn parse(path: &'a str) -> Result<Self, PathRefusal> {
        if !path.starts_with('/') {
            return Err(PathRefusal::NotAbsolute);
        }
        if !path.as_bytes().contains(&b'%') {
            check_segments(path)?;
            if path.bytes().any(is_control) {
                return Err(PathRefusal::ControlCharacter);
            }
            return Ok(CanonicalPath(Cow::Borrowed(path)));
        }
        let decoded = decode(path)?;
        check_segments(&decoded)?;
        Ok(CanonicalPath(Cow::Owned(decoded)))
    }

    /// The canonical form of a URI's path.
    ///
    /// # Errors
    ///
    /// A [`PathRefusal`] when the path cannot be made unambiguous.
    pub fn of_uri(uri: &'a Uri) -> Result<Self, PathRefusal> {
        Self::parse(uri.path())
    }

    /// The canonical path, decoded text starting with `/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the path was already canonical as sent.
    #[must_use]
    pub fn is_as_sent(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    /// The canonical path as an owned string.
    #[must_use]
    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl std::ops::Deref for CanonicalPath<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CanonicalPath<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CanonicalPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CanonicalPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

/// Rule 6: no `.`, `..` or empty segment; a trailing `/` is kept.
fn check_segments(path: &str) -> Result<(), PathRefusal> {
    // `path` starts with '/', so the first split item is the empty string
    // before it.
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return Err(PathRefusal::DotSegment),
            "" if segments.peek().is_some() => return Err(PathRefusal::EmptySegment),
            _ => {}
        }
    }
    Ok(())
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Rules 2-5: decode every triplet once.
fn decode(path: &str) -> Result<String, PathRefusal> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let high = bytes.get(i + 1).copied().and_then(hex_value);
            let low = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(high), Some(low)) = (high, low) else {
                return Err(PathRefusal::MalformedEncoding);
            };
            let decoded = high << 4 | low;
            if decoded == b'/' {
                return Err(PathRefusal::EncodedSlash);
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    if out.iter().copied().any(is_control) {
        return Err(PathRefusal::ControlCharacter);
    }
    String::from_utf8(out).map_err(|_| PathRefusal::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_paths_borrow() {
        for path in [
            "/",
            "/pets",
            "/pets/",
            "/a+b/c",
            "/a.b/..c/.d",
            "/~user/x_y-z",
        ] {
            let canonical = CanonicalPath::parse(path).expect("a canonical path parses");
            assert!(canonical.is_as_sent(), "{path}");
            assert_eq!(canonical.as_str(), path);
        }
    }

    #[test]
    fn every_triplet_decodes_once() {
        let cases = [
            ("/%41%62", "/Ab"),
            ("/a%2Bb", "/a+b"),
            ("/a%20b", "/a b"),
            ("/a%2541", "/a%41"),
            ("/caf%C3%A9", "/café"),
            ("/caf%c3%a9", "/café"),
            ("/%7Euser", "/~user"),
            ("/a/%2e%2e%2e", "/a/..."),
        ];
        for (path, expected) in cases {
            assert_eq!(
                CanonicalPath::parse(path).map(CanonicalPath::into_owned),
                Ok(expected.to_owned()),
                "{path}"
            );
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            ("*", PathRefusal::NotAbsolute),
            ("", PathRefusal::NotAbsolute),
            ("/a%2fb", PathRefusal::EncodedSlash),
            ("/a%2Fb", PathRefusal::EncodedSlash),
            ("/a/./b", PathRefusal::DotSegment),
            ("/a/..", PathRefusal::DotSegment),
            ("/a/%2E/b", PathRefusal::DotSegment),
            ("/a/.%2e/b", PathRefusal::DotSegment),
            ("/a//b", PathRefusal::EmptySegment),
            ("//", PathRefusal::EmptySegment),
            ("/a%", PathRefusal::MalformedEncoding),
            ("/a%4", PathRefusal::MalformedEncoding),
            ("/a%g1", PathRefusal::MalformedEncoding),
            ("/a%00", PathRefusal::ControlCharacter),
            ("/a%0A", PathRefusal::ControlCharacter),
            ("/a%7f", PathRefusal::ControlCharacter),
            ("/a%C3", PathRefusal::InvalidUtf8),
            ("/a%C0%AF", PathRefusal::InvalidUtf8),
        ];
        for (path, refusal) in cases {
            assert_eq!(CanonicalPath::parse(path), Err(refusal), "{path}");
        }
    }

    #[test]
    fn refusals_render_as_api_gateway_would() {
        assert_eq!(
            PathRefusal::EncodedSlash.gateway_response().kind(),
            GatewayResponseType::MissingAuthenticationToken
        );
        assert_eq!(
            PathRefusal::InvalidUtf8.gateway_response().kind(),
            GatewayResponseType::Default4xx
        );
    }

    fn encode(path: &str, choices: &[u8]) -> String {
        let mut out = String::new();
        for (i, ch) in path.chars().enumerate() {
            let choice = choices.get(i % choices.len().max(1)).copied().unwrap_or(0);
            if ch == '/' || choice % 3 == 0 {
                out.push(ch);
            } else {
                let mut buf = [0; 4];
                for byte in ch.encode_utf8(&mut buf).bytes() {
                    if choice % 3 == 1 {
                        out.push_str(&format!("%{byte:02X}"));
                    } else {
                        out.push_str(&format!("%{byte:02x}"));
                    }
                }
            }
        }
        out
    }

    proptest! {
        /// Any spelling of a canonical path has that canonical path.
        #[test]
        fn every_spelling_has_one_canonical_form(
            segments in prop::collection::vec("[A-Za-z0-9._~!$&'()*+,;=:@-]{1,8}|[é€]{1,2}", 0..5),
            trailing in any::<bool>(),
            choices in prop::collection::vec(any::<u8>(), 1..32),
        ) {
            let mut path: String = segments.iter().map(|s| format!("/{s}")).collect();
            if path.is_empty() || trailing {
                path.push('/');
            }
            let dot_segment = segments.iter().any(|s| s == "." || s == "..");
            prop_assume!(!dot_segment);
            let canonical = CanonicalPath::parse(&path).map(CanonicalPath::into_owned);
            // Raw non-ASCII is not a valid request target; its canonical
            // form is its decoded text.
            let expected = path.clone();
            let spelled = encode(&path, &choices);
            prop_assert_eq!(CanonicalPath::parse(&spelled).map(CanonicalPath::into_owned), Ok(expected.clone()));
            if path.is_ascii() {
                prop_assert_eq!(canonical, Ok(expected));
            }
        }

        /// Parsing never panics, and a canonical path is a fixed point.
        #[test]
        fn canonical_is_a_fixed_point(path in "/[ -~]{0,40}") {
            if let Ok(canonical) = CanonicalPath::parse(&path) {
                let text = canonical.as_str();
                if !text.contains('%') {
                    prop_assert_eq!(CanonicalPath::parse(text).map(CanonicalPath::into_owned), Ok(text.to_owned()));
                }
            }
        }
    }
}
