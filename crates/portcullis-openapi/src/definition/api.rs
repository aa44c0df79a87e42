//! [`ApiDefinition`]: loading a definition and looking its methods up.

use portcullis_core::config::ConfigError;
use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;
use portcullis_core::plan::{MethodSelector, ThrottleSettings};
use portcullis_core::response::GatewayResponses;
use serde_json::Value;

use super::chain::ChainKey;
use super::cors::{CorsConfig, cors};
use super::error::{escape, invalid, unreadable};
use super::extensions::check_extensions;
use super::gateway_responses::gateway_responses;
use super::loader::Loader;
use super::method::{ApiKeySource, MethodSettings};
use super::resource::Resource;

/// The largest definition [`ApiDefinition::from_slice`] reads: 16 MiB.
pub const MAX_DEFINITION_BYTES: usize = 16 * 1024 * 1024;

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

impl ApiDefinition {
    /// Loads a definition from JSON or YAML bytes (JSON when the first
    /// non-blank byte is `{`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] whose path says where in the definition the problem
    /// is (`paths./pets/{id}.get.security[0]`): a value of the wrong shape, or an
    /// unsupported extension.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_DEFINITION_BYTES {
            return Err(unreadable(format_args!(
                "larger than {MAX_DEFINITION_BYTES} bytes"
            )));
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let value: Value = if first == Some(&b'{') {
            serde_json::from_slice(bytes).map_err(unreadable)?
        } else {
            serde_norway::from_slice(bytes).map_err(unreadable)?
        };
        Self::from_value(&value)
    }

    /// Loads a definition already parsed into JSON values.
    ///
    /// # Errors
    ///
    /// As [`from_slice`](Self::from_slice).
    pub fn from_value(root: &Value) -> Result<Self, ConfigError> {
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
    /// A [`ConfigError`] at `methodSettings.{selector}` when a selector
    /// matches no method.
    pub fn method_throttles(
        &self,
        throttles: impl IntoIterator<Item = (MethodSelector, ThrottleSettings)>,
    ) -> Result<Vec<(MethodSelector, ThrottleSettings)>, ConfigError> {
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
