//! The protocol's messages, and the credentials a connection carries in its
//! `header` query parameter.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value as Json, json};

use crate::response::{UNAUTHORIZED_EXCEPTION, UNAUTHORIZED_MESSAGE};

/// The most bytes of the `header` connection parameter read.
const MAX_HEADER_PARAM_BYTES: usize = 32 * 1024;

/// `{"type": "error", "id"?, "payload": {"errors": [{"errorType", "message"}]}}`.
pub(super) fn error(id: Option<&str>, error_type: &str, message: &str) -> Json {
    let mut out = Map::new();
    out.insert("type".into(), json!("error"));
    if let Some(id) = id {
        out.insert("id".into(), json!(id));
    }
    out.insert(
        "payload".into(),
        json!({"errors": [{"errorType": error_type, "message": message}]}),
    );
    Json::Object(out)
}

/// AppSync's answer to a connection whose credentials are missing or bad.
pub(super) fn connection_refused() -> Json {
    json!({"type": "connection_error", "payload": {"errors": [{
        "errorType": UNAUTHORIZED_EXCEPTION,
        "message": UNAUTHORIZED_MESSAGE,
        "errorCode": 401,
    }]}})
}

/// The headers of the connection's `header` query parameter.
pub(super) fn connection_headers(query: Option<&str>) -> Option<HeaderMap> {
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("header="))?;
    if value.len() > MAX_HEADER_PARAM_BYTES {
        return None;
    }
    let json = decode_base64(&percent_decode(value)?)?;
    header_map(&serde_json::from_slice::<Json>(&json).ok()?)
}

/// Decodes `%XX` escapes; `+` stays `+` (a base64 character, which clients
/// do not escape).
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Standard or URL-safe base64, padded or not.
fn decode_base64(value: &str) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let standard: String = value
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            // A `+` that a form decoder turned into a space.
            ' ' => '+',
            c => c,
        })
        .collect();
    engine.decode(standard).ok()
}

/// A JSON object of string values as headers (`None` if any name or value
/// is not a valid header, or a value is not a string).
pub(super) fn header_map(value: &Json) -> Option<HeaderMap> {
    let object = value.as_object()?;
    let mut headers = HeaderMap::with_capacity(object.len());
    for (name, value) in object {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.as_str()?).ok()?;
        headers.append(name, value);
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_parameter_in_every_spelling() {
        let header = json!({"host": "example.com", "x-api-key": "da2-key", "Authorization": "tok"});
        let standard = base64::engine::general_purpose::STANDARD.encode(header.to_string());
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
        for encoded in [
            standard.clone(),
            url_safe,
            standard.replace('=', "%3D").replace('+', "%2B"),
        ] {
            let headers =
                connection_headers(Some(&format!("header={encoded}&payload=e30="))).unwrap();
            assert_eq!(headers["x-api-key"], "da2-key");
            assert_eq!(headers["authorization"], "tok");
        }
    }

    #[test]
    fn refuses_bad_header_parameters() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for query in [
            None,
            Some(String::new()),
            Some("payload=e30=".to_owned()),
            Some("header=%ZZ".to_owned()),
            Some("header=!!!".to_owned()),
            Some(format!("header={}", b64("not json"))),
            Some(format!("header={}", b64("[1, 2]"))),
            Some(format!("header={}", b64(r#"{"x-api-key": 7}"#))),
            Some(format!("header={}", b64(r#"{"bad name": "v"}"#))),
            Some(format!("header={}", b64("{\"h\": \"a\\nb\"}"))),
            Some(format!("header={}", "A".repeat(MAX_HEADER_PARAM_BYTES + 4))),
        ] {
            assert!(connection_headers(query.as_deref()).is_none(), "{query:?}");
        }
    }
}
