//! The gRPC rendering of a refusal, in the shape of tonic's `Status::into_http`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, percent_encode};

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const APPLICATION_GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

/// The characters tonic percent-encodes in `grpc-message` (its `ENCODING_SET`).
const GRPC_MESSAGE_ENCODING: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}');

/// A gRPC status code, as carried in `grpc-status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// `UNKNOWN` (2).
    Unknown = 2,
    /// `INVALID_ARGUMENT` (3).
    InvalidArgument = 3,
    /// `PERMISSION_DENIED` (7).
    PermissionDenied = 7,
    /// `RESOURCE_EXHAUSTED` (8).
    ResourceExhausted = 8,
    /// `UNIMPLEMENTED` (12).
    Unimplemented = 12,
    /// `INTERNAL` (13).
    Internal = 13,
    /// `UNAVAILABLE` (14).
    Unavailable = 14,
    /// `UNAUTHENTICATED` (16).
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code a refusal with this HTTP status becomes:
    /// 401 is UNAUTHENTICATED, 403 PERMISSION_DENIED, 413 and 429
    /// RESOURCE_EXHAUSTED, 400 and 415 INVALID_ARGUMENT, 404 UNIMPLEMENTED (as
    /// gRPC's own HTTP mapping has it), 502–504 UNAVAILABLE, any other 5xx
    /// INTERNAL, and anything else UNKNOWN.
    #[must_use]
    pub fn from_http_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            413 | 429 => GrpcCode::ResourceExhausted,
            400 | 415 => GrpcCode::InvalidArgument,
            404 => GrpcCode::Unimplemented,
            502..=504 => GrpcCode::Unavailable,
            500..=599 => GrpcCode::Internal,
            _ => GrpcCode::Unknown,
        }
    }

    /// The numeric code.
    #[must_use]
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from(self.as_i32())
    }
}

/// Whether the request is gRPC: its `content-type` is `application/grpc` or
/// starts with `application/grpc+` or `application/grpc;`.
#[must_use]
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .and_then(|ct| ct.strip_prefix(b"application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

pub(super) fn render(code: GrpcCode, message: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, APPLICATION_GRPC);
    headers.insert(GRPC_STATUS, code.header_value());
    if !message.is_empty() {
        let encoded = percent_encode(message.as_bytes(), GRPC_MESSAGE_ENCODING).to_string();
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            headers.insert(GRPC_MESSAGE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h
    }

    #[test]
    fn recognises_grpc_content_types() {
        assert!(is_grpc_request(&headers("application/grpc")));
        assert!(is_grpc_request(&headers("application/grpc+proto")));
        assert!(is_grpc_request(&headers("application/grpc;charset=utf-8")));
        assert!(!is_grpc_request(&headers("application/grpc-web")));
        assert!(!is_grpc_request(&headers("application/json")));
        assert!(!is_grpc_request(&HeaderMap::new()));
    }

    #[test]
    fn maps_http_statuses() {
        let cases = [
            (401, GrpcCode::Unauthenticated),
            (403, GrpcCode::PermissionDenied),
            (429, GrpcCode::ResourceExhausted),
            (413, GrpcCode::ResourceExhausted),
            (500, GrpcCode::Internal),
            (503, GrpcCode::Unavailable),
            (400, GrpcCode::InvalidArgument),
            (404, GrpcCode::Unimplemented),
            (418, GrpcCode::Unknown),
        ];
        for (status, code) in cases {
            let status = StatusCode::from_u16(status).expect("test statuses are valid");
            assert_eq!(GrpcCode::from_http_status(status), code, "{status}");
        }
    }

    #[test]
    fn percent_encodes_the_message_like_tonic() {
        let response = render(GrpcCode::PermissionDenied, "100% <no> {way}?");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "7");
        assert_eq!(
            response.headers()["grpc-message"],
            "100%25%20%3Cno%3E%20%7Bway%7D%3F"
        );
    }
}
