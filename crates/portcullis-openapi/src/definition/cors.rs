//! CORS settings of an HTTP API (`x-amazon-apigateway-cors`).

use portcullis_core::config::ConfigError;
use serde_json::Value;

use super::error::{escape, invalid};
use super::values::str_list;

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

pub(super) fn cors(value: &Value, path: &str) -> Result<CorsConfig, ConfigError> {
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
