//! Signing with the `aws-sigv4` crate, for the tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, sign,
};
use aws_sigv4::sign::v4;

pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const REGION: &str = "us-east-1";
pub const SERVICE: &str = "execute-api";

/// How to sign.
#[derive(Clone, Debug)]
pub struct Signing {
    pub access_key: String,
    pub secret: String,
    pub token: Option<String>,
    pub time: SystemTime,
    pub presign: Option<Duration>,
    pub content_sha256_header: bool,
    pub unsigned_payload: bool,
}

impl Signing {
    pub fn at(time: SystemTime) -> Self {
        Self {
            access_key: ACCESS_KEY.to_owned(),
            secret: SECRET.to_owned(),
            token: None,
            time,
            presign: None,
            content_sha256_header: false,
            unsigned_payload: false,
        }
    }

    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }
}

/// Signs `request` (whose body is `body`) in place, as an AWS SDK would.
pub fn sign_request<B>(request: &mut http::Request<B>, body: &[u8], signing: &Signing) {
    let credentials = Credentials::new(
        signing.access_key.as_str(),
        signing.secret.as_str(),
        signing.token.clone(),
        None,
        "tests",
    );
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    if let Some(expires) = signing.presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    if signing.content_sha256_header || signing.unsigned_payload {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    settings.session_token_mode = SessionTokenMode::Include;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(SERVICE)
        .time(signing.time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().expect("ascii header").to_owned(),
            )
        })
        .collect();
    let signable_body = if signing.unsigned_payload {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(body)
    };
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        signable_body,
    )
    .expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("signed").into_parts();
    instructions.apply_to_request_http1x(request);
}
