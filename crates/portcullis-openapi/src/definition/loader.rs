//! The loader: a definition's security schemes, validators, resources
//! and methods, checked as they are read.

use portcullis_core::config::ConfigError;
use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use http::header::HeaderName;
use serde_json::Value;

use super::chain::{AuthKind, ChainKey};
use super::error::{escape, index, invalid};
use super::method::{
    ApiKeySource, Authorization, CustomAuthorizerKind, MethodSettings, MockResponse, Model,
    Parameter,
};
use super::resource::{Resource, Segment};
use super::values::{static_value, str_list};

pub(super) struct Loader<'a> {
    pub(super) root: &'a Value,
    pub(super) oas3: bool,
    pub(super) validators: BTreeMap<String, (bool, bool)>,
    pub(super) default_validator: Option<String>,
    pub(super) api_key_source: ApiKeySource,
    pub(super) schemes: BTreeMap<String, Value>,
    pub(super) chains: Vec<ChainKey>,
}

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

impl Loader<'_> {
    pub(super) fn top_level(&mut self) -> Result<(), ConfigError> {
        let root = self.root;
        if let Some(v) = root.get("x-amazon-apigateway-request-validators") {
            let path = "/x-amazon-apigateway-request-validators";
            let map = v
                .as_object()
                .ok_or_else(|| invalid(path, "not an object"))?;
            for (name, validator) in map {
                let at = format!("{path}/{}", escape(name));
                let flag = |key: &str| -> Result<bool, ConfigError> {
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

    fn validator_name(&self, v: &Value, path: &str) -> Result<String, ConfigError> {
        let name = v.as_str().ok_or_else(|| invalid(path, "not a string"))?;
        if !self.validators.contains_key(name) {
            return Err(invalid(
                path,
                format!("no validator `{name}` in x-amazon-apigateway-request-validators"),
            ));
        }
        Ok(name.to_owned())
    }

    pub(super) fn resource(
        &mut self,
        template: &str,
        item: &Value,
    ) -> Result<Resource, ConfigError> {
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
    ) -> Result<MethodSettings, ConfigError> {
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
                    .ok_or_else(|| invalid(&format!("{spath}/{}", index(i)), "not an object"))?;
                for (name, scopes) in req {
                    let at = format!("{spath}/{}/{}", index(i), escape(name));
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
                let at = format!("{ppath}/{}", index(i));
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
    fn deref<'v>(&'v self, value: &'v Value, path: &str) -> Result<&'v Value, ConfigError> {
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

    fn model(&self, schema: &Value, path: &str) -> Result<Model, ConfigError> {
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
    ) -> Result<Option<Authorization>, ConfigError> {
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

fn mock_response(integration: &Value, path: &str) -> Result<MockResponse, ConfigError> {
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
