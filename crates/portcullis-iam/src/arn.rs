//! The execute-api resource ARN of a request.

use http::Request;
use portcullis_core::path::{CanonicalPath, PathRefusal};
use serde::{Deserialize, Serialize};

use portcullis_core::config::ConfigError;

/// Builds the resource ARN API Gateway authorizes a request against:
/// `arn:{partition}:execute-api:{region}:{account}:{api-id}/{stage}/{METHOD}/{path}`.
///
/// The path is the request's path without its leading `/`, as API Gateway
/// builds its method ARN, so `GET /` gives `.../prod/GET/`.
/// [`for_request`](Self::for_request) uses the request's
/// [`CanonicalPath`](portcullis_core::path::CanonicalPath), decoded once, so
/// that `/pets/%37` and `/pets/7` are one resource to a policy, as they are
/// to the service; a path with no canonical form (an encoded `/`, a dot
/// segment, ...) has no ARN. The fixed prefix is built once, when the
/// configuration is loaded.
///
/// ```
/// use portcullis_iam::ExecuteApiArn;
///
/// let arns = ExecuteApiArn::new("us-east-1", "123456789012", "abc123", "prod")?;
/// assert_eq!(
///     arns.resource("GET", "/pets/7"),
///     "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/7"
/// );
/// let request = http::Request::post("https://example.com/").body(()).unwrap();
/// assert_eq!(
///     arns.for_request(&request).unwrap(),
///     "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/"
/// );
/// // Every spelling of a path is one resource.
/// let request = http::Request::get("https://example.com/pets/%37").body(()).unwrap();
/// assert_eq!(arns.for_request(&request).unwrap(), arns.resource("GET", "/pets/7"));
/// # Ok::<(), portcullis_core::config::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ArnConfig", into = "ArnConfig")]
pub struct ExecuteApiArn {
    config: ArnConfig,
    prefix: Box<str>,
}

/// The serde form of [`ExecuteApiArn`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArnConfig {
    #[serde(default = "default_partition")]
    partition: String,
    region: String,
    account_id: String,
    api_id: String,
    stage: String,
}

fn default_partition() -> String {
    "aws".to_owned()
}

impl TryFrom<ArnConfig> for ExecuteApiArn {
    type Error = ConfigError;

    fn try_from(config: ArnConfig) -> Result<Self, Self::Error> {
        let check = |field: &'static str, value: &str| {
            if value.is_empty() {
                return Err(ConfigError::new(field, "must not be empty"));
            }
            if value.contains(':') || value.contains('/') {
                return Err(ConfigError::new(field, "must not contain `:` or `/`"));
            }
            Ok(())
        };
        check("partition", &config.partition)?;
        check("region", &config.region)?;
        check("account_id", &config.account_id)?;
        check("api_id", &config.api_id)?;
        check("stage", &config.stage)?;
        let prefix = format!(
            "arn:{}:execute-api:{}:{}:{}/{}/",
            config.partition, config.region, config.account_id, config.api_id, config.stage
        )
        .into();
        Ok(Self { config, prefix })
    }
}

impl From<ExecuteApiArn> for ArnConfig {
    fn from(arn: ExecuteApiArn) -> Self {
        arn.config
    }
}

impl ExecuteApiArn {
    /// The ARNs of one API stage, in the `aws` partition.
    ///
    /// # Errors
    ///
    /// When a field is empty or contains `:` or `/`.
    pub fn new(
        region: impl Into<String>,
        account_id: impl Into<String>,
        api_id: impl Into<String>,
        stage: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        ArnConfig {
            partition: default_partition(),
            region: region.into(),
            account_id: account_id.into(),
            api_id: api_id.into(),
            stage: stage.into(),
        }
        .try_into()
    }

    /// The same stage in another partition (`aws-cn`, `aws-us-gov`).
    ///
    /// # Errors
    ///
    /// When the partition is empty or contains `:` or `/`.
    pub fn with_partition(self, partition: impl Into<String>) -> Result<Self, ConfigError> {
        let mut config = self.config;
        config.partition = partition.into();
        config.try_into()
    }

    /// The region.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// The account id.
    #[must_use]
    pub fn account_id(&self) -> &str {
        &self.config.account_id
    }

    /// The API id.
    #[must_use]
    pub fn api_id(&self) -> &str {
        &self.config.api_id
    }

    /// The stage.
    #[must_use]
    pub fn stage(&self) -> &str {
        &self.config.stage
    }

    /// `arn:aws:execute-api:{region}:{account}:{api-id}/{stage}/`, the part
    /// every resource ARN of the stage starts with.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The resource ARN of `method` on `path` (with or without its leading
    /// `/`).
    #[must_use]
    pub fn resource(&self, method: &str, path: &str) -> String {
        let path = path.strip_prefix('/').unwrap_or(path);
        let mut arn = String::with_capacity(self.prefix.len() + method.len() + 1 + path.len());
        arn.push_str(&self.prefix);
        arn.push_str(method);
        arn.push('/');
        arn.push_str(path);
        arn
    }

    /// The resource ARN of a request: its method and its canonical path.
    ///
    /// # Errors
    ///
    /// The [`PathRefusal`] of a path with no canonical form; answer it with
    /// [`PathRefusal::gateway_response`].
    pub fn for_request<B>(&self, request: &Request<B>) -> Result<String, PathRefusal> {
        let path = CanonicalPath::of_uri(request.uri())?;
        Ok(self.resource(request.method().as_str(), &path))
    }
}
