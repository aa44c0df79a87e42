//! The `x-amazon-apigateway-*` extensions: which are applied, which are
//! ignored on purpose, and the check that refuses any other.

use portcullis_core::config::ConfigError;
use std::collections::BTreeSet;

use serde_json::Value;

use super::error::{escape, index, unsupported};

/// The extensions read and applied.
pub(super) const SUPPORTED: &[&str] = &[
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

pub(super) fn check_extensions(value: &Value, path: &mut String) -> Result<(), ConfigError> {
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
                        return Err(unsupported(path, key));
                    }
                }
                check_extensions(child, path)?;
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&index(i));
                check_extensions(child, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The names of extensions the loader applies.
#[must_use]
pub fn supported_extensions() -> BTreeSet<&'static str> {
    SUPPORTED.iter().copied().collect()
}
