//! The types and constants the verification steps share.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, Method, Uri};

use crate::canonical::UriEncoding;
use crate::error::SigV4Error;

/// The only algorithm SigV4 verification accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The `x-amz-content-sha256` value of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The `x-amz-content-sha256` value of an `aws-chunked` body whose chunks are
/// each signed, chained from the request's signature (S3's "transferring
/// payload in multiple chunks").
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// The algorithm line of a chunk's string to sign.
pub(crate) const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
/// SHA-256 of the empty string, in hex: the payload hash of a request with no
/// body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub(crate) static X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
pub(crate) static X_AMZ_SECURITY_TOKEN: HeaderName =
    HeaderName::from_static("x-amz-security-token");
pub(crate) static X_AMZ_CONTENT_SHA256: HeaderName =
    HeaderName::from_static("x-amz-content-sha256");
pub(crate) static X_AMZ_DECODED_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("x-amz-decoded-content-length");

/// The longest presigned validity AWS allows: 7 days.
pub const MAX_EXPIRES_SECONDS: u64 = 7 * 24 * 60 * 60;

/// Verification settings, fixed when the layer is built.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) region: std::sync::Arc<str>,
    pub(crate) service: std::sync::Arc<str>,
    pub(crate) clock_skew_seconds: u64,
    pub(crate) normalize_path: bool,
    pub(crate) uri_encoding: UriEncoding,
    pub(crate) debug: bool,
    pub(crate) allow_unsigned_payload: bool,
    pub(crate) max_authorization_bytes: usize,
    pub(crate) max_signed_headers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            service: "execute-api".into(),
            clock_skew_seconds: 300,
            normalize_path: true,
            uri_encoding: UriEncoding::Double,
            debug: false,
            allow_unsigned_payload: false,
            max_authorization_bytes: 8 * 1024,
            max_signed_headers: 64,
        }
    }
}

/// Where the signature came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureForm {
    /// The `Authorization` header.
    Header,
    /// A presigned URL's query parameters.
    Query,
}

impl SignatureForm {
    /// `header` or `query`, for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Query => "query",
        }
    }
}

/// The parts of a request the signature covers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestView<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
}

/// A request's signature, parsed and checked for form, not yet verified.
#[derive(Clone, Debug)]
pub(crate) struct ParsedSignature<'a> {
    pub(crate) form: SignatureForm,
    pub(crate) access_key_id: Cow<'a, str>,
    pub(crate) scope_date: Cow<'a, str>,
    /// Where the scope's date, region and service end.
    pub(crate) scope_split: ScopeSplit,
    pub(crate) signed_headers: Cow<'a, str>,
    pub(crate) signature: Cow<'a, str>,
    pub(crate) amz_date: Cow<'a, str>,
    pub(crate) timestamp: i64,
    pub(crate) expires: Option<u64>,
    pub(crate) security_token: Option<Cow<'a, str>>,
    pub(crate) content_sha256: Option<&'a str>,
    /// `x-amz-decoded-content-length`, when present and numeric, and read
    /// only for a streaming payload.
    pub(crate) decoded_length: Option<u64>,
    /// The signed header names, already checked when the `Authorization`
    /// header was read in one pass.
    pub(crate) signed_headers_checked: Option<SignedHeadersChecked>,
    /// Whether the signing date came from an `X-Amz-Date` header.
    pub(crate) x_amz_date_header: bool,
}

/// Where the date, region and service end in a credential scope
/// (`YYYYMMDD/region/service/aws4_request`): found once, when the credential
/// is parsed, and read by the scope check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScopeSplit {
    pub(crate) date_end: usize,
    pub(crate) region_end: usize,
    pub(crate) service_end: usize,
}

impl ScopeSplit {
    /// The date, region and service of `scope`, the scope this was found in.
    pub(crate) fn parts(self, scope: &str) -> (&str, &str, &str) {
        (
            scope.get(..self.date_end).unwrap_or(""),
            scope.get(self.date_end + 1..self.region_end).unwrap_or(""),
            scope
                .get(self.region_end + 1..self.service_end)
                .unwrap_or(""),
        )
    }
}

pub(crate) fn incomplete(message: impl Into<Cow<'static, str>>) -> SigV4Error {
    SigV4Error::IncompleteSignature(message.into())
}

pub(crate) fn truncated(value: &str) -> &str {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// What checking the signed header names found, beyond that they are valid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SignedHeadersChecked {
    /// Whether `x-amz-date` is among them.
    pub(crate) includes_x_amz_date: bool,
}
