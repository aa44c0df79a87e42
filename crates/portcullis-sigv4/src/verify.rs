//! Signature verification, independent of Tower: parse the signature out of a
//! request, check its dates and scope, and compare it with the one computed
//! from the credential's secret.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::canonical::{self, UriEncoding};
use crate::credentials::Credential;
use crate::error::SigV4Error;

type HmacSha256 = Hmac<Sha256>;

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

static X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
static X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
static X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");
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
    scope_date: Cow<'a, str>,
    signed_headers: Cow<'a, str>,
    signature: Cow<'a, str>,
    amz_date: Cow<'a, str>,
    pub(crate) timestamp: i64,
    expires: Option<u64>,
    pub(crate) security_token: Option<Cow<'a, str>>,
    pub(crate) content_sha256: Option<&'a str>,
    /// `x-amz-decoded-content-length`, when present and numeric.
    pub(crate) decoded_length: Option<u64>,
}

fn hashed_header(value: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(value))
}

fn incomplete(message: impl Into<Cow<'static, str>>) -> SigV4Error {
    SigV4Error::IncompleteSignature(message.into())
}

fn truncated(value: &str) -> &str {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Parses the signature out of a request; MISSING_AUTHENTICATION_TOKEN when it
/// carries none.
pub(crate) fn parse<'a>(
    view: RequestView<'a>,
    settings: &Settings,
) -> Result<ParsedSignature<'a>, SigV4Error> {
    let mut authorizations = view.headers.get_all(http::header::AUTHORIZATION).iter();
    let authorization = authorizations.next();
    if authorizations.next().is_some() {
        return Err(incomplete("Only one Authorization header is allowed."));
    }
    let query = view.uri.query().filter(|q| q.contains("X-Amz-"));
    let presigned = query.is_some_and(|q| {
        canonical::query_pairs(q).any(|(k, _)| k == "X-Amz-Algorithm" || k == "X-Amz-Signature")
    });
    let parsed = match (authorization, presigned) {
        (Some(_), true) => {
            return Err(incomplete(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
            ));
        }
        (Some(value), false) => {
            // A token in the query is not the one checked: refuse it rather
            // than let the service read another token than the layer did.
            if query.is_some_and(|q| {
                canonical::query_pairs(q).any(|(k, _)| k == "X-Amz-Security-Token")
            }) {
                return Err(incomplete(
                    "X-Amz-Security-Token belongs in the header with an Authorization header, not in the query string.",
                ));
            }
            parse_header(value, view.headers, settings)?
        }
        (None, true) => {
            if view.headers.contains_key(&X_AMZ_SECURITY_TOKEN) {
                return Err(incomplete(
                    "X-Amz-Security-Token belongs in the query string of a presigned URL, not in a header.",
                ));
            }
            parse_query(query.unwrap_or_default(), view.headers)?
        }
        (None, false) => return Err(SigV4Error::MissingAuthenticationToken),
    };
    check_host(view)?;
    check_signed_headers(&parsed.signed_headers, settings)?;
    // With the Authorization header, an `X-Amz-Date` header is the signing
    // date: it must be signed too, or a service could read one that no
    // signature covers.
    if parsed.form == SignatureForm::Header
        && view.headers.contains_key(&X_AMZ_DATE)
        && !parsed
            .signed_headers
            .split(';')
            .any(|name| name == "x-amz-date")
    {
        return Err(incomplete(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization when the request has it.",
        ));
    }
    check_scope(&parsed, settings)?;
    Ok(parsed)
}

fn parse_header<'a>(
    value: &'a HeaderValue,
    headers: &'a HeaderMap,
    settings: &Settings,
) -> Result<ParsedSignature<'a>, SigV4Error> {
    let bytes = value.as_bytes();
    if bytes.len() > settings.max_authorization_bytes {
        return Err(incomplete(format!(
            "Authorization header is too long: {} bytes, at most {} allowed.",
            bytes.len(),
            settings.max_authorization_bytes
        )));
    }
    let missing_equal_sign = || {
        incomplete(format!(
            "Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 and encoded with Base64): '{}'.",
            hashed_header(bytes)
        ))
    };
    let Ok(text) = value.to_str() else {
        return Err(missing_equal_sign());
    };
    let text = text.trim();
    let (algorithm, rest) = text.split_once(' ').unwrap_or((text, ""));
    if algorithm != ALGORITHM {
        if algorithm.contains('=') || !rest.contains('=') {
            return Err(missing_equal_sign());
        }
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{}'.",
            truncated(algorithm)
        )));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for piece in rest.split(',') {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let Some((key, value)) = piece.split_once('=') else {
            return Err(missing_equal_sign());
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(incomplete(format!(
                "Authorization header has a duplicate '{}' parameter.",
                key.trim()
            )));
        }
        *slot = Some(value.trim());
    }
    // `X-Amz-Date` wins; without it, AWS takes the `Date` header.
    let date_header = match headers.get(&X_AMZ_DATE) {
        Some(value) => Some((value, true)),
        None => headers.get(http::header::DATE).map(|value| (value, false)),
    };
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    if date_header.is_none() {
        missing.push(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some((date, is_amz_date))) =
        (credential, signed_headers, signature, date_header)
    else {
        return Err(incomplete(missing.join(" ")));
    };
    let date = std::str::from_utf8(date.as_bytes()).unwrap_or("");
    let (amz_date, timestamp) = if is_amz_date {
        (Cow::Borrowed(date), parse_date(date)?)
    } else {
        let timestamp = parse_date_header(date)?;
        (Cow::Owned(canonical::format_amz_date(timestamp)), timestamp)
    };
    let (access_key_id, scope_date) = parse_credential(credential, "Authorization header")?;
    let security_token = match headers.get(&X_AMZ_SECURITY_TOKEN) {
        Some(token) => {
            Some(Cow::Borrowed(token.to_str().map_err(|_| {
                incomplete("X-Amz-Security-Token must be visible ASCII.")
            })?))
        }
        None => None,
    };
    Ok(ParsedSignature {
        form: SignatureForm::Header,
        access_key_id: Cow::Borrowed(access_key_id),
        scope_date: Cow::Borrowed(scope_date),
        signed_headers: Cow::Borrowed(signed_headers),
        signature: Cow::Borrowed(signature),
        amz_date,
        timestamp,
        expires: None,
        security_token,
        content_sha256: content_sha256(headers)?,
        decoded_length: decoded_length(headers),
    })
}

fn content_sha256(headers: &HeaderMap) -> Result<Option<&str>, SigV4Error> {
    match headers.get(&X_AMZ_CONTENT_SHA256) {
        None => Ok(None),
        Some(value) => {
            let value = value.to_str().unwrap_or("");
            let is_hash = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
            if is_hash || value == UNSIGNED_PAYLOAD || value == STREAMING_PAYLOAD {
                Ok(Some(value))
            } else if value.starts_with("STREAMING-") {
                Err(incomplete(format!(
                    "x-amz-content-sha256 '{}' is not supported: only {STREAMING_PAYLOAD} streams.",
                    truncated(value)
                )))
            } else {
                Err(incomplete(
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or the hex SHA-256 of the body.",
                ))
            }
        }
    }
}

fn decoded_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(&X_AMZ_DECODED_CONTENT_LENGTH)?.as_bytes();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn parse_date(amz_date: &str) -> Result<i64, SigV4Error> {
    canonical::parse_amz_date(amz_date).ok_or_else(|| {
        incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            truncated(amz_date)
        ))
    })
}

/// The `Date` header: an HTTP date (`Mon, 09 Sep 2011 23:36:00 GMT`) or
/// SigV4's ISO 8601 basic format. As AWS, the day name is not checked against
/// the date (AWS's own 2011 test suite signs a Friday as `Mon`).
fn parse_date_header(date: &str) -> Result<i64, SigV4Error> {
    canonical::parse_amz_date(date)
        .or_else(|| parse_http_date(date))
        .ok_or_else(|| {
            incomplete(format!(
                "Date header must be an HTTP date (e.g. 'Mon, 09 Sep 2011 23:36:00 GMT') or in ISO-8601 'basic format'. Got '{}'.",
                truncated(date)
            ))
        })
}

/// `[Day, ]DD Mon YYYY HH:MM:SS GMT` (RFC 9110's IMF-fixdate).
fn parse_http_date(date: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rest = match date.split_once(", ") {
        Some((day_name, rest))
            if day_name.len() == 3 && day_name.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            rest
        }
        Some(_) => return None,
        None => date,
    };
    let mut parts = rest.split(' ');
    let (Some(day), Some(month), Some(year), Some(clock), Some("GMT"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let number = |text: &str, digits: usize| -> Option<u16> {
        (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let month = MONTHS.iter().position(|m| *m == month)?;
    let month = time::Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
    let day = u8::try_from(number(day, 2)?).ok()?;
    let year = i32::from(number(year, 4)?);
    let mut hms = clock.split(':');
    let (Some(h), Some(m), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    let time = time::Time::from_hms(
        u8::try_from(number(h, 2)?).ok()?,
        u8::try_from(number(m, 2)?).ok()?,
        u8::try_from(number(sec, 2)?).ok()?,
    )
    .ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.with_time(time).assume_utc().unix_timestamp())
}

/// Splits `AKID/YYYYMMDD/region/service/aws4_request` into the access key id
/// and the scope (`YYYYMMDD/region/service/aws4_request`).
fn parse_credential<'a>(
    credential: &'a str,
    source: &str,
) -> Result<(&'a str, &'a str), SigV4Error> {
    let Some((access_key_id, scope)) = credential.split_once('/') else {
        return Err(incomplete(format!(
            "{source} 'Credential' must be '<access key id>/<date>/<region>/<service>/aws4_request'."
        )));
    };
    let mut parts = scope.split('/');
    let (Some(_date), Some(_region), Some(_service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(incomplete(format!(
            "{source} 'Credential' must be '<access key id>/<date>/<region>/<service>/aws4_request'."
        )));
    };
    if terminator != "aws4_request" {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            truncated(terminator)
        )));
    }
    Ok((access_key_id, scope))
}

fn parse_query<'a>(
    query: &'a str,
    headers: &'a HeaderMap,
) -> Result<ParsedSignature<'a>, SigV4Error> {
    const NAMES: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    let mut values: [Option<Cow<'a, str>>; 7] = Default::default();
    for (key, value) in canonical::query_pairs(query) {
        let Some(index) = NAMES.iter().position(|name| *name == key) else {
            continue;
        };
        if values[index].is_some() {
            return Err(incomplete(format!(
                "AWS query-string parameters must include '{key}' only once. Re-examine the query-string parameters."
            )));
        }
        let decoded = if value.contains(['%', '+']) {
            let bytes = canonical::decode_query_component(value.as_bytes());
            Cow::Owned(String::from_utf8(bytes).map_err(|_| {
                incomplete(format!(
                    "AWS query-string parameter '{key}' is not valid UTF-8."
                ))
            })?)
        } else {
            Cow::Borrowed(value)
        };
        values[index] = Some(decoded);
    }
    let [
        algorithm,
        credential,
        date,
        expires,
        signed_headers,
        signature,
        token,
    ] = values;
    let mut missing = String::new();
    for (name, value) in NAMES.iter().zip([
        &algorithm,
        &credential,
        &date,
        &expires,
        &signed_headers,
        &signature,
    ]) {
        if value.is_none() {
            missing.push_str(&format!(
                "AWS query-string parameters must include '{name}'. "
            ));
        }
    }
    let (
        Some(algorithm),
        Some(credential),
        Some(date),
        Some(expires),
        Some(signed_headers),
        Some(signature),
    ) = (
        algorithm,
        credential,
        date,
        expires,
        signed_headers,
        signature,
    )
    else {
        missing.push_str("Re-examine the query-string parameters.");
        return Err(incomplete(missing));
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "X-Amz-Algorithm only supports \"{ALGORITHM}\", not '{}'.",
            truncated(&algorithm)
        )));
    }
    let expires: u64 = if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete("X-Amz-Expires should be a number"));
    } else {
        expires.parse().unwrap_or(u64::MAX)
    };
    if expires > MAX_EXPIRES_SECONDS {
        return Err(incomplete(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    let timestamp = parse_date(&date)?;
    let (access_key_id, scope_date) = match credential {
        Cow::Borrowed(credential) => {
            let (id, scope) = parse_credential(credential, "X-Amz-Credential")?;
            (Cow::Borrowed(id), Cow::Borrowed(scope))
        }
        Cow::Owned(credential) => {
            let (id, scope) = parse_credential(&credential, "X-Amz-Credential")?;
            (Cow::Owned(id.to_owned()), Cow::Owned(scope.to_owned()))
        }
    };
    Ok(ParsedSignature {
        form: SignatureForm::Query,
        access_key_id,
        scope_date,
        signed_headers,
        signature,
        amz_date: date,
        timestamp,
        expires: Some(expires),
        security_token: token,
        content_sha256: content_sha256(headers)?,
        decoded_length: decoded_length(headers),
    })
}

/// One host per request: the canonical request signs the `Host` header (or,
/// without one, the URI's authority, as HTTP/2's `:authority`), while
/// RFC 9112 tells a server to take the authority of an absolute-form target
/// over `Host`. When both are present they must agree, or a service that
/// reads the URI would see another host than the one signed.
fn check_host(view: RequestView<'_>) -> Result<(), SigV4Error> {
    let mut hosts = view.headers.get_all(http::header::HOST).iter();
    let Some(host) = hosts.next() else {
        return Ok(());
    };
    if hosts.next().is_some() {
        return Err(incomplete("Only one Host header is allowed."));
    }
    match view.uri.authority() {
        Some(authority)
            if !authority
                .as_str()
                .as_bytes()
                .eq_ignore_ascii_case(host.as_bytes()) =>
        {
            Err(incomplete(
                "The Host header and the authority of the request target differ.",
            ))
        }
        _ => Ok(()),
    }
}

fn check_signed_headers(signed_headers: &str, settings: &Settings) -> Result<(), SigV4Error> {
    let mut count = 0usize;
    let mut has_host = false;
    for name in signed_headers.split(';') {
        count += 1;
        if count > settings.max_signed_headers {
            return Err(incomplete(format!(
                "SignedHeaders names more than {} headers.",
                settings.max_signed_headers
            )));
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
        {
            return Err(incomplete(format!(
                "SignedHeaders must be lower-case header names separated by ';', not '{}'.",
                truncated(signed_headers)
            )));
        }
        has_host |= name == "host";
    }
    if !has_host {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(())
}

/// `YYYYMMDD/region/service/aws4_request`: checks the date against the
/// signature's and the region and service against the layer's.
fn check_scope(parsed: &ParsedSignature<'_>, settings: &Settings) -> Result<(), SigV4Error> {
    let mut parts = parsed.scope_date.split('/');
    let date = parts.next().unwrap_or("");
    let region = parts.next().unwrap_or("");
    let service = parts.next().unwrap_or("");
    let amz_day = parsed.amz_date.get(..8).unwrap_or("");
    if date != amz_day {
        return Err(SigV4Error::InvalidScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            truncated(date),
            amz_day,
            parsed.amz_date
        )));
    }
    if region != &*settings.region {
        return Err(SigV4Error::InvalidScope(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            truncated(region)
        )));
    }
    if service != &*settings.service {
        return Err(SigV4Error::InvalidScope(format!(
            "Credential should be scoped to correct service: '{}'. ",
            settings.service
        )));
    }
    Ok(())
}

fn window(seconds: u64) -> String {
    if seconds.is_multiple_of(60) {
        format!("{} min.", seconds / 60)
    } else {
        format!("{seconds} sec.")
    }
}

/// Checks the signature's date against now: within the clock skew either
/// way, and for a presigned URL, not past `X-Amz-Expires`.
pub(crate) fn check_time(
    parsed: &ParsedSignature<'_>,
    now: i64,
    settings: &Settings,
) -> Result<(), SigV4Error> {
    let skew = i64::try_from(settings.clock_skew_seconds).unwrap_or(i64::MAX);
    let (oldest, allowed) = match parsed.expires {
        Some(expires) => (
            now.saturating_sub(i64::try_from(expires).unwrap_or(i64::MAX)),
            expires,
        ),
        None => (now.saturating_sub(skew), settings.clock_skew_seconds),
    };
    if parsed.timestamp < oldest {
        return Err(SigV4Error::SignatureExpired(format!(
            "Signature expired: {} is now earlier than {} ({} - {})",
            parsed.amz_date,
            canonical::format_amz_date(oldest),
            canonical::format_amz_date(now),
            window(allowed)
        )));
    }
    let latest = now.saturating_add(skew);
    if parsed.timestamp > latest {
        return Err(SigV4Error::SignatureNotYetCurrent(format!(
            "Signature not yet current: {} is still later than {} ({} + {})",
            parsed.amz_date,
            canonical::format_amz_date(latest),
            canonical::format_amz_date(now),
            window(settings.clock_skew_seconds)
        )));
    }
    Ok(())
}

/// Checks the signature's shape, 64 lower-case hex digits as every SigV4
/// signer writes it, before anything costs more than this: a signature that
/// could never match is refused before the credential is looked up or a byte
/// of the body is read.
pub(crate) fn check_signature_shape(parsed: &ParsedSignature<'_>) -> Result<(), SigV4Error> {
    let signature = parsed.signature.as_bytes();
    if signature.len() == 64
        && signature
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        Ok(())
    } else {
        Err(SigV4Error::SignatureDoesNotMatch { debug: None })
    }
}

/// Checks the session token and expiry of temporary credentials.
pub(crate) fn check_credential(
    parsed: &ParsedSignature<'_>,
    credential: &Credential,
    now: i64,
) -> Result<(), SigV4Error> {
    match (credential.session_token(), parsed.security_token.as_deref()) {
        (None, None) => {}
        (Some(expected), Some(given)) if expected.ct_eq_str(given) => {}
        _ => return Err(SigV4Error::UnrecognizedClient),
    }
    if credential
        .expires_at()
        .is_some_and(|expiry| expiry.unix_timestamp() <= now)
    {
        return Err(SigV4Error::ExpiredToken);
    }
    Ok(())
}

/// Where the payload hash of the canonical request comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payload<'a> {
    /// A hash known before reading the body: `UNSIGNED-PAYLOAD`, the empty
    /// hash of a body known to be empty, or a signed `x-amz-content-sha256`
    /// that a body known to be empty must match.
    Known(&'a str),
    /// The signed `x-amz-content-sha256` that the body must hash to: verify
    /// the signature now, then read and hash the body.
    Claimed(&'a str),
    /// No `x-amz-content-sha256`: the body must be read and hashed before the
    /// signature can be verified.
    Compute,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the signature covers that text;
    /// each chunk of the `aws-chunked` body is verified as it streams.
    Streaming {
        /// `x-amz-decoded-content-length`.
        decoded_length: u64,
    },
}

/// Decides where the payload hash comes from.
pub(crate) fn payload<'a>(
    parsed: &ParsedSignature<'a>,
    body_is_empty: bool,
    settings: &Settings,
) -> Result<Payload<'a>, SigV4Error> {
    match parsed.content_sha256 {
        Some(UNSIGNED_PAYLOAD) if settings.allow_unsigned_payload => {
            Ok(Payload::Known(UNSIGNED_PAYLOAD))
        }
        Some(UNSIGNED_PAYLOAD) => Err(incomplete(
            "UNSIGNED-PAYLOAD is not accepted: sign the body's SHA-256.",
        )),
        Some(STREAMING_PAYLOAD) => {
            if parsed.form == SignatureForm::Query {
                return Err(incomplete(
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs the Authorization header, not a presigned URL.",
                ));
            }
            if body_is_empty {
                return Err(incomplete(
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs an aws-chunked body; the body is empty.",
                ));
            }
            let decoded_length = parsed
                .decoded_length
                .ok_or_else(|| {
                    incomplete(
                        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD needs a numeric x-amz-decoded-content-length header.",
                    )
                })?;
            Ok(Payload::Streaming { decoded_length })
        }
        Some(claimed) if body_is_empty => {
            if claimed.eq_ignore_ascii_case(EMPTY_SHA256) {
                Ok(Payload::Known(claimed))
            } else {
                // Verify the signature over the claimed hash first, so that a
                // wrong signature is reported as such; then the payload fails.
                Ok(Payload::Claimed(claimed))
            }
        }
        Some(claimed) => Ok(Payload::Claimed(claimed)),
        None if body_is_empty => Ok(Payload::Known(EMPTY_SHA256)),
        None => Ok(Payload::Compute),
    }
}

/// The canonical request and string to sign of a verified (or refused)
/// request, as text: what AWS's debugging message shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningTexts {
    /// The canonical request.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
}

/// Builds the canonical request.
pub(crate) fn canonical_request(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    payload_hash: &str,
    settings: &Settings,
    unsigned_token: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical_request(
        view,
        parsed,
        payload_hash,
        settings,
        unsigned_token,
        &mut out,
    );
    out
}

/// Appends the canonical request to `out`.
fn write_canonical_request(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    payload_hash: &str,
    settings: &Settings,
    unsigned_token: bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(view.method.as_str().as_bytes());
    out.push(b'\n');
    canonical::canonical_uri(
        view.uri.path(),
        settings.normalize_path,
        settings.uri_encoding,
        out,
    );
    out.push(b'\n');
    if let Some(query) = view.uri.query() {
        let exclude: &[&str] = match (parsed.form, unsigned_token) {
            (SignatureForm::Header, _) => &[],
            (SignatureForm::Query, false) => &["X-Amz-Signature"],
            (SignatureForm::Query, true) => &["X-Amz-Signature", "X-Amz-Security-Token"],
        };
        canonical::canonical_query(query, exclude, out);
    }
    out.push(b'\n');
    for name in parsed.signed_headers.split(';') {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = view.headers.get_all(name).iter().peekable();
        if values.peek().is_none()
            && name == "host"
            && let Some(authority) = view.uri.authority()
        {
            out.extend_from_slice(authority.as_str().as_bytes());
        }
        let mut first = true;
        for value in values {
            if !first {
                out.push(b',');
            }
            first = false;
            canonical::push_trimmed_value(value.as_bytes(), out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(parsed.signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
}

/// The string to sign's lines after the algorithm: the date, the scope and
/// the hex SHA-256 of the canonical request, each fed to `sink` in order.
fn string_to_sign_parts(
    parsed: &ParsedSignature<'_>,
    canonical_request: &[u8],
    mut sink: impl FnMut(&[u8]),
) {
    let digest: [u8; 32] = Sha256::digest(canonical_request).into();
    sink(ALGORITHM.as_bytes());
    sink(b"\n");
    sink(parsed.amz_date.as_bytes());
    sink(b"\n");
    sink(parsed.scope_date.as_bytes());
    sink(b"\n");
    sink(&canonical::hex32(&digest));
}

fn string_to_sign(parsed: &ParsedSignature<'_>, canonical_request: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    string_to_sign_parts(parsed, canonical_request, |part| {
        out.extend_from_slice(part);
    });
    out
}

thread_local! {
    /// The canonical request of the last request verified on this thread:
    /// its allocation is reused, so verifying allocates nothing for it.
    static CANONICAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer grown past this is not kept for the next request.
const KEPT_BUFFER_BYTES: usize = 16 * 1024;

/// Runs `f` with an empty buffer: the thread's reused one, or a fresh one
/// if that is in use.
fn with_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    CANONICAL.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let result = f(&mut buffer);
            if buffer.capacity() > KEPT_BUFFER_BYTES {
                *buffer = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Verifies the signature of `view` with `credential`; returns it (the seed
/// of a streaming body's chunk signatures).
pub(crate) fn verify_signature(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    credential: &Credential,
    payload_hash: &str,
    settings: &Settings,
    keys: &SigningKeys,
) -> Result<[u8; 32], SigV4Error> {
    let mut given = [0u8; 32];
    let well_formed = parsed.signature.len() == 64
        && hex::decode_to_slice(parsed.signature.as_bytes(), &mut given).is_ok();
    let day = parsed.scope_date.get(..8).unwrap_or("");
    let key = keys.key(credential, day, &settings.region, &settings.service);
    // The string to sign goes straight into the HMAC, never into a buffer.
    let matches = |canonical: &[u8]| -> bool {
        let mut mac = key.clone();
        string_to_sign_parts(parsed, canonical, |part| mac.update(part));
        let computed: [u8; 32] = mac.finalize().into_bytes().into();
        well_formed && bool::from(computed.ct_eq(&given))
    };
    let ok = with_buffer(|buffer| {
        write_canonical_request(view, parsed, payload_hash, settings, false, buffer);
        if matches(buffer) {
            return true;
        }
        // Some signers add the session token of a presigned URL after
        // signing (`aws-sigv4`'s `SessionTokenMode::Exclude`, for services
        // such as IoT). The token is still checked against the credential's.
        if parsed.form == SignatureForm::Query && parsed.security_token.is_some() {
            buffer.clear();
            write_canonical_request(view, parsed, payload_hash, settings, true, buffer);
            return matches(buffer);
        }
        false
    });
    if ok {
        return Ok(given);
    }
    let debug = settings.debug.then(|| {
        let canonical = canonical_request(view, parsed, payload_hash, settings, false);
        let sts = string_to_sign(parsed, &canonical);
        format!(
            "The Canonical String for this request should have been\n'{}'\n\nThe String-to-Sign should have been\n'{}'\n",
            String::from_utf8_lossy(&canonical),
            String::from_utf8_lossy(&sts)
        )
    });
    Err(SigV4Error::SignatureDoesNotMatch { debug })
}

/// The verifier of a streaming body's chunk signatures, seeded with the
/// request's verified signature.
pub(crate) fn chunk_verifier(
    parsed: &ParsedSignature<'_>,
    credential: &Credential,
    seed: &[u8; 32],
    settings: &Settings,
    keys: &SigningKeys,
) -> crate::chunked::ChunkVerifier {
    let day = parsed.scope_date.get(..8).unwrap_or("");
    let key = keys.key(credential, day, &settings.region, &settings.service);
    let mut prefix = Vec::with_capacity(96);
    prefix.extend_from_slice(CHUNK_ALGORITHM.as_bytes());
    prefix.push(b'\n');
    prefix.extend_from_slice(parsed.amz_date.as_bytes());
    prefix.push(b'\n');
    prefix.extend_from_slice(parsed.scope_date.as_bytes());
    prefix.push(b'\n');
    crate::chunked::ChunkVerifier::new(key, prefix, seed)
}

/// What the layer leaves in the extensions about a verified signature.
pub(crate) fn verified(
    parsed: &ParsedSignature<'_>,
    credential: &Credential,
    settings: &Settings,
) -> crate::service::VerifiedSignature {
    let date = time::OffsetDateTime::from_unix_timestamp(parsed.timestamp)
        .map_or(time::Date::MIN, time::OffsetDateTime::date);
    crate::service::VerifiedSignature {
        access_key_id: credential.access_key_id_arc().clone(),
        principal_arn: credential.principal_arn_arc().clone(),
        form: parsed.form,
        signed_at: parsed.timestamp,
        temporary: credential.session_token().is_some(),
        signed_headers: std::sync::Arc::from(&*parsed.signed_headers),
        scope: crate::service::CredentialScope {
            date,
            region: settings.region.clone(),
            service: settings.service.clone(),
        },
        streaming: parsed.content_sha256 == Some(STREAMING_PAYLOAD),
    }
}

/// The canonical request and string to sign for `view`, for tools and tests.
pub(crate) fn texts(
    view: RequestView<'_>,
    parsed: &ParsedSignature<'_>,
    payload_hash: &str,
    settings: &Settings,
) -> SigningTexts {
    let canonical = canonical_request(view, parsed, payload_hash, settings, false);
    let sts = string_to_sign(parsed, &canonical);
    SigningTexts {
        canonical_request: String::from_utf8_lossy(&canonical).into_owned(),
        string_to_sign: String::from_utf8_lossy(&sts).into_owned(),
    }
}

/// SHA-256 of the secret, and the day of the scope.
type KeyId = ([u8; 32], [u8; 8]);

/// The hash of a [`KeyId`]: the secret's SHA-256 is uniformly distributed
/// and not chosen by the client, so its first bytes, mixed with the day's,
/// are a good hash without a SipHash pass over 40 bytes per request.
#[derive(Clone, Copy, Debug, Default)]
struct KeyIdHasher(u64);

impl std::hash::Hasher for KeyIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = (self.0 ^ u64::from_le_bytes(word))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    fn write_usize(&mut self, _: usize) {}
}

type BuildKeyIdHasher = std::hash::BuildHasherDefault<KeyIdHasher>;

/// Derived signing keys, cached per (secret, day): region and service are the
/// layer's own. Bounded: when full, the cache starts afresh.
#[derive(Debug)]
pub(crate) struct SigningKeys {
    keys: RwLock<HashMap<KeyId, HmacSha256, BuildKeyIdHasher>>,
    capacity: usize,
}

impl SigningKeys {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            keys: RwLock::new(HashMap::default()),
            capacity,
        }
    }

    /// A keyed HMAC ready for the string to sign.
    pub(crate) fn key(
        &self,
        credential: &Credential,
        day: &str,
        region: &str,
        service: &str,
    ) -> HmacSha256 {
        let mut day_bytes = [0u8; 8];
        if day.len() == 8 {
            day_bytes.copy_from_slice(day.as_bytes());
        }
        let id = (*credential.secret_digest(), day_bytes);
        if let Ok(keys) = self.keys.read()
            && let Some(mac) = keys.get(&id)
        {
            return mac.clone();
        }
        let mac = derive(
            credential.secret_access_key().expose(),
            day,
            region,
            service,
        );
        if self.capacity > 0
            && let Ok(mut keys) = self.keys.write()
        {
            if keys.len() >= self.capacity {
                keys.clear();
            }
            keys.insert(id, mac.clone());
        }
        mac
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.read().map(|k| k.len()).unwrap_or(0)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SigV4's key derivation: `kSigning`, as a keyed HMAC.
fn derive(secret: &str, day: &str, region: &str, service: &str) -> HmacSha256 {
    let mut first = Vec::with_capacity(4 + secret.len());
    first.extend_from_slice(b"AWS4");
    first.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&first, day.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    HmacSha256::new_from_slice(&k_signing).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_without_checking_the_day_name() {
        let t = 1_315_611_360; // 2011-09-09T23:36:00Z, a Friday.
        assert_eq!(parse_http_date("Mon, 09 Sep 2011 23:36:00 GMT"), Some(t));
        assert_eq!(parse_http_date("Fri, 09 Sep 2011 23:36:00 GMT"), Some(t));
        assert_eq!(parse_http_date("09 Sep 2011 23:36:00 GMT"), Some(t));
        for bad in [
            "Mon, 9 Sep 2011 23:36:00 GMT",
            "Mon, 09 Sept 2011 23:36:00 GMT",
            "Mon, 31 Feb 2011 23:36:00 GMT",
            "Mon, 09 Sep 2011 24:36:00 GMT",
            "Mon, 09 Sep 2011 23:36:00 UTC",
            "Mon, 09 Sep 2011 23:36:00 GMT extra",
            "Monday, 09-Sep-11 23:36:00 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn signing_keys_are_cached_and_bounded() {
        let keys = SigningKeys::new(2);
        let a = Credential::new("A", "secret-a", "arn:a");
        let b = Credential::new("B", "secret-b", "arn:b");
        let first = keys.key(&a, "20150830", "us-east-1", "service");
        assert_eq!(keys.len(), 1);
        let again = keys.key(&a, "20150830", "us-east-1", "service");
        assert_eq!(first.finalize().into_bytes(), again.finalize().into_bytes());
        keys.key(&b, "20150830", "us-east-1", "service");
        assert_eq!(keys.len(), 2);
        keys.key(&a, "20150831", "us-east-1", "service");
        assert_eq!(keys.len(), 1, "a full cache starts afresh");
    }

    #[test]
    fn derivation_matches_the_aws_documentation_example() {
        // From the AWS General Reference's "Examples of how to derive a
        // signing key for Signature Version 4".
        let mut mac = derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        mac.update(b"");
        let expected_key =
            hex::decode("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
                .expect("hex");
        let mut reference = HmacSha256::new_from_slice(&expected_key).expect("any key length");
        reference.update(b"");
        assert_eq!(
            mac.finalize().into_bytes(),
            reference.finalize().into_bytes()
        );
    }
}
