//! Reading plain values of a definition: string lists and static
//! parameter values.

use http::header::HeaderValue;
use portcullis_core::config::ConfigError;
use serde_json::Value;

use super::error::{index, invalid};

pub(super) fn str_list(value: Option<&Value>, path: &str) -> Result<Vec<String>, ConfigError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(&format!("{path}/{}", index(i)), "not a string"))
            })
            .collect(),
        Some(_) => Err(invalid(path, "not an array of strings")),
    }
}

/// A static value of a response parameter: `'text'`.
pub(super) fn static_value(value: &Value, path: &str) -> Result<HeaderValue, ConfigError> {
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
