//! Rule actions, custom requests and custom responses.

use serde::Deserialize;
use serde_json::Value;

/// `{"Allow":{}}` or `{"Block":{...}}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct DefaultAction {
    /// Allow, optionally inserting request headers.
    pub allow: Option<ActionBody>,
    /// Block, optionally with a custom response.
    pub block: Option<ActionBody>,
}

/// A rule's action: exactly one field is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RuleAction {
    /// Allow (terminating).
    pub allow: Option<ActionBody>,
    /// Block (terminating).
    pub block: Option<ActionBody>,
    /// Count: labels are added and evaluation goes on.
    pub count: Option<ActionBody>,
    /// CAPTCHA: not supported, refused at load.
    pub captcha: Option<Value>,
    /// Challenge: not supported, refused at load.
    pub challenge: Option<Value>,
}

/// What an action carries.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ActionBody {
    /// Block only: the response to send.
    pub custom_response: Option<CustomResponse>,
    /// Allow and Count only: headers to insert into the request.
    pub custom_request_handling: Option<CustomRequestHandling>,
}

/// A Block action's custom response.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CustomResponse {
    /// The status, 200 to 599.
    pub response_code: u16,
    /// A key of the ACL's (or group's) `CustomResponseBodies`.
    #[serde(default)]
    pub custom_response_body_key: Option<String>,
    /// Headers to send; AWS prefixes their names with `x-amzn-waf-`.
    #[serde(default)]
    pub response_headers: Vec<HeaderPair>,
}

/// Headers an Allow or Count action inserts into the request.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CustomRequestHandling {
    /// The headers; AWS prefixes their names with `x-amzn-waf-`.
    #[serde(default)]
    pub insert_headers: Vec<HeaderPair>,
}

/// A header name and value.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct HeaderPair {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A custom response body.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CustomResponseBody {
    /// `TEXT_PLAIN`, `TEXT_HTML` or `APPLICATION_JSON`.
    pub content_type: ContentType,
    /// The body.
    pub content: String,
}

/// The content type of a custom response body.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ContentType {
    /// `text/plain`.
    TextPlain,
    /// `text/html`.
    TextHtml,
    /// `application/json`.
    ApplicationJson,
}

/// A rule-group reference's override.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct OverrideAction {
    /// Keep the group's own actions.
    pub none: Option<Value>,
    /// Turn every action of the group into Count.
    pub count: Option<Value>,
}

/// One rule's action override in a rule-group reference.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RuleActionOverride {
    /// The rule.
    pub name: String,
    /// Its new action.
    pub action_to_use: RuleAction,
}
