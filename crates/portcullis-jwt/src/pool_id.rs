//! [`UserPoolId`]: a Cognito user pool id, checked when it is parsed.

use std::fmt;
use std::str::FromStr;

use portcullis_core::config::ConfigError;
use serde::Deserialize;

const USER_POOL_SHAPE: &str = "a user pool id looks like `us-east-1_AbCdEf123`";

/// A Cognito user pool id, such as `us-east-1_AbCdEf123`: a region, `_`, and
/// the pool's own letters and digits. Checked when it is parsed, so the
/// region is never split out of it by hand.
///
/// ```
/// use portcullis_jwt::UserPoolId;
///
/// let pool: UserPoolId = "eu-west-1_AbCdEf123".parse().unwrap();
/// assert_eq!(pool.region(), "eu-west-1");
/// assert_eq!(pool.as_str(), "eu-west-1_AbCdEf123");
/// assert!("eu-west-1".parse::<UserPoolId>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct UserPoolId {
    id: String,
    /// Where the region ends (the `_`).
    split: usize,
}

impl UserPoolId {
    /// The region, `us-east-1` in `us-east-1_AbCdEf123`.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.id[..self.split]
    }

    /// The whole id, `us-east-1_AbCdEf123`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl FromStr for UserPoolId {
    type Err = ConfigError;

    /// Parses `region_Id`: the region lower-case letters, digits and `-`, the
    /// rest ASCII letters and digits, neither empty.
    fn from_str(id: &str) -> Result<Self, ConfigError> {
        let Some((region, pool)) = id.split_once('_') else {
            return Err(ConfigError::whole(USER_POOL_SHAPE));
        };
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let pool_ok = !pool.is_empty() && pool.bytes().all(|b| b.is_ascii_alphanumeric());
        if !(region_ok && pool_ok) {
            return Err(ConfigError::whole(USER_POOL_SHAPE));
        }
        Ok(Self {
            id: id.to_owned(),
            split: region.len(),
        })
    }
}

impl TryFrom<String> for UserPoolId {
    type Error = ConfigError;

    fn try_from(id: String) -> Result<Self, ConfigError> {
        id.parse()
    }
}

impl fmt::Display for UserPoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}
