//! Gateway responses (`x-amazon-apigateway-gateway-responses`).

use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use portcullis_core::GatewayResponseType;
use portcullis_core::config::ConfigError;
use portcullis_core::response::{BodyTemplate, GatewayResponses, ResponseOverride};
use serde_json::Value;

use super::error::{escape, invalid};
use super::values::static_value;

pub(super) fn gateway_responses(
    value: &Value,
    path: &str,
) -> Result<GatewayResponses, ConfigError> {
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
