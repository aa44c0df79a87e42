//! Reading the signature out of a request: the `Authorization` header or a
//! presigned URL's query, the signing date, and the credential.

use std::borrow::Cow;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::authorization;
use super::{
    ALGORITHM, MAX_EXPIRES_SECONDS, ParsedSignature, STREAMING_PAYLOAD, ScopeSplit, Settings,
    SignatureForm, UNSIGNED_PAYLOAD, X_AMZ_CONTENT_SHA256, X_AMZ_DATE,
    X_AMZ_DECODED_CONTENT_LENGTH, X_AMZ_SECURITY_TOKEN, incomplete, truncated,
};
use crate::canonical;
use crate::error::SigV4Error;

fn hashed_header(value: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(value))
}

pub(super) fn parse_header<'a>(
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
    let fast = authorization::read(bytes, settings.max_signed_headers);
    let (credential, signed_headers, signature) = match &fast {
        Some(read) => (
            Some(read.credential),
            Some(read.signed_headers),
            Some(read.signature),
        ),
        None => read_parameters(value)?,
    };
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
    let (access_key_id, scope_date, scope_split) = match &fast {
        Some(read) => (read.access_key_id, read.scope, read.scope_split),
        None => parse_credential(credential, "Authorization header")?,
    };
    let security_token = match headers.get(&X_AMZ_SECURITY_TOKEN) {
        Some(token) => {
            Some(Cow::Borrowed(token.to_str().map_err(|_| {
                incomplete("X-Amz-Security-Token must be visible ASCII.")
            })?))
        }
        None => None,
    };
    let content_sha256 = content_sha256(headers)?;
    Ok(ParsedSignature {
        form: SignatureForm::Header,
        access_key_id: Cow::Borrowed(access_key_id),
        scope_date: Cow::Borrowed(scope_date),
        scope_split,
        signed_headers: Cow::Borrowed(signed_headers),
        signature: Cow::Borrowed(signature),
        amz_date,
        timestamp,
        expires: None,
        security_token,
        content_sha256,
        decoded_length: streaming_decoded_length(content_sha256, headers),
        signed_headers_checked: fast.map(|read| read.signed_headers_checked),
        x_amz_date_header: is_amz_date,
    })
}

/// The `Credential`, `SignedHeaders` and `Signature` parameters of an
/// `Authorization` header, read generally: any spacing, unknown parameters
/// ignored, each error with AWS's message.
pub(super) type Parameters<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

pub(super) fn read_parameters(value: &HeaderValue) -> Result<Parameters<'_>, SigV4Error> {
    let bytes = value.as_bytes();
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
    Ok((credential, signed_headers, signature))
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

/// `x-amz-decoded-content-length`, read only for a streaming body: the one
/// payload that needs it.
fn streaming_decoded_length(content_sha256: Option<&str>, headers: &HeaderMap) -> Option<u64> {
    if content_sha256 == Some(STREAMING_PAYLOAD) {
        decoded_length(headers)
    } else {
        None
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
/// and the scope (`YYYYMMDD/region/service/aws4_request`), and finds where
/// the scope's parts end.
pub(super) fn parse_credential<'a>(
    credential: &'a str,
    source: &str,
) -> Result<(&'a str, &'a str, ScopeSplit), SigV4Error> {
    let Some((access_key_id, scope)) = credential.split_once('/') else {
        return Err(incomplete(format!(
            "{source} 'Credential' must be '<access key id>/<date>/<region>/<service>/aws4_request'."
        )));
    };
    let mut parts = scope.split('/');
    let (Some(date), Some(region), Some(service), Some(terminator), None) = (
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
    let date_end = date.len();
    let region_end = date_end + 1 + region.len();
    let split = ScopeSplit {
        date_end,
        region_end,
        service_end: region_end + 1 + service.len(),
    };
    Ok((access_key_id, scope, split))
}

pub(super) fn parse_query<'a>(
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
    let (access_key_id, scope_date, scope_split) = match credential {
        Cow::Borrowed(credential) => {
            let (id, scope, split) = parse_credential(credential, "X-Amz-Credential")?;
            (Cow::Borrowed(id), Cow::Borrowed(scope), split)
        }
        Cow::Owned(credential) => {
            let (id, scope, split) = parse_credential(&credential, "X-Amz-Credential")?;
            (
                Cow::Owned(id.to_owned()),
                Cow::Owned(scope.to_owned()),
                split,
            )
        }
    };
    let content_sha256 = content_sha256(headers)?;
    Ok(ParsedSignature {
        form: SignatureForm::Query,
        access_key_id,
        scope_date,
        scope_split,
        signed_headers,
        signature,
        amz_date: date,
        timestamp,
        expires: Some(expires),
        security_token: token,
        content_sha256,
        decoded_length: streaming_decoded_length(content_sha256, headers),
        signed_headers_checked: None,
        x_amz_date_header: false,
    })
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
}
