//! `portcullis keys generate` and `portcullis keys hash`.

use portcullis_api_key::{ApiKeyValue, MAX_KEY_LEN, MIN_KEY_LEN};
use serde_json::json;

use crate::{Failure, Report};

/// A new random key value and its digest for the configuration.
///
/// # Errors
///
/// A length outside 20..=128, or no randomness from the operating system.
pub fn generate(length: usize) -> Result<Report, Failure> {
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&length) {
        return Err(Failure::new(
            "usage",
            format!("--length must be {MIN_KEY_LEN} to {MAX_KEY_LEN}"),
        ));
    }
    let value =
        ApiKeyValue::generate_with_len(length).map_err(|e| Failure::new("io", e.to_string()))?;
    Ok(Report::ok(json!({
        "value": value.expose(),
        "value_sha256": value.digest().to_hex(),
    })))
}

/// The `value_sha256` of a key value.
///
/// # Errors
///
/// A value API Gateway would not accept (20 to 128 alphanumerics).
pub fn hash(value: &str) -> Result<Report, Failure> {
    let value =
        ApiKeyValue::new(value).map_err(|e| Failure::new("invalid_key_value", e.to_string()))?;
    Ok(Report::ok(
        json!({ "value_sha256": value.digest().to_hex() }),
    ))
}
