//! Per-type overrides of gateway responses, as API Gateway's "gateway
//! responses" configure them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};

use super::GatewayResponseType;

/// The overrides for every gateway-response type, set once and used by every
/// layer.
///
/// A type without an override of its own takes the headers and body template
/// of `DEFAULT_4XX` or `DEFAULT_5XX` (by its default status class), as API
/// Gateway does. A status override applies only to the type it is set on.
///
/// Cloning is cheap: the overrides are shared behind an `Arc`. Put them in the
/// request's context with [`GatewayResponsesLayer`](super::GatewayResponsesLayer)
/// outside every other Portcullis layer.
///
/// In configuration, the keys are API Gateway's type names:
///
/// ```
/// use portcullis_core::response::{GatewayResponseType, GatewayResponses};
///
/// let responses: GatewayResponses = serde_json::from_str(r#"{
///     "THROTTLED": { "status": 503, "headers": { "x-slow-down": "yes" } },
///     "DEFAULT_4XX": { "template": "{\"error\":$context.error.messageString,\"type\":\"$context.error.responseType\"}" }
/// }"#).unwrap();
/// assert_eq!(responses.get(GatewayResponseType::Throttled).unwrap().status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
/// ```
#[derive(Clone, Debug, Default)]
pub struct GatewayResponses {
    overrides: Arc<HashMap<GatewayResponseType, ResponseOverride>>,
}

impl GatewayResponses {
    /// No overrides: every type renders with API Gateway's defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the override of one type, replacing any earlier one.
    #[must_use]
    pub fn with(mut self, kind: GatewayResponseType, response: ResponseOverride) -> Self {
        Arc::make_mut(&mut self.overrides).insert(kind, response);
        self
    }

    /// The override set on exactly this type, if any.
    #[must_use]
    pub fn get(&self, kind: GatewayResponseType) -> Option<&ResponseOverride> {
        self.overrides.get(&kind)
    }
}

impl<'de> Deserialize<'de> for GatewayResponses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let overrides =
            HashMap::<GatewayResponseType, ResponseOverride>::deserialize(deserializer)?;
        Ok(Self {
            overrides: Arc::new(overrides),
        })
    }
}

/// The override of one gateway-response type: a status, headers, and a body
/// template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawOverride", into = "RawOverride")]
pub struct ResponseOverride {
    status: Option<StatusCode>,
    headers: Vec<(HeaderName, HeaderValue)>,
    template: Option<BodyTemplate>,
}

impl ResponseOverride {
    /// An override that changes nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides the status code.
    #[must_use]
    pub fn status_code(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds a header to every response of this type. It replaces a header of
    /// the same name that the refusing layer set.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Replaces the body with a template (see [`BodyTemplate`]).
    #[must_use]
    pub fn body_template(mut self, template: BodyTemplate) -> Self {
        self.template = Some(template);
        self
    }

    /// The status override, if any.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The extra headers.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(n, v)| (n, v))
    }

    /// The body template, if any.
    #[must_use]
    pub fn template(&self) -> Option<&BodyTemplate> {
        self.template.as_ref()
    }
}

/// A body template in the small subset of API Gateway's mapping-template
/// language that gateway responses use.
///
/// These variables are replaced; any other text, including other `$context`
/// variables, is kept as written:
///
/// | variable | value |
/// |---|---|
/// | `$context.error.messageString` | the message as a JSON string, quotes included |
/// | `$context.error.message` | the message as it is |
/// | `$context.error.responseType` | the type's name, such as `THROTTLED` |
///
/// The template is parsed once, when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyTemplate {
    source: String,
    content_type: HeaderValue,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    MessageString,
    Message,
    ResponseType,
}

const VARIABLES: [(&str, Segment); 3] = [
    ("$context.error.messageString", Segment::MessageString),
    ("$context.error.message", Segment::Message),
    ("$context.error.responseType", Segment::ResponseType),
];

impl BodyTemplate {
    /// A template rendered as `application/json`.
    #[must_use]
    pub fn json(source: impl Into<String>) -> Self {
        Self::with_content_type(source, HeaderValue::from_static("application/json"))
    }

    /// A template rendered with the given content type.
    #[must_use]
    pub fn with_content_type(source: impl Into<String>, content_type: HeaderValue) -> Self {
        let source = source.into();
        let mut segments = Vec::new();
        let mut rest = source.as_str();
        let mut literal = String::new();
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            match VARIABLES.iter().find(|(name, _)| rest.starts_with(name)) {
                Some((name, segment)) => {
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(segment.clone());
                    rest = &rest[name.len()..];
                }
                None => {
                    literal.push('$');
                    rest = &rest[1..];
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Self {
            source,
            content_type,
            segments,
        }
    }

    /// The template as written.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The content type of the rendered body.
    #[must_use]
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// Renders the template for one refusal.
    #[must_use]
    pub fn render(&self, kind: GatewayResponseType, message: &str) -> String {
        let mut out = String::with_capacity(self.source.len() + message.len());
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Message => out.push_str(message),
                Segment::MessageString => {
                    // A &str always serialises.
                    out.push_str(&serde_json::to_string(message).unwrap_or_default());
                }
                Segment::ResponseType => out.push_str(kind.as_str()),
            }
        }
        out
    }
}

/// Why a configured override is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseOverrideError {
    /// The status is not a valid HTTP status code.
    #[error("status: {0} is not a valid HTTP status code")]
    Status(u16),
    /// A header name is invalid.
    #[error("headers: `{0}` is not a valid header name")]
    HeaderName(String),
    /// A header value is invalid.
    #[error("headers.{0}: the value is not a valid header value")]
    HeaderValue(String),
    /// The content type is invalid.
    #[error("content_type: not a valid header value")]
    ContentType,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
}

impl TryFrom<RawOverride> for ResponseOverride {
    type Error = ResponseOverrideError;

    fn try_from(raw: RawOverride) -> Result<Self, Self::Error> {
        let status = raw
            .status
            .map(|s| StatusCode::from_u16(s).map_err(|_| ResponseOverrideError::Status(s)))
            .transpose()?;
        let headers = raw
            .headers
            .into_iter()
            .map(|(name, value)| {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ResponseOverrideError::HeaderName(name.clone()))?;
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| ResponseOverrideError::HeaderValue(name))?;
                Ok((header, value))
            })
            .collect::<Result<_, ResponseOverrideError>>()?;
        let content_type = raw
            .content_type
            .map(|ct| HeaderValue::from_str(&ct).map_err(|_| ResponseOverrideError::ContentType))
            .transpose()?
            .unwrap_or_else(|| HeaderValue::from_static("application/json"));
        let template = raw
            .template
            .map(|source| BodyTemplate::with_content_type(source, content_type));
        Ok(Self {
            status,
            headers,
            template,
        })
    }
}

impl From<ResponseOverride> for RawOverride {
    fn from(o: ResponseOverride) -> Self {
        RawOverride {
            status: o.status.map(|s| s.as_u16()),
            headers: o
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            content_type: o
                .template
                .as_ref()
                .map(|t| String::from_utf8_lossy(t.content_type.as_bytes()).into_owned()),
            template: o.template.map(|t| t.source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_replaces_the_known_variables_only() {
        let template = BodyTemplate::json(
            r#"{"error":$context.error.messageString,"raw":"$context.error.message","type":"$context.error.responseType","id":"$context.requestId","cost":"$5"}"#,
        );
        assert_eq!(
            template.render(GatewayResponseType::Throttled, "Too \"Many\""),
            r#"{"error":"Too \"Many\"","raw":"Too "Many"","type":"THROTTLED","id":"$context.requestId","cost":"$5"}"#
        );
    }

    #[test]
    fn invalid_overrides_name_the_field() {
        let err = serde_json::from_str::<GatewayResponses>(r#"{"THROTTLED":{"status":1000}}"#)
            .expect_err("status 1000 is invalid");
        assert!(err.to_string().contains("status: 1000"), "{err}");
        let err = serde_json::from_str::<GatewayResponses>(
            r#"{"THROTTLED":{"headers":{"bad header":"x"}}}"#,
        )
        .expect_err("header names cannot hold spaces");
        assert!(err.to_string().contains("`bad header`"), "{err}");
        let err = serde_json::from_str::<GatewayResponses>(r#"{"NOT_A_TYPE":{}}"#)
            .expect_err("unknown types are refused");
        assert!(err.to_string().contains("NOT_A_TYPE"), "{err}");
    }

    #[test]
    fn overrides_round_trip_through_serde() {
        let json =
            r#"{"status":503,"headers":{"x-a":"b"},"template":"{}","content_type":"text/plain"}"#;
        let parsed: ResponseOverride = serde_json::from_str(json).expect("valid override");
        let back = serde_json::to_string(&parsed).expect("serialises");
        assert_eq!(back, json);
    }
}
