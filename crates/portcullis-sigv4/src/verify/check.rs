//! Checks on a parsed signature before anything is hashed: one host, the
//! signed header names, the credential scope, the signing time, the
//! signature's shape and the credential's session token and expiry.

use super::{ParsedSignature, RequestView, Settings, SignedHeadersChecked, incomplete, truncated};
use crate::canonical;
use crate::credentials::Credential;
use crate::error::SigV4Error;

/// One host per request: the canonical request signs the `Host` header (or,
/// without one, the URI's authority, as HTTP/2's `:authority`), while
/// RFC 9112 tells a server to take the authority of an absolute-form target
/// over `Host`. When both are present they must agree, or a service that
/// reads the URI would see another host than the one signed.
pub(super) fn check_host(view: RequestView<'_>) -> Result<(), SigV4Error> {
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

/// Checks the signed header names: lower-case, at most
/// `max_signed_headers`, `host` among them.
pub(super) fn check_signed_headers(
    signed_headers: &str,
    settings: &Settings,
) -> Result<SignedHeadersChecked, SigV4Error> {
    let mut count = 0usize;
    let mut has_host = false;
    let mut checked = SignedHeadersChecked::default();
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
        checked.includes_x_amz_date |= name == "x-amz-date";
    }
    if !has_host {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(checked)
}

/// `YYYYMMDD/region/service/aws4_request`: checks the date against the
/// signature's and the region and service against the layer's.
pub(super) fn check_scope(
    parsed: &ParsedSignature<'_>,
    settings: &Settings,
) -> Result<(), SigV4Error> {
    let (date, region, service) = parsed.scope_split.parts(&parsed.scope_date);
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
    // Without short-circuits, so that the 64 bytes are checked as a vector.
    let lower_hex = signature.iter().fold(true, |all, &byte| {
        all & ((byte.wrapping_sub(b'0') < 10) | (byte.wrapping_sub(b'a') < 6))
    });
    if signature.len() == 64 && lower_hex {
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
