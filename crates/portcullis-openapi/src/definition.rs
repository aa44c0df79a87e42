//! Loading an API definition: OpenAPI 3.0 or Swagger 2.0, JSON or YAML, with
//! API Gateway's `x-amazon-apigateway-*` extensions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use portcullis_core::GatewayResponseType;
use portcullis_core::plan::{MethodSelector, ThrottleSettings};
use portcullis_core::response::{BodyTemplate, GatewayResponses, ResponseOverride};
use serde_json::Value;

/// The largest definition [`ApiDefinition::from_slice`] reads: 16 MiB.
pub const MAX_DEFINITION_BYTES: usize = 16 * 1024 * 1024;

/// The extensions read and applied.
const SUPPORTED: &[&str] = &[
    "x-amazon-apigateway-api-key-source",
    "x-amazon-apigateway-authtype",
    "x-amazon-apigateway-authorizer",
    "x-amazon-apigateway-auth",
    "x-amazon-apigateway-request-validators",
    "x-amazon-apigateway-request-validator",
    "x-amazon-apigateway-gateway-responses",
    "x-amazon-apigateway-cors",
    "x-amazon-apigateway-any-method",
    // Read for OPTIONS methods with mock integrations only; every other
    // integration is the application's own route, and ignored on purpose.
    "x-amazon-apigateway-integration",
];

/// The extensions ignored on purpose: they describe what the application or
/// its host does, not an access decision.
pub const IGNORED_ON_PURPOSE: &[&str] = &[
    "x-amazon-apigateway-integrations",
    "x-amazon-apigateway-binary-media-types",
    "x-amazon-apigateway-minimum-compression-size",
    "x-amazon-apigateway-importexport-version",
    "x-amazon-apigateway-documentation",
    "x-amazon-apigateway-endpoint-configuration",
    "x-amazon-apigateway-tag-value",
];

/// Why a definition cannot be loaded. Every variant names the JSON pointer of
/// the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The bytes are neither JSON nor YAML, or too many of them.
    #[error("the definition cannot be read: {0}")]
    Syntax(String),
    /// An extension this crate neither applies nor ignores on purpose.
    #[error("{path}: the extension `{name}` is not supported")]
    UnsupportedExtension {
        /// The JSON pointer of the extension.
        path: String,
        /// The extension's name.
        name: String,
    },
    /// A value is missing or of the wrong shape.
    #[error("{path}: {reason}")]
    Invalid {
        /// The JSON pointer of the value.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(path: &str, reason: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

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

/// Where API keys come from (`x-amazon-apigateway-api-key-source`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeySource {
    /// The `x-api-key` header.
    #[default]
    Header,
    /// The authorizer's `usageIdentifierKey`.
    Authorizer,
}

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

/// CORS settings of an HTTP API (`x-amazon-apigateway-cors`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsConfig {
    /// `allowOrigins`; `*` allows any.
    pub allow_origins: Vec<String>,
    /// `allowMethods`.
    pub allow_methods: Vec<String>,
    /// `allowHeaders`.
    pub allow_headers: Vec<String>,
    /// `exposeHeaders`.
    pub expose_headers: Vec<String>,
    /// `allowCredentials`.
    pub allow_credentials: bool,
    /// `maxAge` in seconds.
    pub max_age: Option<u64>,
}

impl CorsConfig {
    /// The `Access-Control-Allow-Origin` value for `origin`, if allowed.
    #[must_use]
    pub fn allow_origin(&self, origin: &str) -> Option<String> {
        if self.allow_origins.iter().any(|o| o == origin) {
            Some(origin.to_owned())
        } else if self.allow_origins.iter().any(|o| o == "*") {
            Some(if self.allow_credentials {
                origin.to_owned()
            } else {
                "*".to_owned()
            })
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Literal(String),
    Param,
    Greedy,
}

#[derive(Clone, Debug)]
pub(crate) struct Resource {
    segments: Vec<Segment>,
    pub(crate) methods: BTreeMap<String, Arc<MethodSettings>>,
}

impl Resource {
    fn matches(&self, path: &str) -> Option<Vec<u8>> {
        let parts: Vec<&str> = if path == "/" {
            Vec::new()
        } else {
            path.trim_start_matches('/').split('/').collect()
        };
        let mut ranks = Vec::with_capacity(self.segments.len());
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy => {
                    if i >= parts.len() {
                        return None;
                    }
                    ranks.push(0);
                    return Some(ranks);
                }
                Segment::Param if parts.get(i).is_some_and(|p| !p.is_empty()) => ranks.push(1),
                Segment::Literal(l) if parts.get(i) == Some(&l.as_str()) => ranks.push(2),
                _ => return None,
            }
        }
        (parts.len() == self.segments.len()).then_some(ranks)
    }
}

/// The protection a chain applies: the authorizer scheme (if any) and
/// whether an API key is required.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChainKey {
    pub(crate) auth: Option<(AuthKind, String)>,
    pub(crate) api_key: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AuthKind {
    Iam,
    Cognito,
    Custom,
}

/// An API definition, loaded and checked: its resources and methods, its
/// gateway responses and its CORS settings.
#[derive(Clone, Debug)]
pub struct ApiDefinition {
    pub(crate) resources: Vec<Resource>,
    pub(crate) chains: Vec<ChainKey>,
    pub(crate) gateway_responses: Option<GatewayResponses>,
    pub(crate) cors: Option<CorsConfig>,
    api_key_source: ApiKeySource,
}

struct Loader<'a> {
    root: &'a Value,
    oas3: bool,
    validators: BTreeMap<String, (bool, bool)>,
    default_validator: Option<String>,
    api_key_source: ApiKeySource,
    schemes: BTreeMap<String, Value>,
    chains: Vec<ChainKey>,
}

impl ApiDefinition {
    /// Loads a definition from JSON or YAML bytes (JSON when the first
    /// non-blank byte is `{`).
    ///
    /// # Errors
    ///
    /// A [`DefinitionError`] naming the JSON pointer of what is wrong, or an
    /// unsupported extension.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DefinitionError> {
        if bytes.len() > MAX_DEFINITION_BYTES {
            return Err(DefinitionError::Syntax(format!(
                "larger than {MAX_DEFINITION_BYTES} bytes"
            )));
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let value: Value = if first == Some(&b'{') {
            serde_json::from_slice(bytes).map_err(|e| DefinitionError::Syntax(e.to_string()))?
        } else {
            serde_norway::from_slice(bytes).map_err(|e| DefinitionError::Syntax(e.to_string()))?
        };
        Self::from_value(&value)
    }

    /// Loads a definition already parsed into JSON values.
    ///
    /// # Errors
    ///
    /// As [`from_slice`](Self::from_slice).
    pub fn from_value(root: &Value) -> Result<Self, DefinitionError> {
        check_extensions(root, &mut String::new())?;
        let obj = root
            .as_object()
            .ok_or_else(|| invalid("", "the definition is not an object"))?;
        let oas3 = match (obj.get("openapi"), obj.get("swagger")) {
            (Some(Value::String(v)), _) if v.starts_with("3.0") => true,
            (_, Some(Value::String(v))) if v == "2.0" => false,
            (Some(v), _) => return Err(invalid("/openapi", format!("version {v} is not 3.0.x"))),
            _ => {
                return Err(invalid(
                    "",
                    "neither `openapi: 3.0.x` nor `swagger: \"2.0\"`",
                ));
            }
        };
        let mut loader = Loader {
            root,
            oas3,
            validators: BTreeMap::new(),
            default_validator: None,
            api_key_source: ApiKeySource::Header,
            schemes: BTreeMap::new(),
            chains: Vec::new(),
        };
        loader.top_level()?;
        let mut resources = Vec::new();
        if let Some(paths) = obj.get("paths") {
            let paths = paths
                .as_object()
                .ok_or_else(|| invalid("/paths", "not an object"))?;
            for (template, item) in paths {
                resources.push(loader.resource(template, item)?);
            }
        }
        let gateway_responses = obj
            .get("x-amazon-apigateway-gateway-responses")
            .map(|v| gateway_responses(v, "/x-amazon-apigateway-gateway-responses"))
            .transpose()?;
        let cors = obj
            .get("x-amazon-apigateway-cors")
            .map(|v| cors(v, "/x-amazon-apigateway-cors"))
            .transpose()?;
        Ok(ApiDefinition {
            resources,
            chains: loader.chains,
            gateway_responses,
            cors,
            api_key_source: loader.api_key_source,
        })
    }

    /// Every method of the definition.
    pub fn methods(&self) -> impl Iterator<Item = &MethodSettings> {
        self.resources
            .iter()
            .flat_map(|r| r.methods.values().map(AsRef::as_ref))
    }

    /// The method that serves `method` on the canonical path `path`: the most
    /// specific matching resource (literal segments before `{param}` before
    /// `{proxy+}`), and on it the method itself or `ANY`.
    #[must_use]
    pub fn route(&self, method: &Method, path: &str) -> Option<&Arc<MethodSettings>> {
        let resource = self
            .resources
            .iter()
            .filter_map(|r| r.matches(path).map(|rank| (rank, r)))
            .max_by(|a, b| a.0.cmp(&b.0))?
            .1;
        resource
            .methods
            .get(method.as_str())
            .or_else(|| resource.methods.get("ANY"))
    }

    /// The gateway responses of `x-amazon-apigateway-gateway-responses`, as
    /// core's overrides (install them outermost with core's
    /// `GatewayResponsesLayer` so that a WAF in front uses them too).
    #[must_use]
    pub fn gateway_responses(&self) -> Option<&GatewayResponses> {
        self.gateway_responses.as_ref()
    }

    /// The HTTP API CORS settings (`x-amazon-apigateway-cors`).
    #[must_use]
    pub fn cors(&self) -> Option<&CorsConfig> {
        self.cors.as_ref()
    }

    /// The API's key source.
    #[must_use]
    pub fn api_key_source(&self) -> ApiKeySource {
        self.api_key_source
    }

    /// Checks stage per-method throttles (from the application's
    /// configuration) against the definition: every selector must name at
    /// least one method of it, so that a typo fails at load rather than
    /// throttling nothing. Returns them, most specific first, ready for a
    /// throttle layer.
    ///
    /// # Errors
    ///
    /// [`DefinitionError::Invalid`] naming the selector that matches no method.
    pub fn method_throttles(
        &self,
        throttles: impl IntoIterator<Item = (MethodSelector, ThrottleSettings)>,
    ) -> Result<Vec<(MethodSelector, ThrottleSettings)>, DefinitionError> {
        let mut out = Vec::new();
        for (selector, settings) in throttles {
            let known = self.methods().any(|m| {
                let method = if m.http_method == "ANY" {
                    "*"
                } else {
                    &m.http_method
                };
                selector.resource() == "/*"
                    || (selector.resource() == m.resource_path
                        && (selector.method() == "*" || selector.method() == method))
            });
            if !known {
                return Err(invalid(
                    &format!("/methodSettings/{}", escape(&selector.to_string())),
                    "names no method of the definition",
                ));
            }
            out.push((selector, settings));
        }
        out.sort_by_key(|(selector, _)| std::cmp::Reverse(selector.specificity()));
        Ok(out)
    }
}

fn check_extensions(value: &Value, path: &mut String) -> Result<(), DefinitionError> {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = path.len();
                path.push('/');
                path.push_str(&escape(key));
                if key.starts_with("x-amazon-apigateway-") {
                    if IGNORED_ON_PURPOSE.contains(&key.as_str())
                        || key == "x-amazon-apigateway-integration"
                    {
                        path.truncate(len);
                        continue;
                    }
                    if !SUPPORTED.contains(&key.as_str()) {
                        return Err(DefinitionError::UnsupportedExtension {
                            path: path.clone(),
                            name: key.clone(),
                        });
                    }
                }
                check_extensions(child, path)?;
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                check_extensions(child, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn str_list(value: Option<&Value>, path: &str) -> Result<Vec<String>, DefinitionError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(&format!("{path}/{i}"), "not a string"))
            })
            .collect(),
        Some(_) => Err(invalid(path, "not an array of strings")),
    }
}

fn cors(value: &Value, path: &str) -> Result<CorsConfig, DefinitionError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(path, "not an object"))?;
    for key in obj.keys() {
        if ![
            "allowOrigins",
            "allowMethods",
            "allowHeaders",
            "exposeHeaders",
            "allowCredentials",
            "maxAge",
        ]
        .contains(&key.as_str())
        {
            return Err(invalid(&format!("{path}/{}", escape(key)), "unknown field"));
        }
    }
    let max_age = match obj.get("maxAge") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| invalid(&format!("{path}/maxAge"), "not a whole number"))?,
        ),
    };
    let allow_credentials = match obj.get("allowCredentials") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                &format!("{path}/allowCredentials"),
                "not a boolean",
            ));
        }
    };
    Ok(CorsConfig {
        allow_origins: str_list(obj.get("allowOrigins"), &format!("{path}/allowOrigins"))?,
        allow_methods: str_list(obj.get("allowMethods"), &format!("{path}/allowMethods"))?,
        allow_headers: str_list(obj.get("allowHeaders"), &format!("{path}/allowHeaders"))?,
        expose_headers: str_list(obj.get("exposeHeaders"), &format!("{path}/exposeHeaders"))?,
        allow_credentials,
        max_age,
    })
}

/// A static value of a response parameter: `'text'`.
fn static_value(value: &Value, path: &str) -> Result<HeaderValue, DefinitionError> {
    let text = value
        .as_str()
        .ok_or_else(|| invalid(path, "not a string"))?;
    let inner = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .ok_or_else(|| {
            invalid(
                path,
                "only static values ('quoted') are supported; request mappings are not",
            )
        })?;
    HeaderValue::from_str(inner).map_err(|_| invalid(path, "not a valid header value"))
}

fn gateway_responses(value: &Value, path: &str) -> Result<GatewayResponses, DefinitionError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(path, "not an object"))?;
    let mut responses = GatewayResponses::new();
    for (name, response) in obj {
        let here = format!("{path}/{}", escape(name));
        let kind: GatewayResponseType = name
            .parse()
            .map_err(|_| invalid(&here, "not a gateway response type"))?;
        let response = response
            .as_object()
            .ok_or_else(|| invalid(&here, "not an object"))?;
        let mut over = ResponseOverride::new();
        for (key, v) in response {
            let at = format!("{here}/{}", escape(key));
            match key.as_str() {
                "statusCode" => {
                    let code = match v {
                        Value::String(s) => s.parse::<u16>().ok(),
                        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                        _ => None,
                    }
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| invalid(&at, "not an HTTP status code"))?;
                    over = over.status_code(code);
                }
                "responseParameters" => {
                    let params = v.as_object().ok_or_else(|| invalid(&at, "not an object"))?;
                    for (param, value) in params {
                        let pat = format!("{at}/{}", escape(param));
                        // API Gateway accepts path and query-string
                        // parameters here (SAM writes them), and they change
                        // nothing a client receives: a response has neither.
                        if param.starts_with("gatewayresponse.path.")
                            || param.starts_with("gatewayresponse.querystring.")
                        {
                            static_value(value, &pat)?;
                            continue;
                        }
                        let header =
                            param
                                .strip_prefix("gatewayresponse.header.")
                                .ok_or_else(|| {
                                    invalid(&pat, "only gatewayresponse.header.*, .path.* and .querystring.* are parameters of a gateway response")
                                })?;
                        let header = HeaderName::from_bytes(header.as_bytes())
                            .map_err(|_| invalid(&pat, "not a header name"))?;
                        over = over.header(header, static_value(value, &pat)?);
                    }
                }
                "responseTemplates" => {
                    let templates = v.as_object().ok_or_else(|| invalid(&at, "not an object"))?;
                    let chosen = templates
                        .get_key_value("application/json")
                        .or_else(|| templates.iter().next());
                    if let Some((media, template)) = chosen {
                        let source = template.as_str().ok_or_else(|| {
                            invalid(&format!("{at}/{}", escape(media)), "not a string")
                        })?;
                        let content_type = HeaderValue::from_str(media).map_err(|_| {
                            invalid(&format!("{at}/{}", escape(media)), "not a media type")
                        })?;
                        over = over
                            .body_template(BodyTemplate::with_content_type(source, content_type));
                    }
                }
                "defaultResponse" => {}
                _ => return Err(invalid(&at, "unknown field")),
            }
        }
        responses = responses.with(kind, over);
    }
    Ok(responses)
}

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

impl Loader<'_> {
    fn top_level(&mut self) -> Result<(), DefinitionError> {
        let root = self.root;
        if let Some(v) = root.get("x-amazon-apigateway-request-validators") {
            let path = "/x-amazon-apigateway-request-validators";
            let map = v
                .as_object()
                .ok_or_else(|| invalid(path, "not an object"))?;
            for (name, validator) in map {
                let at = format!("{path}/{}", escape(name));
                let flag = |key: &str| -> Result<bool, DefinitionError> {
                    match validator.get(key) {
                        None => Ok(false),
                        Some(Value::Bool(b)) => Ok(*b),
                        Some(_) => Err(invalid(&format!("{at}/{key}"), "not a boolean")),
                    }
                };
                self.validators.insert(
                    name.clone(),
                    (
                        flag("validateRequestBody")?,
                        flag("validateRequestParameters")?,
                    ),
                );
            }
        }
        if let Some(v) = root.get("x-amazon-apigateway-request-validator") {
            let name = self.validator_name(v, "/x-amazon-apigateway-request-validator")?;
            self.default_validator = Some(name);
        }
        if let Some(v) = root.get("x-amazon-apigateway-api-key-source") {
            self.api_key_source = match v.as_str() {
                Some("HEADER") => ApiKeySource::Header,
                Some("AUTHORIZER") => ApiKeySource::Authorizer,
                _ => {
                    return Err(invalid(
                        "/x-amazon-apigateway-api-key-source",
                        "neither HEADER nor AUTHORIZER",
                    ));
                }
            };
        }
        let (schemes, path) = if self.oas3 {
            (
                root.get("components")
                    .and_then(|c| c.get("securitySchemes")),
                "/components/securitySchemes",
            )
        } else {
            (root.get("securityDefinitions"), "/securityDefinitions")
        };
        if let Some(schemes) = schemes {
            let map = schemes
                .as_object()
                .ok_or_else(|| invalid(path, "not an object"))?;
            for (name, scheme) in map {
                self.schemes.insert(name.clone(), scheme.clone());
            }
        }
        Ok(())
    }

    fn validator_name(&self, v: &Value, path: &str) -> Result<String, DefinitionError> {
        let name = v.as_str().ok_or_else(|| invalid(path, "not a string"))?;
        if !self.validators.contains_key(name) {
            return Err(invalid(
                path,
                format!("no validator `{name}` in x-amazon-apigateway-request-validators"),
            ));
        }
        Ok(name.to_owned())
    }

    fn resource(&mut self, template: &str, item: &Value) -> Result<Resource, DefinitionError> {
        let path = format!("/paths/{}", escape(template));
        if !template.starts_with('/') {
            return Err(invalid(&path, "a path starts with `/`"));
        }
        let mut segments = Vec::new();
        if template != "/" {
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let segment = if part.starts_with('{') && part.ends_with("+}") {
                    if i + 1 != parts.len() {
                        return Err(invalid(&path, "a greedy `{name+}` segment must be last"));
                    }
                    Segment::Greedy
                } else if part.starts_with('{') && part.ends_with('}') {
                    Segment::Param
                } else if part.is_empty() || part.contains(['{', '}']) {
                    return Err(invalid(
                        &path,
                        format!("the segment `{part}` is not supported"),
                    ));
                } else {
                    Segment::Literal((*part).to_owned())
                };
                segments.push(segment);
            }
        }
        let item_obj = item
            .as_object()
            .ok_or_else(|| invalid(&path, "not an object"))?;
        let shared_params = item_obj.get("parameters");
        let mut methods = BTreeMap::new();
        for (key, op) in item_obj {
            let method = if key == "x-amazon-apigateway-any-method" {
                "ANY".to_owned()
            } else if HTTP_METHODS.contains(&key.as_str()) {
                key.to_ascii_uppercase()
            } else {
                continue;
            };
            let at = format!("{path}/{}", escape(key));
            let settings = self.method(template, &method, op, shared_params, &at)?;
            methods.insert(method, Arc::new(settings));
        }
        Ok(Resource { segments, methods })
    }

    fn method(
        &mut self,
        template: &str,
        method: &str,
        op: &Value,
        shared_params: Option<&Value>,
        path: &str,
    ) -> Result<MethodSettings, DefinitionError> {
        let obj = op
            .as_object()
            .ok_or_else(|| invalid(path, "not an object"))?;
        // Security: the method's requirements, else the document's.
        let security = match obj.get("security") {
            Some(s) => Some((s, format!("{path}/security"))),
            None => self
                .root
                .get("security")
                .map(|s| (s, "/security".to_owned())),
        };
        let mut authorization = Authorization::None;
        let mut api_key_required = false;
        if let Some((security, spath)) = security {
            let list = security
                .as_array()
                .ok_or_else(|| invalid(&spath, "not an array"))?;
            // API Gateway's importer reads every requirement object of the
            // list together: SAM writes `[{"MyAuthorizer": []}, {"api_key":
            // []}]` for "this authorizer and an API key", and `{"NONE": []}`
            // (a scheme it never declares) for no authorizer. A method still
            // has at most one authorizer.
            for (i, requirement) in list.iter().enumerate() {
                let req = requirement
                    .as_object()
                    .ok_or_else(|| invalid(&format!("{spath}/{i}"), "not an object"))?;
                for (name, scopes) in req {
                    let at = format!("{spath}/{i}/{}", escape(name));
                    if name == "NONE" && !self.schemes.contains_key(name) {
                        continue;
                    }
                    let scopes = str_list(Some(scopes), &at)?;
                    match self.scheme(name, scopes, &at)? {
                        None => api_key_required = true,
                        Some(auth) => {
                            if authorization != Authorization::None {
                                return Err(invalid(
                                    &at,
                                    "a method has at most one authorizer (API Gateway applies one per method)",
                                ));
                            }
                            authorization = auth;
                        }
                    }
                }
            }
        }
        if let Some(auth) = obj.get("x-amazon-apigateway-auth") {
            let at = format!("{path}/x-amazon-apigateway-auth");
            match auth
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                Some("NONE") => {}
                Some("AWS_IAM") => {
                    if authorization != Authorization::None {
                        return Err(invalid(&at, "a method has at most one authorizer"));
                    }
                    authorization = Authorization::Iam {
                        scheme: "AWS_IAM".to_owned(),
                    };
                }
                _ => return Err(invalid(&format!("{at}/type"), "neither NONE nor AWS_IAM")),
            }
        }
        // Validation.
        let validator = match obj.get("x-amazon-apigateway-request-validator") {
            Some(v) => Some(
                self.validator_name(v, &format!("{path}/x-amazon-apigateway-request-validator"))?,
            ),
            None => self.default_validator.clone(),
        };
        let (validate_body, validate_parameters) = validator
            .and_then(|name| self.validators.get(&name).copied())
            .unwrap_or((false, false));
        let mut required = Vec::new();
        let mut models = Vec::new();
        let mut body_required = false;
        for (params, ppath) in [
            (
                shared_params,
                format!("{}/parameters", path.rsplit_once('/').map_or("", |p| p.0)),
            ),
            (obj.get("parameters"), format!("{path}/parameters")),
        ] {
            let Some(params) = params else { continue };
            let list = params
                .as_array()
                .ok_or_else(|| invalid(&ppath, "not an array"))?;
            for (i, param) in list.iter().enumerate() {
                let at = format!("{ppath}/{i}");
                let param = self.deref(param, &at)?;
                let name = param
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let is_required = param
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                match param.get("in").and_then(Value::as_str) {
                    Some("query") if is_required => {
                        required.push(Parameter::Query(name.to_owned()))
                    }
                    Some("header") if is_required => {
                        required.push(Parameter::Header(name.to_ascii_lowercase()));
                    }
                    Some("body") => {
                        body_required = is_required;
                        if let Some(schema) = param.get("schema") {
                            models.push((
                                "application/json".to_owned(),
                                self.model(schema, &format!("{at}/schema"))?,
                            ));
                        }
                    }
                    Some("query" | "header" | "path" | "formData" | "cookie") => {}
                    _ => return Err(invalid(&format!("{at}/in"), "not a parameter location")),
                }
            }
        }
        if let Some(body) = obj.get("requestBody") {
            let at = format!("{path}/requestBody");
            let body = self.deref(body, &at)?;
            body_required = body
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if let Some(content) = body.get("content").and_then(Value::as_object) {
                for (media, m) in content {
                    if let Some(schema) = m.get("schema") {
                        let sat = format!("{at}/content/{}/schema", escape(media));
                        models.push((media.to_ascii_lowercase(), self.model(schema, &sat)?));
                    }
                }
            }
        }
        // A mock integration (REST exports answer CORS preflights with one).
        let mock = match obj.get("x-amazon-apigateway-integration") {
            Some(integration)
                if integration.get("type").and_then(Value::as_str) == Some("mock") =>
            {
                Some(mock_response(
                    integration,
                    &format!("{path}/x-amazon-apigateway-integration"),
                )?)
            }
            _ => None,
        };
        let key = ChainKey {
            auth: match &authorization {
                Authorization::None => None,
                Authorization::Iam { scheme } => Some((AuthKind::Iam, scheme.clone())),
                Authorization::CognitoUserPools { scheme, .. } => {
                    Some((AuthKind::Cognito, scheme.clone()))
                }
                Authorization::Custom { scheme, .. } => Some((AuthKind::Custom, scheme.clone())),
            },
            api_key: api_key_required,
        };
        let chain = match self.chains.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.chains.push(key);
                self.chains.len() - 1
            }
        };
        Ok(MethodSettings {
            resource_path: template.to_owned(),
            http_method: method.to_owned(),
            authorization,
            api_key_required,
            api_key_source: self.api_key_source,
            validate_body,
            validate_parameters,
            required,
            body_required,
            models,
            mock,
            chain,
        })
    }

    /// Follows a local `$ref` (one level, as exports write them).
    fn deref<'v>(&'v self, value: &'v Value, path: &str) -> Result<&'v Value, DefinitionError> {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference
                    .strip_prefix('#')
                    .ok_or_else(|| invalid(path, "only local `#/...` references are supported"))?;
                self.root
                    .pointer(pointer)
                    .ok_or_else(|| invalid(path, format!("`{reference}` names nothing")))
            }
            None => Ok(value),
        }
    }

    fn model(&self, schema: &Value, path: &str) -> Result<Model, DefinitionError> {
        let name = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or("inline")
            .to_owned();
        // Compile the schema with the document's models beside it, so that
        // `#/definitions/X` and `#/components/schemas/X` resolve.
        let mut wrapper = serde_json::Map::new();
        wrapper.insert("allOf".to_owned(), Value::Array(vec![schema.clone()]));
        for key in ["definitions", "components"] {
            if let Some(v) = self.root.get(key) {
                wrapper.insert(key.to_owned(), v.clone());
            }
        }
        let validator = jsonschema::draft4::new(&Value::Object(wrapper))
            .map_err(|e| invalid(path, format!("the model is not a valid JSON Schema: {e}")))?;
        Ok(Model {
            name,
            validator: Arc::new(validator),
        })
    }

    fn scheme(
        &self,
        name: &str,
        scopes: Vec<String>,
        path: &str,
    ) -> Result<Option<Authorization>, DefinitionError> {
        let Some(scheme) = self.schemes.get(name) else {
            // The developer guide's own samples name `api_key` without
            // declaring it; API Gateway reads it as the API-key requirement.
            if name == "api_key" {
                return Ok(None);
            }
            return Err(invalid(path, format!("no security scheme `{name}`")));
        };
        let authtype = scheme
            .get("x-amazon-apigateway-authtype")
            .and_then(Value::as_str);
        let authorizer = scheme.get("x-amazon-apigateway-authorizer");
        let authorizer_type = authorizer
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        match (authtype, authorizer_type.as_deref()) {
            (Some("awsSigv4"), _) => Ok(Some(Authorization::Iam {
                scheme: name.to_owned(),
            })),
            (Some("cognito_user_pools"), _) | (_, Some("cognito_user_pools")) => {
                let provider_arns = str_list(
                    authorizer.and_then(|a| a.get("providerARNs")),
                    &format!("/securitySchemes/{}/providerARNs", escape(name)),
                )?;
                Ok(Some(Authorization::CognitoUserPools {
                    scheme: name.to_owned(),
                    scopes,
                    provider_arns,
                }))
            }
            (_, Some(kind @ ("token" | "request"))) => {
                let authorizer = authorizer.unwrap_or(&Value::Null);
                let kind = if kind == "token" {
                    CustomAuthorizerKind::Token
                } else {
                    CustomAuthorizerKind::Request
                };
                let identity_source = match authorizer.get("identitySource").and_then(Value::as_str)
                {
                    Some(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
                    None => scheme
                        .get("name")
                        .and_then(Value::as_str)
                        .map(|h| vec![format!("method.request.header.{h}")])
                        .unwrap_or_default(),
                };
                let ttl = match authorizer.get("authorizerResultTtlInSeconds") {
                    None => 300,
                    Some(Value::Number(n)) => n.as_u64().unwrap_or(300),
                    Some(Value::String(s)) => s.parse().unwrap_or(300),
                    Some(_) => 300,
                };
                Ok(Some(Authorization::Custom {
                    scheme: name.to_owned(),
                    kind,
                    identity_source,
                    identity_validation_expression: authorizer
                        .get("identityValidationExpression")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    result_ttl_seconds: u32::try_from(ttl.min(3600)).unwrap_or(300),
                }))
            }
            (_, Some(other)) => Err(invalid(
                path,
                format!("the authorizer type `{other}` of scheme `{name}` is not supported"),
            )),
            (None, None)
                if scheme.get("type").and_then(Value::as_str) == Some("apiKey")
                    && scheme
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key")) =>
            {
                Ok(None)
            }
            (other, _) => Err(invalid(
                path,
                format!(
                    "the security scheme `{name}` (authtype {}) is not supported",
                    other.unwrap_or("none")
                ),
            )),
        }
    }
}

fn mock_response(integration: &Value, path: &str) -> Result<MockResponse, DefinitionError> {
    let default = integration.get("responses").and_then(|r| r.get("default"));
    let status = match default.and_then(|d| d.get("statusCode")) {
        None => StatusCode::OK,
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<u16>().ok())
            .or_else(|| v.as_u64().and_then(|n| u16::try_from(n).ok()))
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| {
                invalid(
                    &format!("{path}/responses/default/statusCode"),
                    "not a status",
                )
            })?,
    };
    let mut headers = Vec::new();
    if let Some(params) = default
        .and_then(|d| d.get("responseParameters"))
        .and_then(Value::as_object)
    {
        for (param, value) in params {
            let at = format!(
                "{path}/responses/default/responseParameters/{}",
                escape(param)
            );
            if let Some(header) = param.strip_prefix("method.response.header.") {
                let name = HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| invalid(&at, "not a header name"))?;
                headers.push((name, static_value(value, &at)?));
            }
        }
    }
    Ok(MockResponse { status, headers })
}

/// The names of extensions the loader applies.
#[must_use]
pub fn supported_extensions() -> BTreeSet<&'static str> {
    SUPPORTED.iter().copied().collect()
}
