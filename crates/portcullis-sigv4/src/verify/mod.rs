//! Signature verification, independent of Tower: parse the signature out of a
//! request, check its dates and scope, and compare it with the one computed
//! from the credential's secret.
//!
//! The steps live in their own modules: `parse` reads the signature out of
//! the `Authorization` header or a presigned query, `check` checks its
//! form, dates and scope, and `sign` computes the canonical request and
//! compares signatures; `types` holds the types they share.

mod authorization;
mod check;
mod parse;
mod sign;
mod types;

use crate::canonical;
use crate::error::SigV4Error;

pub(crate) use check::{check_credential, check_signature_shape, check_time};
use check::{check_host, check_scope, check_signed_headers};
use parse::{parse_header, parse_query};
pub use sign::SigningTexts;
pub(crate) use sign::{Payload, SigningKeys, chunk_signing, payload, texts, verify_signature};
pub use types::{
    ALGORITHM, EMPTY_SHA256, MAX_EXPIRES_SECONDS, STREAMING_PAYLOAD, SignatureForm,
    UNSIGNED_PAYLOAD,
};
pub(crate) use types::{
    CHUNK_ALGORITHM, ParsedSignature, RequestView, ScopeSplit, Settings, SignedHeadersChecked,
    X_AMZ_CONTENT_SHA256, X_AMZ_DATE, X_AMZ_DECODED_CONTENT_LENGTH, X_AMZ_SECURITY_TOKEN,
    incomplete, truncated,
};

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
    let signed_headers = match parsed.signed_headers_checked {
        Some(checked) => checked,
        None => check_signed_headers(&parsed.signed_headers, settings)?,
    };
    // With the Authorization header, an `X-Amz-Date` header is the signing
    // date: it must be signed too, or a service could read one that no
    // signature covers.
    if parsed.form == SignatureForm::Header
        && parsed.x_amz_date_header
        && !signed_headers.includes_x_amz_date
    {
        return Err(incomplete(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization when the request has it.",
        ));
    }
    check_scope(&parsed, settings)?;
    Ok(parsed)
}
