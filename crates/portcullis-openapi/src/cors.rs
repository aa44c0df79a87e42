//! CORS preflights: which requests are preflights, and the answer an HTTP
//! API gives them.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

pub(crate) fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

pub(crate) fn preflight_response<B, RB: From<Bytes>>(
    cors: &crate::definition::CorsConfig,
    request: &Request<B>,
) -> Response<RB> {
    let mut response = Response::new(RB::from(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("");
    let Some(allowed) = cors.allow_origin(origin) else {
        // Not an allowed origin: no CORS headers, and the browser refuses.
        return response;
    };
    let headers = response.headers_mut();
    let mut set = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if !cors.allow_methods.is_empty() {
        set(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            cors.allow_methods.join(","),
        );
    }
    if !cors.allow_headers.is_empty() {
        set(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            cors.allow_headers.join(","),
        );
    }
    if let Some(age) = cors.max_age {
        set(header::ACCESS_CONTROL_MAX_AGE, age.to_string());
    }
    if cors.allow_credentials {
        set(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".to_owned());
    }
    response
}
