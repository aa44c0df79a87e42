//! The HTTP client that fetches JWKS and discovery documents.
//!
//! hyper-util's legacy client with hyper-rustls, on rustls' aws-lc-rs provider:
//! the hyper 1 stack the workspace already builds on, the same crypto library
//! as the `jsonwebtoken` backend, and no second HTTP stack. reqwest would add
//! its own layer of features (cookies, redirects, proxies, decompression) that a
//! key fetch does not need. The provider is named explicitly, so the client
//! works whichever rustls crypto features other crates of a binary enable.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The largest JWKS or discovery document read. Real ones are a few KB.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub(crate) struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {0}")]
    Status(http::StatusCode),
    #[error("body unreadable or over {MAX_DOCUMENT_BYTES} bytes: {0}")]
    Body(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    pub(crate) fn new(timeout: Duration) -> Result<Self, String> {
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| e.to_string())?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { client, timeout })
    }

    /// GETs `url` and returns its body, bounded in size and time.
    pub(crate) async fn get(&self, url: &Uri) -> Result<Bytes, FetchError> {
        let request = Request::get(url.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "portcullis-jwt")
            .body(Empty::new())
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Request(e.to_string()))?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| FetchError::Body(e.to_string()))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }
}

/// Parses a key URL: `https://`, or `http://` on loopback (or anywhere when
/// `allow_insecure` is set).
pub(crate) fn key_url(url: &str, allow_insecure: bool) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let host = uri.host().ok_or("the URL has no host")?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_insecure || is_loopback(host) => Ok(uri),
        Some("http") => Err(
            "plain http:// is allowed only on loopback; use https:// or allow_insecure_http"
                .to_owned(),
        ),
        _ => Err("the URL must be https://".to_owned()),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls_need_tls_except_on_loopback() {
        assert!(
            key_url(
                "https://cognito-idp.eu-west-1.amazonaws.com/x/.well-known/jwks.json",
                false
            )
            .is_ok()
        );
        assert!(key_url("http://127.0.0.1:9000/jwks", false).is_ok());
        assert!(key_url("http://[::1]:9000/jwks", false).is_ok());
        assert!(key_url("http://localhost/jwks", false).is_ok());
        assert!(key_url("http://example.com/jwks", false).is_err());
        assert!(key_url("http://example.com/jwks", true).is_ok());
        assert!(key_url("ftp://example.com/jwks", true).is_err());
        assert!(key_url("not a url", true).is_err());
    }
}
