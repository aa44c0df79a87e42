//! [`JwtFileConfig`]: one issuer as a configuration file spells it (the
//! facade's `[jwt]` section), with its typed fields: the Cognito
//! [`UserPoolId`] and the [`JwksLocation`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use portcullis_core::clock::Clock;
use portcullis_core::config::ConfigError;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::issuer::{Issuer, JwksSource, TokenUse};
use crate::layer::JwtLayer;
use crate::pool_id::UserPoolId;

/// Where a configured issuer's JWKS is: a file, read when the layer is built,
/// or an http(s) URL, fetched and refreshed in the background.
///
/// It reads from a string, classified by scheme (`"https://..."` and
/// `"http://..."` are URLs, anything else a file), or from a table that says
/// which: `{ file = "keys.json" }`, `{ url = "https://..." }`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksLocation {
    /// A JWKS file, relative to the configuration's folder unless absolute.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl JwksLocation {
    /// Reads a string as a location: a URL if it starts with `https://` or
    /// `http://`, else a file.
    #[must_use]
    pub fn classify(text: &str) -> Self {
        if is_http(text) {
            Self::Url(text.to_owned())
        } else {
            Self::File(PathBuf::from(text))
        }
    }
}

fn is_http(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

impl<'de> Deserialize<'de> for JwksLocation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Location;

        impl<'de> Visitor<'de> for Location {
            type Value = JwksLocation;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWKS file or http(s) URL, or a table with `file` or `url`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<JwksLocation, E> {
                Ok(JwksLocation::classify(text))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JwksLocation, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("give `file` or `url`"));
                };
                let location = match key.as_str() {
                    "file" => JwksLocation::File(map.next_value()?),
                    "url" => {
                        let url: String = map.next_value()?;
                        if !is_http(&url) {
                            return Err(de::Error::custom(
                                "`url` must start with `https://` or `http://`",
                            ));
                        }
                        JwksLocation::Url(url)
                    }
                    other => return Err(de::Error::unknown_field(other, &["file", "url"])),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("give `file` or `url`, not both"));
                }
                Ok(location)
            }
        }

        deserializer.deserialize_any(Location)
    }
}

/// One issuer, as a configuration file spells it: the facade's `[jwt]`
/// section deserializes straight into it, and [`build`](Self::build) makes
/// the [`JwtLayer`]. For the whole layer as data (several issuers, the token
/// source, the cache) see [`JwtConfig`](crate::JwtConfig).
///
/// ```
/// use portcullis_jwt::{JwtFileConfig, JwksLocation};
///
/// let config: JwtFileConfig = serde_json::from_str(r#"{
///     "cognito_user_pool": "eu-west-1_AbCdEf123",
///     "jwks": "keys/jwks.json",
///     "client_ids": ["app-client"]
/// }"#).unwrap();
/// assert_eq!(config.cognito_user_pool.as_ref().unwrap().region(), "eu-west-1");
/// assert_eq!(config.jwks, Some(JwksLocation::File("keys/jwks.json".into())));
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtFileConfig {
    /// A Cognito user pool id (`us-east-1_AbCdEf123`): Cognito's issuer,
    /// RS256, `token_use` and app-client checks.
    #[serde(default)]
    pub cognito_user_pool: Option<UserPoolId>,
    /// Any OIDC issuer (exact `iss`). Give this or `cognito_user_pool`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The JWKS: a file (relative to the configuration's folder) or an
    /// http(s) URL. Default: the pool's JWKS URL, or OIDC discovery.
    #[serde(default)]
    pub jwks: Option<JwksLocation>,
    /// Accepted Cognito app clients.
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// Accepted audiences (`aud`).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `id` or `access` (default: either).
    #[serde(default)]
    pub token_use: Option<TokenUse>,
    /// Allowed algorithms (default: the issuer's).
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// Leeway on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    /// Accept `http://` key URLs off loopback (default false).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

impl JwtFileConfig {
    /// The issuer this configures, its JWKS file (if any) read from
    /// `base_dir` now.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] at `issuer` (both `issuer` and `cognito_user_pool`
    /// given), at the whole section (neither), or at `jwks` (an unreadable
    /// file).
    pub fn issuer(&self, base_dir: &Path) -> Result<Issuer, ConfigError> {
        let mut issuer = match (&self.cognito_user_pool, &self.issuer) {
            (Some(pool), None) => Issuer::user_pool(pool),
            (None, Some(iss)) => Issuer::new(iss.as_str()),
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "issuer",
                    "give `cognito_user_pool` or `issuer`, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::whole(
                    "missing: give `cognito_user_pool` or `issuer`",
                ));
            }
        };
        match &self.jwks {
            Some(JwksLocation::Url(url)) => issuer = issuer.keys(JwksSource::JwksUrl(url.clone())),
            Some(JwksLocation::File(path)) => {
                let full = base_dir.join(path);
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    ConfigError::new("jwks", format!("cannot read {}: {e}", full.display()))
                })?;
                issuer = issuer.keys(JwksSource::Jwks(text));
            }
            None => {}
        }
        if !self.client_ids.is_empty() {
            issuer = issuer.client_ids(self.client_ids.iter().cloned());
        }
        if !self.audiences.is_empty() {
            issuer = issuer.audiences(self.audiences.iter().cloned());
        }
        if !self.algorithms.is_empty() {
            issuer = issuer.algorithms(self.algorithms.iter().copied());
        }
        if let Some(leeway) = self.leeway_seconds {
            issuer = issuer.leeway(Duration::from_secs(leeway));
        }
        Ok(issuer.allow_insecure_http(self.allow_insecure_http))
    }

    /// Builds the layer: [`issuer`](Self::issuer), on `clock`, narrowed to
    /// `token_use` when given.
    ///
    /// # Errors
    ///
    /// As [`issuer`](Self::issuer), and the layer's own refusals (such as a
    /// bad URL or an empty JWKS), with paths inside this section.
    pub fn build(&self, base_dir: &Path, clock: impl Clock) -> Result<JwtLayer, ConfigError> {
        let mut layer = JwtLayer::builder()
            .issuer(self.issuer(base_dir)?)
            .clock(clock)
            .build()?;
        if let Some(token_use) = self.token_use {
            layer = layer.token_use(token_use);
        }
        Ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::{JwksLocation, JwtFileConfig, UserPoolId};

    #[test]
    fn a_user_pool_id_splits_its_region_and_refuses_other_shapes() {
        let pool: UserPoolId = "ap-southeast-2_Zx9".parse().expect("a pool id");
        assert_eq!(pool.region(), "ap-southeast-2");
        assert_eq!(pool.to_string(), "ap-southeast-2_Zx9");
        for bad in [
            "",
            "us-east-1",
            "_AbC",
            "us-east-1_",
            "US-EAST-1_AbC",
            "us-east-1_Ab-C",
        ] {
            let error = bad.parse::<UserPoolId>().expect_err(bad);
            assert!(
                error.message().contains("us-east-1_AbCdEf123"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn a_jwks_string_is_a_url_by_its_scheme_and_a_file_otherwise() {
        let read = |json: &str| serde_json::from_str::<JwksLocation>(json);
        assert_eq!(
            read(r#""https://idp.example/jwks.json""#).expect("a URL"),
            JwksLocation::Url("https://idp.example/jwks.json".into())
        );
        assert_eq!(
            read(r#""http://127.0.0.1:9/jwks""#).expect("a URL"),
            JwksLocation::Url("http://127.0.0.1:9/jwks".into())
        );
        assert_eq!(
            read(r#""keys/https.json""#).expect("a file"),
            JwksLocation::File("keys/https.json".into())
        );
        assert_eq!(
            read(r#"{"file": "https://not-a-url.json"}"#).expect("a file"),
            JwksLocation::File("https://not-a-url.json".into())
        );
        assert_eq!(
            read(r#"{"url": "https://idp.example/jwks"}"#).expect("a URL"),
            JwksLocation::Url("https://idp.example/jwks".into())
        );
        for bad in [
            r#"{"url": "keys.json"}"#,
            r#"{"path": "keys.json"}"#,
            r#"{"file": "a", "url": "https://b"}"#,
            r"{}",
            "3",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unreadable_jwks_file_is_refused_at_jwks() {
        let config: JwtFileConfig =
            serde_json::from_str(r#"{"issuer": "https://idp.example", "jwks": "absent.json"}"#)
                .expect("a config");
        let error = config
            .issuer(std::path::Path::new("/nonexistent-portcullis-dir"))
            .expect_err("no such file");
        assert_eq!(error.path(), "jwks");
        assert!(error.message().contains("absent.json"), "{error}");
    }
}
