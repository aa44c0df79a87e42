//! AppSync's authorization modes, and how a request's credentials select one.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// The most bytes of an `Authorization` value the mode selection looks at:
/// a longer value selects no mode (401). The JWT layer applies its own limit
/// when it verifies the token.
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;

/// One of AppSync's authorization modes (its `authenticationType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMode {
    /// `API_KEY`: the `x-api-key` header.
    ApiKey,
    /// `AWS_IAM`: a SigV4 signature for the service `appsync`.
    AwsIam,
    /// `AMAZON_COGNITO_USER_POOLS`: a Cognito user-pool token in
    /// `Authorization`.
    AmazonCognitoUserPools,
    /// `OPENID_CONNECT`: a token from another OpenID Connect issuer in
    /// `Authorization`.
    OpenidConnect,
    /// `AWS_LAMBDA`: any other `Authorization` value, judged by a Lambda-style
    /// authorizer.
    AwsLambda,
}

impl AuthMode {
    /// Every mode.
    pub const ALL: [AuthMode; 5] = [
        AuthMode::ApiKey,
        AuthMode::AwsIam,
        AuthMode::AmazonCognitoUserPools,
        AuthMode::OpenidConnect,
        AuthMode::AwsLambda,
    ];

    /// AppSync's name for the mode (`API_KEY`, `AWS_IAM`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::ApiKey => "API_KEY",
            AuthMode::AwsIam => "AWS_IAM",
            AuthMode::AmazonCognitoUserPools => "AMAZON_COGNITO_USER_POOLS",
            AuthMode::OpenidConnect => "OPENID_CONNECT",
            AuthMode::AwsLambda => "AWS_LAMBDA",
        }
    }

    /// The directive that names the mode on a type or field (`aws_api_key`,
    /// `aws_iam`, `aws_cognito_user_pools`, `aws_oidc`, `aws_lambda`).
    #[must_use]
    pub fn directive(self) -> &'static str {
        match self {
            AuthMode::ApiKey => "aws_api_key",
            AuthMode::AwsIam => "aws_iam",
            AuthMode::AmazonCognitoUserPools => "aws_cognito_user_pools",
            AuthMode::OpenidConnect => "aws_oidc",
            AuthMode::AwsLambda => "aws_lambda",
        }
    }

    fn bit(self) -> u8 {
        match self {
            AuthMode::ApiKey => 1,
            AuthMode::AwsIam => 2,
            AuthMode::AmazonCognitoUserPools => 4,
            AuthMode::OpenidConnect => 8,
            AuthMode::AwsLambda => 16,
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown authorization mode name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown AppSync authorization mode `{0}` (expected API_KEY, AWS_IAM, AMAZON_COGNITO_USER_POOLS, OPENID_CONNECT or AWS_LAMBDA)"
)]
pub struct UnknownAuthMode(pub String);

impl FromStr for AuthMode {
    type Err = UnknownAuthMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownAuthMode(s.to_owned()))
    }
}

/// A set of modes: the ones an API accepts.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AuthModes(u8);

impl AuthModes {
    /// No mode.
    #[must_use]
    pub fn empty() -> Self {
        Self(0)
    }

    /// The set with `mode` added.
    #[must_use]
    pub fn with(self, mode: AuthMode) -> Self {
        Self(self.0 | mode.bit())
    }

    /// Whether the set holds `mode`.
    #[must_use]
    pub fn contains(self, mode: AuthMode) -> bool {
        self.0 & mode.bit() != 0
    }

    /// The modes in the set.
    pub fn iter(self) -> impl Iterator<Item = AuthMode> {
        AuthMode::ALL.into_iter().filter(move |m| self.contains(*m))
    }
}

impl fmt::Debug for AuthModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<AuthMode> for AuthModes {
    fn from_iter<I: IntoIterator<Item = AuthMode>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::with)
    }
}

/// Why no mode could be selected for a request: AppSync answers each with
/// 401 `UnauthorizedException`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoMode {
    /// Neither `x-api-key` nor `Authorization`, or the header of a mode the
    /// API does not accept.
    MissingCredentials,
    /// An `Authorization` value that no accepted mode takes (not SigV4, not a
    /// JWT of an accepted issuer kind, and no Lambda mode).
    UnrecognizedCredentials,
}

/// Selects the mode a request uses from the credentials it carries, in the
/// order Amplify's AppSync simulator (the one open reimplementation) checks
/// them:
///
/// 1. an `x-api-key` header, if API_KEY is accepted;
/// 2. an `Authorization` header starting `AWS4-HMAC-SHA256`, if AWS_IAM is
///    accepted;
/// 3. an `Authorization` JWT (optionally after `Bearer `) whose `iss` starts
///    `https://cognito-idp.`, if AMAZON_COGNITO_USER_POOLS is accepted; any
///    other JWT, if OPENID_CONNECT is accepted (and, when only user pools
///    are accepted, a JWT of any issuer goes to the user pool, whose layer
///    then checks the issuer);
/// 4. any other `Authorization` value, if AWS_LAMBDA is accepted.
///
/// The selected mode's layer then verifies the credentials.
///
/// ```
/// use http::HeaderMap;
/// use portcullis_graphql::{AuthMode, AuthModes, select_mode};
///
/// let accepted: AuthModes = [AuthMode::AmazonCognitoUserPools, AuthMode::ApiKey].into_iter().collect();
/// let mut headers = HeaderMap::new();
/// headers.insert("x-api-key", "da2-demo".parse().unwrap());
/// assert_eq!(select_mode(&headers, accepted), Ok(AuthMode::ApiKey));
/// ```
///
/// # Errors
///
/// [`NoMode`] when the request carries no credentials an accepted mode takes.
pub fn select_mode(headers: &HeaderMap, accepted: AuthModes) -> Result<AuthMode, NoMode> {
    if accepted.contains(AuthMode::ApiKey) && headers.contains_key("x-api-key") {
        return Ok(AuthMode::ApiKey);
    }
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(NoMode::MissingCredentials);
    };
    let value = value.as_bytes();
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(NoMode::UnrecognizedCredentials);
    }
    if value.starts_with(b"AWS4-HMAC-SHA256") {
        return if accepted.contains(AuthMode::AwsIam) {
            Ok(AuthMode::AwsIam)
        } else {
            Err(NoMode::UnrecognizedCredentials)
        };
    }
    let pools = accepted.contains(AuthMode::AmazonCognitoUserPools);
    let oidc = accepted.contains(AuthMode::OpenidConnect);
    if (pools || oidc)
        && let Some(issuer) = jwt_issuer(value)
    {
        let cognito = issuer.starts_with("https://cognito-idp.");
        return Ok(match (pools, oidc) {
            (true, true) if cognito => AuthMode::AmazonCognitoUserPools,
            (true, true) => AuthMode::OpenidConnect,
            (true, false) => AuthMode::AmazonCognitoUserPools,
            (false, _) => AuthMode::OpenidConnect,
        });
    }
    if accepted.contains(AuthMode::AwsLambda) {
        return Ok(AuthMode::AwsLambda);
    }
    Err(NoMode::UnrecognizedCredentials)
}

/// The `iss` of a JWT, read without verifying it (the mode's layer verifies
/// it), or `None` when the value is not a JWT.
fn jwt_issuer(value: &[u8]) -> Option<String> {
    let token = value.strip_prefix(b"Bearer ").unwrap_or(value);
    let token = std::str::from_utf8(token).ok()?.trim();
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let claims: Iss = serde_json::from_slice(&bytes).ok()?;
    Some(claims.iss.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(iss: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"RS256"}"#),
            e.encode(format!(r#"{{"iss":"{iss}"}}"#))
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_str(v).expect("a header value"),
                )
            })
            .collect()
    }

    #[test]
    fn names_round_trip() {
        for mode in AuthMode::ALL {
            assert_eq!(mode.as_str().parse::<AuthMode>(), Ok(mode));
            let json = serde_json::to_string(&mode).expect("serializes");
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
        }
        assert!("COGNITO".parse::<AuthMode>().is_err());
    }

    #[test]
    fn selection_follows_the_credentials() {
        let all: AuthModes = AuthMode::ALL.into_iter().collect();
        let cup = jwt("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example");
        let oidc = jwt("https://issuer.example.com");
        assert_eq!(
            select_mode(&headers(&[("x-api-key", "k")]), all),
            Ok(AuthMode::ApiKey)
        );
        assert_eq!(
            select_mode(
                &headers(&[("authorization", "AWS4-HMAC-SHA256 Credential=x")]),
                all
            ),
            Ok(AuthMode::AwsIam)
        );
        assert_eq!(
            select_mode(&headers(&[("authorization", &cup)]), all),
            Ok(AuthMode::AmazonCognitoUserPools)
        );
        assert_eq!(
            select_mode(
                &headers(&[("authorization", &format!("Bearer {cup}"))]),
                all
            ),
            Ok(AuthMode::AmazonCognitoUserPools)
        );
        assert_eq!(
            select_mode(&headers(&[("authorization", &oidc)]), all),
            Ok(AuthMode::OpenidConnect)
        );
        assert_eq!(
            select_mode(&headers(&[("authorization", "custom-token")]), all),
            Ok(AuthMode::AwsLambda)
        );
        assert_eq!(
            select_mode(&HeaderMap::new(), all),
            Err(NoMode::MissingCredentials)
        );
    }

    #[test]
    fn only_accepted_modes_are_selected() {
        let pools: AuthModes = [AuthMode::AmazonCognitoUserPools].into_iter().collect();
        assert_eq!(
            select_mode(&headers(&[("x-api-key", "k")]), pools),
            Err(NoMode::MissingCredentials)
        );
        assert_eq!(
            select_mode(
                &headers(&[("authorization", "AWS4-HMAC-SHA256 Credential=x")]),
                pools
            ),
            Err(NoMode::UnrecognizedCredentials)
        );
        // Only user pools accepted: any JWT goes to the pool's layer, which
        // checks the issuer.
        assert_eq!(
            select_mode(
                &headers(&[("authorization", &jwt("https://other.example"))]),
                pools
            ),
            Ok(AuthMode::AmazonCognitoUserPools)
        );
        assert_eq!(
            select_mode(&headers(&[("authorization", "not-a-jwt")]), pools),
            Err(NoMode::UnrecognizedCredentials)
        );
        let long = "a".repeat(MAX_AUTHORIZATION_BYTES + 1);
        let lambda: AuthModes = [AuthMode::AwsLambda].into_iter().collect();
        assert_eq!(
            select_mode(&headers(&[("authorization", &long)]), lambda),
            Err(NoMode::UnrecognizedCredentials)
        );
    }
}
