//! The credentials service's request body.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::error::ExchangeError;

/// The request body of the credentials service, in the shape of Cognito's
/// GetId / GetCredentialsForIdentity: `{"IdentityPoolId"?, "IdentityId"?,
/// "Logins"?: {"<provider>": "<id token>"}}`. Unknown fields (such as
/// `CustomRoleArn`) are ignored. An empty body is a guest with no identity id.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialsRequest {
    /// The pool, checked when the pool has an id.
    #[serde(default)]
    pub identity_pool_id: Option<String>,
    /// The identity id the client already has.
    #[serde(default)]
    pub identity_id: Option<String>,
    /// Provider name (the issuer without `https://`) → ID token. At most one.
    #[serde(default)]
    pub logins: BTreeMap<String, String>,
}

impl fmt::Debug for CredentialsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsRequest")
            .field("identity_pool_id", &self.identity_pool_id)
            .field("identity_id", &self.identity_id)
            .field("logins", &self.logins.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The most logins a request may name before it is refused unparsed further.
pub(super) const MAX_LOGINS: usize = 1;

impl CredentialsRequest {
    /// Parses a request body of at most `max_bytes` bytes.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::TooLarge`] past the limit, [`ExchangeError::Malformed`]
    /// for anything but the JSON object, [`ExchangeError::TooManyLogins`].
    pub fn parse(body: &[u8], max_bytes: usize) -> Result<Self, ExchangeError> {
        if body.len() > max_bytes {
            return Err(ExchangeError::TooLarge);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let request: Self = serde_json::from_slice(body).map_err(|_| ExchangeError::Malformed)?;
        if request.logins.len() > MAX_LOGINS {
            return Err(ExchangeError::TooManyLogins);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_limits() {
        let body =
            br#"{"IdentityPoolId":"us-east-1:p","Logins":{"issuer.test":"t"},"CustomRoleArn":"x"}"#;
        let request = CredentialsRequest::parse(body, 1024).expect("parses");
        assert_eq!(request.logins["issuer.test"], "t");
        assert_eq!(
            CredentialsRequest::parse(body, 10).err(),
            Some(ExchangeError::TooLarge)
        );
        assert!(CredentialsRequest::parse(b"  ", 10).is_ok());
        assert_eq!(
            CredentialsRequest::parse(b"[1]", 10).err(),
            Some(ExchangeError::Malformed)
        );
        let two = br#"{"Logins":{"a":"t","b":"u"}}"#;
        assert_eq!(
            CredentialsRequest::parse(two, 1024).err(),
            Some(ExchangeError::TooManyLogins)
        );
        let debug = format!("{:?}", CredentialsRequest::parse(body, 1024).expect("ok"));
        assert!(!debug.contains("\"t\""), "{debug}");
    }
}
