//! Temporary credentials, as the credentials service returns them.

use std::fmt;
use std::sync::Arc;

use portcullis_sigv4::Secret;
use time::OffsetDateTime;

/// Temporary credentials, as the credentials service returns them.
#[derive(Clone)]
pub struct IssuedCredentials {
    pub(super) identity_id: String,
    pub(super) access_key_id: String,
    pub(super) secret_key: Secret,
    pub(super) session_token: Secret,
    pub(super) expiration: OffsetDateTime,
    pub(super) principal_arn: String,
    pub(super) role: Arc<str>,
}

impl IssuedCredentials {
    /// The identity id (`{region}:{uuid}`).
    #[must_use]
    pub fn identity_id(&self) -> &str {
        &self.identity_id
    }

    /// The access key id (`ASIA` and 16 base32 characters).
    #[must_use]
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key.
    #[must_use]
    pub fn secret_key(&self) -> &Secret {
        &self.secret_key
    }

    /// The session token, for `X-Amz-Security-Token`.
    #[must_use]
    pub fn session_token(&self) -> &Secret {
        &self.session_token
    }

    /// When the credentials expire.
    #[must_use]
    pub fn expiration(&self) -> OffsetDateTime {
        self.expiration
    }

    /// The principal the credentials authenticate:
    /// `arn:aws:sts::{account}:assumed-role/{role}/{identity-id}`.
    #[must_use]
    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    /// The role's name.
    #[must_use]
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The response body of the credentials service, in the shape of
    /// Cognito's GetCredentialsForIdentity: `{"IdentityId": ..,
    /// "Credentials": {"AccessKeyId", "SecretKey", "SessionToken",
    /// "Expiration"}}`, with `Expiration` in Unix seconds.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "IdentityId": self.identity_id,
            "Credentials": {
                "AccessKeyId": self.access_key_id,
                "SecretKey": self.secret_key.expose(),
                "SessionToken": self.session_token.expose(),
                "Expiration": self.expiration.unix_timestamp(),
            }
        })
        .to_string()
    }
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("identity_id", &self.identity_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &self.secret_key)
            .field("session_token", &self.session_token)
            .field("expiration", &self.expiration)
            .field("principal_arn", &self.principal_arn)
            .finish()
    }
}
