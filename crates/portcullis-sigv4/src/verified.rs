//! What the layer leaves in the request extensions about a signature it
//! verified: [`VerifiedSignature`] and its [`CredentialScope`].

use std::sync::Arc;

use crate::credentials::Credential;
use crate::verify::{ParsedSignature, STREAMING_PAYLOAD, Settings, SignatureForm};

/// The credential scope of a verified signature: the day, region and service
/// it was signed for (`YYYYMMDD/region/service/aws4_request`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialScope {
    /// The day of the scope (UTC), which is the day of the signing date.
    pub date: time::Date,
    /// The signing region.
    pub region: Arc<str>,
    /// The signing service (`execute-api` by default).
    pub service: Arc<str>,
}

impl std::fmt::Display for CredentialScope {
    /// `YYYYMMDD/region/service/aws4_request`, as in the `Credential`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}/{}/{}/aws4_request",
            self.date.year(),
            u8::from(self.date.month()),
            self.date.day(),
            self.region,
            self.service
        )
    }
}

/// What the layer leaves in the request extensions, next to the core
/// [`Caller`](portcullis_core::context::Caller), about the signature it verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSignature {
    /// The access key id that signed the request.
    pub access_key_id: Arc<str>,
    /// The principal's ARN.
    pub principal_arn: Arc<str>,
    /// Header or presigned query.
    pub form: SignatureForm,
    /// When the request was signed (Unix seconds).
    pub signed_at: i64,
    /// Whether the caller used temporary credentials (a session token).
    pub temporary: bool,
    /// The signed headers, as signed: lower-case names separated by `;`
    /// (see [`signed_header_names`](Self::signed_header_names)).
    pub signed_headers: Arc<str>,
    /// The credential scope: day, region and service.
    pub scope: CredentialScope,
    /// Whether the body is `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, verified
    /// chunk by chunk as the inner service reads it.
    pub streaming: bool,
}

impl VerifiedSignature {
    /// What the layer leaves in the extensions about a verified signature.
    pub(crate) fn from_parsed(
        parsed: &ParsedSignature<'_>,
        credential: &Credential,
        settings: &Settings,
    ) -> Self {
        let date = time::OffsetDateTime::from_unix_timestamp(parsed.timestamp)
            .map_or(time::Date::MIN, time::OffsetDateTime::date);
        Self {
            access_key_id: credential.access_key_id_arc().clone(),
            principal_arn: credential.principal_arn_arc().clone(),
            form: parsed.form,
            signed_at: parsed.timestamp,
            temporary: credential.session_token().is_some(),
            signed_headers: std::sync::Arc::from(&*parsed.signed_headers),
            scope: CredentialScope {
                date,
                region: settings.region.clone(),
                service: settings.service.clone(),
            },
            streaming: parsed.content_sha256 == Some(STREAMING_PAYLOAD),
        }
    }

    /// The names of the signed headers, in order.
    pub fn signed_header_names(&self) -> impl Iterator<Item = &str> {
        self.signed_headers.split(';')
    }
}
