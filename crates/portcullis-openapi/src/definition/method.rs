//! The settings of one method: its authorization, API key, validation
//! and mock answer.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use portcullis_core::plan::MethodSelector;

/// How a method authorizes its callers (its `security` requirement, or
/// `x-amazon-apigateway-auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authorization {
    /// No authorizer (`NONE`).
    None,
    /// IAM: SigV4 signatures (`x-amazon-apigateway-authtype: awsSigv4`, or
    /// `x-amazon-apigateway-auth: {type: AWS_IAM}`).
    Iam {
        /// The security scheme's name (`AWS_IAM` for `x-amazon-apigateway-auth`).
        scheme: String,
    },
    /// A Cognito user pool (`cognito_user_pools`).
    CognitoUserPools {
        /// The security scheme's name.
        scheme: String,
        /// The method's scopes: with any, the token must hold one of them.
        scopes: Vec<String>,
        /// The user pools' ARNs (`providerARNs`).
        provider_arns: Vec<String>,
    },
    /// A custom (Lambda) authorizer.
    Custom {
        /// The security scheme's name.
        scheme: String,
        /// `token` or `request`.
        kind: CustomAuthorizerKind,
        /// The identity sources, such as `method.request.header.Authorization`.
        identity_source: Vec<String>,
        /// `identityValidationExpression`, for token authorizers.
        identity_validation_expression: Option<String>,
        /// `authorizerResultTtlInSeconds` (300 when absent).
        result_ttl_seconds: u32,
    },
}

impl Authorization {
    /// The security scheme's name, if the method has an authorizer.
    #[must_use]
    pub fn scheme(&self) -> Option<&str> {
        match self {
            Authorization::None => None,
            Authorization::Iam { scheme }
            | Authorization::CognitoUserPools { scheme, .. }
            | Authorization::Custom { scheme, .. } => Some(scheme),
        }
    }
}

/// The kind of a custom authorizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CustomAuthorizerKind {
    /// The identity is one header (`type: token`).
    Token,
    /// Headers, query and context (`type: request`).
    Request,
}

/// Where API keys come from (`x-amazon-apigateway-api-key-source`): the one
/// type of `portcullis-core`, which the API-key layer is configured with too.
pub use portcullis_core::context::ApiKeySource;

/// A required request parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parameter {
    /// A query-string parameter.
    Query(String),
    /// A header.
    Header(String),
}

impl Parameter {
    /// The parameter's name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Parameter::Query(name) | Parameter::Header(name) => name,
        }
    }
}

/// A compiled body model.
#[derive(Clone)]
pub(crate) struct Model {
    pub(crate) name: String,
    pub(crate) validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("name", &self.name).finish()
    }
}

/// A mock integration's answer (REST exports answer CORS preflights this way).
#[derive(Clone, Debug)]
pub(crate) struct MockResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

/// The settings of one method of the definition, as the layer applies them.
/// The layer puts them (in an `Arc`) into the request's extensions.
#[derive(Clone, Debug)]
pub struct MethodSettings {
    pub(crate) resource_path: String,
    pub(crate) http_method: String,
    pub(crate) authorization: Authorization,
    pub(crate) api_key_required: bool,
    pub(crate) api_key_source: ApiKeySource,
    pub(crate) validate_body: bool,
    pub(crate) validate_parameters: bool,
    pub(crate) required: Vec<Parameter>,
    pub(crate) body_required: bool,
    pub(crate) models: Vec<(String, Model)>,
    pub(crate) mock: Option<MockResponse>,
    pub(crate) chain: usize,
}

impl MethodSettings {
    /// The resource path template, such as `/pets/{petId}`.
    #[must_use]
    pub fn resource_path(&self) -> &str {
        &self.resource_path
    }

    /// The HTTP method, upper case, or `ANY` for `x-amazon-apigateway-any-method`.
    #[must_use]
    pub fn http_method(&self) -> &str {
        &self.http_method
    }

    /// How the method authorizes callers.
    #[must_use]
    pub fn authorization(&self) -> &Authorization {
        &self.authorization
    }

    /// Whether the method requires an API key.
    #[must_use]
    pub fn api_key_required(&self) -> bool {
        self.api_key_required
    }

    /// Where the API key comes from.
    #[must_use]
    pub fn api_key_source(&self) -> ApiKeySource {
        self.api_key_source
    }

    /// Whether the body is validated against the method's model.
    #[must_use]
    pub fn validates_body(&self) -> bool {
        self.validate_body
    }

    /// Whether required parameters and headers are checked.
    #[must_use]
    pub fn validates_parameters(&self) -> bool {
        self.validate_parameters
    }

    /// The required query parameters and headers.
    #[must_use]
    pub fn required_parameters(&self) -> &[Parameter] {
        &self.required
    }

    /// The names of the body models, by media type.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str)> {
        self.models
            .iter()
            .map(|(media, model)| (media.as_str(), model.name.as_str()))
    }

    /// The method's selector for per-method settings, such as `/pets/GET`
    /// (`ANY` becomes `*`).
    #[must_use]
    pub fn selector(&self) -> MethodSelector {
        let method = if self.http_method == "ANY" {
            "*"
        } else {
            &self.http_method
        };
        let key = if self.resource_path == "/" {
            format!("//{method}")
        } else {
            format!("{}/{method}", self.resource_path)
        };
        // A resource path starts with `/` (checked at load) and a method is
        // one token, so the key always parses.
        key.parse()
            .expect("a loaded resource path and method always form a selector")
    }
}
