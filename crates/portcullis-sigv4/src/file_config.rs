//! [`SigV4FileConfig`]: IAM callers as a configuration file spells them (the
//! facade's `[iam]` section), policies in files beside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::Clock;
use portcullis_core::config::ConfigError;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use serde::Deserialize;

use crate::credentials::{Credential, CredentialProvider, StaticCredentialProvider};
use crate::layer::{DEFAULT_MAX_BODY_BYTES, SigV4Layer};

/// IAM (SigV4) callers and the layer's settings, as a configuration file
/// spells them: the facade's `[iam]` section deserializes straight into it.
/// Policies are JSON files, read relative to a folder the caller gives. For
/// the layer as data, policies inline, see
/// [`SigV4Config`](crate::SigV4Config).
///
/// ```
/// use portcullis_sigv4::SigV4FileConfig;
///
/// let config: SigV4FileConfig = serde_json::from_str(r#"{
///     "users": [{
///         "arn": "arn:aws:iam::123456789012:user/ops",
///         "access_key_id": "AKIDEXAMPLE",
///         "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
///     }],
///     "clock_skew_seconds": 60
/// }"#).unwrap();
/// assert!(!format!("{config:?}").contains("wJalr"));
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SigV4FileConfig {
    /// The callers.
    #[serde(default)]
    pub users: Vec<SigV4FileUser>,
    /// The API's resource policy (a JSON file).
    #[serde(default)]
    pub resource_policy: Option<PathBuf>,
    /// The clock skew allowed either way, in seconds (default 300, at most
    /// 3600).
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    /// Verify signatures only, evaluating no policy (default false).
    #[serde(default)]
    pub authentication_only: bool,
    /// The most body bytes the layer buffers at once, across all in-flight
    /// requests, while it hashes bodies (default 64 MiB, at least 10 MiB,
    /// the per-request limit); past it, THROTTLED (429).
    #[serde(default)]
    pub max_buffered_body_bytes: Option<u64>,
    /// Whether `x-amz-content-sha256: UNSIGNED-PAYLOAD` is accepted (default
    /// false: the AWS SDKs sign the payload for execute-api).
    #[serde(default)]
    pub allow_unsigned_payload: bool,
}

/// One caller of a [`SigV4FileConfig`] (`[[iam.users]]`). Its `Debug`
/// output redacts the secret key and the session token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SigV4FileUser {
    /// The principal's ARN.
    pub arn: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Identity policies: JSON files, relative to the configuration's folder.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
}

impl fmt::Debug for SigV4FileUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4FileUser")
            .field("arn", &self.arn)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("policies", &self.policies)
            .finish()
    }
}

/// Reads a policy file, named by its field when it cannot.
fn read_policy(base_dir: &Path, path: &Path, field: &str) -> Result<PolicyDocument, ConfigError> {
    let full = base_dir.join(path);
    let text = std::fs::read_to_string(&full).map_err(|e| {
        ConfigError::new(
            field.to_owned(),
            format!("cannot read {}: {e}", full.display()),
        )
    })?;
    PolicyDocument::from_json(&text).map_err(|e| ConfigError::new(field.to_owned(), e.to_string()))
}

impl SigV4FileConfig {
    /// Each user's ARN and identity policies, read from `base_dir` (for the
    /// management API's authorization, say).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] at `users[i].policies[j]`: unreadable, or not a
    /// policy.
    pub fn policies(
        &self,
        base_dir: &Path,
    ) -> Result<Vec<(String, Arc<PolicyDocument>)>, ConfigError> {
        let mut out = Vec::new();
        for (i, user) in self.users.iter().enumerate() {
            for (j, path) in user.policies.iter().enumerate() {
                let policy = read_policy(base_dir, path, &format!("users[{i}].policies[{j}]"))?;
                out.push((user.arn.clone(), Arc::new(policy)));
            }
        }
        Ok(out)
    }

    /// The users as credentials, with their policies read from `base_dir`.
    ///
    /// # Errors
    ///
    /// As [`policies`](Self::policies).
    pub fn credentials(&self, base_dir: &Path) -> Result<StaticCredentialProvider, ConfigError> {
        let mut provider = StaticCredentialProvider::new();
        for (i, user) in self.users.iter().enumerate() {
            let mut credential = Credential::new(
                user.access_key_id.as_str(),
                user.secret_access_key.as_str(),
                user.arn.as_str(),
            );
            if let Some(token) = &user.session_token {
                credential = credential.with_session_token(token.as_str(), None);
            }
            for (j, path) in user.policies.iter().enumerate() {
                let policy = read_policy(base_dir, path, &format!("users[{i}].policies[{j}]"))?;
                credential = credential.with_policy(policy);
            }
            provider.insert(credential);
        }
        Ok(provider)
    }

    /// Builds the layer for `api` on the users' [`credentials`](Self::credentials).
    ///
    /// # Errors
    ///
    /// As [`build_with`](Self::build_with).
    pub fn build(
        &self,
        api: ExecuteApiArn,
        base_dir: &Path,
        clock: impl Clock,
    ) -> Result<SigV4Layer, ConfigError> {
        let provider = self.credentials(base_dir)?;
        self.build_with(api, provider, base_dir, clock)
    }

    /// Builds the layer for `api` on `provider` (the users'
    /// [`credentials`](Self::credentials) behind another provider, say),
    /// with this section's settings and resource policy.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] at `clock_skew_seconds` (over 3600),
    /// `resource_policy` (unreadable, or not a policy) or
    /// `max_buffered_body_bytes` (under 10 MiB).
    pub fn build_with(
        &self,
        api: ExecuteApiArn,
        provider: impl CredentialProvider,
        base_dir: &Path,
        clock: impl Clock,
    ) -> Result<SigV4Layer, ConfigError> {
        let mut layer = SigV4Layer::new(api, provider).clock(clock);
        if let Some(skew) = self.clock_skew_seconds {
            if skew > 3600 {
                return Err(ConfigError::new(
                    "clock_skew_seconds",
                    "must be at most 3600",
                ));
            }
            layer = layer.clock_skew(Duration::from_secs(skew));
        }
        if let Some(path) = &self.resource_policy {
            layer = layer.resource_policy(read_policy(base_dir, path, "resource_policy")?);
        }
        if self.authentication_only {
            layer = layer.authentication_only();
        }
        if let Some(bytes) = self.max_buffered_body_bytes {
            if bytes < DEFAULT_MAX_BODY_BYTES {
                return Err(ConfigError::new(
                    "max_buffered_body_bytes",
                    "must be at least 10485760 (the per-request body limit)",
                ));
            }
            layer = layer.max_buffered_body_bytes(bytes);
        }
        Ok(layer.allow_unsigned_payload(self.allow_unsigned_payload))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use portcullis_core::clock::SystemClock;
    use portcullis_iam::ExecuteApiArn;

    use super::SigV4FileConfig;

    fn api() -> ExecuteApiArn {
        ExecuteApiArn::new("eu-west-1", "123456789012", "a1b2c3", "prod").expect("an API")
    }

    fn config(json: &str) -> SigV4FileConfig {
        serde_json::from_str(json).expect("a config")
    }

    #[test]
    fn out_of_range_settings_are_refused_by_field() {
        let nowhere = Path::new("/nonexistent-portcullis-dir");
        let error = config(r#"{"clock_skew_seconds": 3601}"#)
            .build(api(), nowhere, SystemClock)
            .expect_err("too much skew");
        assert_eq!(error.path(), "clock_skew_seconds");
        let error = config(r#"{"max_buffered_body_bytes": 1024}"#)
            .build(api(), nowhere, SystemClock)
            .expect_err("below one body");
        assert_eq!(error.path(), "max_buffered_body_bytes");
        let error = config(r#"{"resource_policy": "absent.json"}"#)
            .build(api(), nowhere, SystemClock)
            .expect_err("no such file");
        assert_eq!(error.path(), "resource_policy");
        let error = config(
            r#"{"users": [{"arn": "arn:aws:iam::123456789012:user/a", "access_key_id": "AKID",
                "secret_access_key": "s", "policies": ["absent.json"]}]}"#,
        )
        .policies(nowhere)
        .expect_err("no such file");
        assert_eq!(error.path(), "users[0].policies[0]");
        assert!(error.message().contains("absent.json"), "{error}");
    }
}
