//! Signing requests with the `aws-sigv4` crate, as an AWS SDK would, so
//! that tests check the layers against a real signer.
//!
//! ```
//! use portcullis_test_support::sigv4::{Signing, sign_request};
//!
//! let mut request = http::Request::get("https://example.amazonaws.com/pets")
//!     .header("host", "example.amazonaws.com")
//!     .body(())
//!     .expect("a valid request");
//! sign_request(&mut request, b"", &Signing::now());
//! let authorization = request.headers()["authorization"].to_str().expect("ASCII");
//! assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
//! assert!(request.headers().contains_key("x-amz-date"));
//! ```

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, sign,
};
use aws_sigv4::sign::v4;

/// The access key id of AWS's documentation examples.
pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
/// The secret access key of AWS's documentation examples.
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// The default signing region.
pub const REGION: &str = "us-east-1";
/// The default signing service: API Gateway's.
pub const SERVICE: &str = "execute-api";

/// How to sign: the credentials, the scope, the time and the form.
#[derive(Clone, Debug)]
pub struct Signing {
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret: String,
    /// The session token of temporary credentials.
    pub token: Option<String>,
    /// The signing region.
    pub region: String,
    /// The signing service.
    pub service: String,
    /// The signing time.
    pub time: SystemTime,
    /// Presign the URL, valid this long, instead of an `Authorization`
    /// header.
    pub presign: Option<Duration>,
    /// Send the payload hash in `x-amz-content-sha256`.
    pub content_sha256_header: bool,
    /// Sign `UNSIGNED-PAYLOAD` instead of the body's hash.
    pub unsigned_payload: bool,
}

impl Signing {
    /// The documentation example's credentials, `us-east-1`, `execute-api`,
    /// signed at `time` in an `Authorization` header.
    #[must_use]
    pub fn at(time: SystemTime) -> Self {
        Self {
            access_key: ACCESS_KEY.to_owned(),
            secret: SECRET.to_owned(),
            token: None,
            region: REGION.to_owned(),
            service: SERVICE.to_owned(),
            time,
            presign: None,
            content_sha256_header: false,
            unsigned_payload: false,
        }
    }

    /// As [`at`](Self::at), signed now.
    #[must_use]
    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// These credentials instead of the documentation example's.
    #[must_use]
    pub fn credentials(mut self, access_key: &str, secret: &str, token: Option<&str>) -> Self {
        self.access_key = access_key.to_owned();
        self.secret = secret.to_owned();
        self.token = token.map(str::to_owned);
        self
    }

    /// This region and service instead of `us-east-1` and `execute-api`.
    #[must_use]
    pub fn scope(mut self, region: &str, service: &str) -> Self {
        self.region = region.to_owned();
        self.service = service.to_owned();
        self
    }
}

/// Signs `request`, whose body is `body`, in place, as an AWS SDK would.
///
/// # Panics
///
/// If `aws-sigv4` refuses the request or the settings, or a header value is
/// not ASCII: a test's setup is wrong.
pub fn sign_request<B>(request: &mut http::Request<B>, body: &[u8], signing: &Signing) {
    let credentials = Credentials::new(
        signing.access_key.as_str(),
        signing.secret.as_str(),
        signing.token.clone(),
        None,
        "portcullis-test-support",
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
        .region(&signing.region)
        .name(&signing.service)
        .time(signing.time)
        .settings(settings)
        .build()
        .expect("aws-sigv4 accepts the signing parameters")
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value
                    .to_str()
                    .expect("a test's header values are ASCII")
                    .to_owned(),
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
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
        signable_body,
    )
    .expect("aws-sigv4 accepts the request");
    let (instructions, _signature) = sign(signable, &params)
        .expect("aws-sigv4 signs the request")
        .into_parts();
    instructions.apply_to_request_http1x(request);
}
