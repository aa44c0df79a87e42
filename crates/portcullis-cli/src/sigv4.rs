//! `portcullis sigv4 verify`: checks the signature of a raw HTTP request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use portcullis_core::clock::ManualClock;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::canonical::UriEncoding;
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::{ServiceBuilder, ServiceExt};

use crate::raw::RawRequest;
use crate::{Failure, Report};

/// The arguments of `sigv4 verify`, already read. `Debug` redacts the
/// secret key and the session token.
#[derive(Clone)]
pub struct VerifyArgs {
    /// The raw request's bytes.
    pub request: Vec<u8>,
    /// The access key id the signer used.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
    /// The region the scope must name (default: the scope's).
    pub region: Option<String>,
    /// The service the scope must name (default: the scope's).
    pub service: Option<String>,
    /// The time of verification, Unix seconds.
    pub at: i64,
    /// The clock skew allowed either way, seconds.
    pub max_skew: u64,
    /// Whether the canonical URI normalises the path (execute-api: yes).
    pub normalize_path: bool,
    /// Single URI encoding (S3-style) instead of double (execute-api).
    pub single_encoding: bool,
}

impl std::fmt::Debug for VerifyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyArgs")
            .field("request_bytes", &self.request.len())
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("service", &self.service)
            .field("at", &self.at)
            .field("max_skew", &self.max_skew)
            .field("normalize_path", &self.normalize_path)
            .field("single_encoding", &self.single_encoding)
            .finish()
    }
}

/// Parses `--at`: `2015-08-30T12:36:00Z` (RFC 3339) or `20150830T123600Z`.
///
/// # Errors
///
/// When it is neither.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Some(seconds) = portcullis_sigv4::canonical::parse_amz_date(text) {
        return Ok(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            format!("`{text}` is not a time: use 2015-08-30T12:36:00Z or 20150830T123600Z")
        })
}

/// The credential scope (`AKID/date/region/service/aws4_request`) and the
/// signed headers of a signed request, from its `Authorization` header or its
/// presigned query.
fn scope_and_signed_headers(request: &http::Request<Bytes>) -> (Option<String>, Vec<String>) {
    if let Some(auth) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let params = auth.split_once(' ').map_or("", |(_, rest)| rest);
        let mut scope = None;
        let mut signed = Vec::new();
        for part in params.split(',') {
            let part = part.trim();
            if let Some(value) = part.strip_prefix("Credential=") {
                scope = Some(value.to_owned());
            } else if let Some(value) = part.strip_prefix("SignedHeaders=") {
                signed = value.split(';').map(str::to_owned).collect();
            }
        }
        return (scope, signed);
    }
    let mut scope = None;
    let mut signed = Vec::new();
    for (name, value) in
        portcullis_sigv4::canonical::query_pairs(request.uri().query().unwrap_or(""))
    {
        let decoded = String::from_utf8_lossy(
            &portcullis_sigv4::canonical::decode_query_component(value.as_bytes()),
        )
        .into_owned();
        match name {
            "X-Amz-Credential" => scope = Some(decoded),
            "X-Amz-SignedHeaders" => signed = decoded.split(';').map(str::to_owned).collect(),
            _ => {}
        }
    }
    (scope, signed)
}

/// Verifies the request. Valid: exit 0; refused: exit 1, also for a head
/// whose bytes (not UTF-8, say) no HTTP server would take; a message that
/// is not an HTTP request at all: exit 2.
///
/// # Errors
///
/// [`Failure`] (exit 2) when the request cannot be parsed.
pub async fn verify(args: VerifyArgs) -> Result<Report, Failure> {
    let raw = RawRequest::parse(&args.request).map_err(|m| Failure::new("bad_request", m))?;
    let request = match raw.to_http() {
        Ok(request) => request,
        // Bytes no HTTP server takes in a method, header name or value: such
        // a request never reaches the layer, and is not validly signed.
        Err(message) => {
            return Ok(Report::refused(json!({
                "valid": false,
                "error": "BadRequest",
                "message": message,
                "canonical_request": null,
                "string_to_sign": null,
            })));
        }
    };
    let (scope, signed_headers) = scope_and_signed_headers(&request);
    let mut scope_parts = scope.as_deref().unwrap_or("").split('/').skip(2);
    let scope_region = scope_parts
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let scope_service = scope_parts
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let region = args
        .region
        .clone()
        .or(scope_region)
        .unwrap_or_else(|| "us-east-1".to_owned());
    let service = args
        .service
        .clone()
        .or(scope_service)
        .unwrap_or_else(|| "execute-api".to_owned());

    let mut credential = Credential::new(
        args.access_key_id.as_str(),
        args.secret_access_key.as_str(),
        format!("arn:aws:iam::000000000000:user/{}", args.access_key_id),
    );
    if let Some(token) = &args.session_token {
        credential = credential.with_session_token(token.as_str(), None);
    }
    let api = ExecuteApiArn::new(region.as_str(), "000000000000", "cli", "cli")
        .map_err(|e| Failure::new("usage", format!("--region: {e}")))?;
    let at = u64::try_from(args.at).map_err(|_| Failure::new("usage", "--at is before 1970"))?;
    let layer = SigV4Layer::new(api, StaticCredentialProvider::new().with(credential))
        .region(region.as_str())
        .service(service.as_str())
        .clock(Arc::new(ManualClock::at_unix(at)))
        .clock_skew(Duration::from_secs(args.max_skew))
        .normalize_path(args.normalize_path)
        .uri_encoding(if args.single_encoding {
            UriEncoding::Single
        } else {
            UriEncoding::Double
        })
        .authentication_only();

    let payload_hash = request
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || hex::encode(Sha256::digest(request.body())),
            str::to_owned,
        );
    let texts = layer.signing_texts(&request, &payload_hash).ok();

    let service_fn = ServiceBuilder::new().layer(layer).service_fn(
        |_request: http::Request<SigV4Body<Full<Bytes>>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    );
    let response = match service_fn.oneshot(request.map(Full::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if response.status().is_success() {
        return Ok(Report::ok(json!({
            "valid": true,
            "access_key_id": args.access_key_id,
            "region": region,
            "service": service,
            "signed_headers": signed_headers,
        })));
    }
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Ok(Report::refused(json!({
        "valid": false,
        "error": error_type,
        "message": message,
        "canonical_request": texts.as_ref().map(|t| t.canonical_request.clone()),
        "string_to_sign": texts.as_ref().map(|t| t.string_to_sign.clone()),
    })))
}
