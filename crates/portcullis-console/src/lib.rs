#![doc = include_str!("../README.md")]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

/// The Content-Security-Policy of every answer: scripts, styles and calls
/// from the console's own origin only, no inline script or style, no
/// plugin, no framing, no form submission, no `<base>`, and Trusted Types
/// enforced so that no string can reach an HTML sink such as `innerHTML`.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
     trusted-types 'none'";

/// The embedded assets: (path under the mount, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "/assets/sigv4.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/sigv4.js"),
    ),
    (
        "/assets/console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
];

/// The page, with `{{api_path}}`, `{{region}}` and `{{api_stage}}` filled
/// in (HTML-escaped) when the console is built.
const INDEX_TEMPLATE: &str = include_str!("assets/index.html");

const HTML: &str = "text/html; charset=utf-8";

/// The usage-plan console as a Tower service: its page and assets, all
/// embedded in the binary. See the [crate docs](crate).
///
/// It answers `GET` and `HEAD` for:
/// - the mount path (default `/console`): a `308` to the mount path with a
///   trailing `/`;
/// - `{mount}/` and `{mount}/index.html`: the page;
/// - `{mount}/assets/app.js`, `{mount}/assets/sigv4.js`,
///   `{mount}/assets/console.css`;
///
/// and `404` for any other path, `405` for other methods. Every answer
/// carries [`CONTENT_SECURITY_POLICY_VALUE`] and the other security headers.
///
/// Mount it where it sees the full path (axum's `route_service`, not
/// `nest_service`, which strips the prefix), on the same origin as the
/// management API it calls.
#[derive(Clone)]
pub struct Console {
    settings: Arc<Settings>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        f.debug_struct("Console")
            .field("mount_path", &s.mount_path)
            .field("api_path", &s.api_path)
            .field("region", &s.region)
            .field("api_stage", &s.api_stage)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Settings {
    mount_path: String,
    api_path: String,
    region: String,
    api_stage: String,
    index: Bytes,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    /// A console mounted at `/console`, calling the management API at
    /// `/admin`, region `us-east-1`, with no default API stage.
    #[must_use]
    pub fn new() -> Self {
        let mut settings = Settings {
            mount_path: "/console".to_owned(),
            api_path: "/admin".to_owned(),
            region: "us-east-1".to_owned(),
            api_stage: String::new(),
            index: Bytes::new(),
        };
        settings.index = settings.render();
        Self {
            settings: Arc::new(settings),
        }
    }

    fn update(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Arc::unwrap_or_clone(self.settings);
        change(&mut settings);
        settings.index = settings.render();
        Self {
            settings: Arc::new(settings),
        }
    }

    /// Where the console is mounted (default `/console`): a leading `/` is
    /// added and trailing ones removed.
    #[must_use]
    pub fn mount_path(self, path: impl AsRef<str>) -> Self {
        let path = normalize_path(path.as_ref());
        self.update(|s| s.mount_path = path)
    }

    /// The path of API Gateway's management API on the same origin (default
    /// `/admin`), which the page signs its calls for.
    #[must_use]
    pub fn api_path(self, path: impl AsRef<str>) -> Self {
        let path = normalize_path(path.as_ref());
        self.update(|s| s.api_path = path)
    }

    /// The region the sign-in form proposes (default `us-east-1`), the one
    /// the management API's SigV4 layer checks.
    #[must_use]
    pub fn region(self, region: impl Into<String>) -> Self {
        let region = region.into();
        self.update(|s| s.region = region)
    }

    /// The API stage (`apiId` and stage name) the new-plan form proposes.
    #[must_use]
    pub fn api_stage(self, api_id: impl AsRef<str>, stage: impl AsRef<str>) -> Self {
        let value = format!("{}:{}", api_id.as_ref(), stage.as_ref());
        self.update(|s| s.api_stage = value)
    }

    /// The path the console is mounted at.
    #[must_use]
    pub fn mount(&self) -> &str {
        &self.settings.mount_path
    }

    fn answer(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let settings = &self.settings;
        let Some(rest) = path.strip_prefix(settings.mount_path.as_str()) else {
            return not_found();
        };
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let (status, content_type, body, cache) = match rest {
            "" => {
                let mut response = plain(StatusCode::PERMANENT_REDIRECT, "");
                let location = format!("{}/", settings.mount_path);
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                return response;
            }
            "/" | "/index.html" => (StatusCode::OK, HTML, settings.index.clone(), "no-store"),
            _ => match ASSETS.iter().find(|(name, _, _)| *name == rest) {
                Some((_, content_type, bytes)) => (
                    StatusCode::OK,
                    *content_type,
                    Bytes::from_static(bytes),
                    "no-cache",
                ),
                None => return not_found(),
            },
        };
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            body
        };
        let mut response = secured(status, body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
        response
    }
}

/// `/` + the path without surrounding slashes; the empty string for the root
/// (so that `{mount}/` is `/`).
fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

impl Settings {
    fn render(&self) -> Bytes {
        let api_path = if self.api_path.is_empty() {
            "/"
        } else {
            self.api_path.as_str()
        };
        Bytes::from(
            INDEX_TEMPLATE
                .replace("{{api_path}}", &escape_html(api_path))
                .replace("{{region}}", &escape_html(&self.region))
                .replace("{{api_stage}}", &escape_html(&self.api_stage)),
        )
    }
}

/// Escapes text for an HTML attribute value or text node (the five
/// characters that can end either).
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A response with the console's security headers.
fn secured(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = secured(status, Bytes::from_static(text.as_bytes()));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_found() -> Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "Not Found")
}

impl<B> tower_service::Service<Request<B>> for Console {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.answer(request.method(), request.uri().path())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_escaped_into_the_page() {
        let console = Console::new().region("eu-west-1\"><script>x</script>");
        let page = String::from_utf8_lossy(&console.settings.index).into_owned();
        assert!(page.contains("eu-west-1&quot;&gt;&lt;script&gt;x&lt;/script&gt;"));
        assert!(!page.contains("<script>x"));
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path("console/"), "/console");
        assert_eq!(normalize_path("/ops/console//"), "/ops/console");
        assert_eq!(normalize_path("/"), "");
    }
}
