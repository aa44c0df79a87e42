//! API Gateway's authorizer event and answer, as serde types.

use std::collections::BTreeMap;
use std::fmt;

use portcullis_iam::PolicyDocument;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an authorizer is asked: API Gateway's Lambda-authorizer event.
///
/// It serialises to the JSON API Gateway sends, with `type` `TOKEN` or
/// `REQUEST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AuthorizerEvent {
    /// A TOKEN authorizer's event.
    #[serde(rename = "TOKEN")]
    Token(TokenEvent),
    /// A REQUEST authorizer's event.
    #[serde(rename = "REQUEST")]
    Request(Box<RequestEvent>),
}

impl AuthorizerEvent {
    /// The method ARN of the request being authorized.
    #[must_use]
    pub fn method_arn(&self) -> &str {
        match self {
            AuthorizerEvent::Token(event) => &event.method_arn,
            AuthorizerEvent::Request(event) => &event.method_arn,
        }
    }

    /// The token of a TOKEN event.
    #[must_use]
    pub fn token(&self) -> Option<&str> {
        match self {
            AuthorizerEvent::Token(event) => Some(&event.authorization_token),
            AuthorizerEvent::Request(_) => None,
        }
    }

    /// The REQUEST event, if this is one.
    #[must_use]
    pub fn as_request(&self) -> Option<&RequestEvent> {
        match self {
            AuthorizerEvent::Token(_) => None,
            AuthorizerEvent::Request(event) => Some(event),
        }
    }
}

/// A TOKEN authorizer's event: `{"type":"TOKEN","authorizationToken":...,"methodArn":...}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenEvent {
    /// The value of the identity header.
    pub authorization_token: String,
    /// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`.
    pub method_arn: String,
}

impl fmt::Debug for TokenEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEvent")
            .field("authorization_token", &"<redacted>")
            .field("method_arn", &self.method_arn)
            .finish()
    }
}

/// A REQUEST authorizer's event, with the request's headers, query,
/// stage variables and context.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestEvent {
    /// The method ARN.
    pub method_arn: String,
    /// The resource the request was routed to, a template such as
    /// `/loyalty/{proxy+}`, from the request's
    /// [`ApiResource`](portcullis_core::resource::ApiResource) (which
    /// portcullis-openapi leaves); the request path when no routing layer
    /// is in front.
    pub resource: String,
    /// The request path.
    pub path: String,
    /// The HTTP method.
    pub http_method: String,
    /// Headers, the last value of each.
    pub headers: BTreeMap<String, String>,
    /// Headers, every value.
    pub multi_value_headers: BTreeMap<String, Vec<String>>,
    /// Query parameters, the last value of each.
    pub query_string_parameters: BTreeMap<String, String>,
    /// Query parameters, every value.
    pub multi_value_query_string_parameters: BTreeMap<String, Vec<String>>,
    /// The values of the resource's path parameters, such as
    /// `{"proxy": "C-1001/get"}`, from the request's
    /// [`ApiResource`](portcullis_core::resource::ApiResource); empty
    /// without one.
    pub path_parameters: BTreeMap<String, String>,
    /// The stage variables configured on the layer.
    pub stage_variables: BTreeMap<String, String>,
    /// The request context.
    pub request_context: RequestContextEvent,
}

/// The `requestContext` of a REQUEST event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContextEvent {
    /// The request path.
    pub path: String,
    /// The account id of the API.
    pub account_id: String,
    /// The stage.
    pub stage: String,
    /// The API id.
    pub api_id: String,
    /// The resource path, as the event's `resource`.
    pub resource_path: String,
    /// The HTTP method.
    pub http_method: String,
    /// The protocol, such as `HTTP/1.1`.
    pub protocol: String,
    /// The caller.
    pub identity: IdentityEvent,
}

/// The `requestContext.identity` of a REQUEST event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityEvent {
    /// The client IP, from the core client-IP resolver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// The `User-Agent` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// What an authorizer answers: API Gateway's authorizer output.
///
/// `context` values must be strings, numbers or booleans, as API Gateway
/// requires; anything else makes the answer malformed.
///
/// ```
/// use portcullis_authorizer::AuthorizerResponse;
///
/// let answer = AuthorizerResponse::from_json(r#"{
///     "principalId": "user-42",
///     "policyDocument": {"Version": "2012-10-17", "Statement": [
///         {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*:*:*/*/GET/*"}]},
///     "context": {"tier": "gold", "age": 42, "admin": false},
///     "usageIdentifierKey": "abcdefghijklmnopqrst0123"
/// }"#)?;
/// assert_eq!(answer.principal_id, "user-42");
/// assert!(!format!("{answer:?}").contains("abcdefghij"));
/// # Ok::<(), portcullis_authorizer::AuthorizerError>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    /// Who the caller is: becomes the core `Caller`'s principal.
    pub principal_id: String,
    /// The policy evaluated against the request's method ARN.
    pub policy_document: PolicyDocument,
    /// Values for the application: become the `Caller`'s claims.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_context"
    )]
    pub context: BTreeMap<String, Value>,
    /// The API key for usage plans (API Gateway's AUTHORIZER key source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_identifier_key: Option<String>,
}

impl AuthorizerResponse {
    /// An answer with this principal and policy.
    #[must_use]
    pub fn new(principal_id: impl Into<String>, policy_document: PolicyDocument) -> Self {
        Self {
            principal_id: principal_id.into(),
            policy_document,
            context: BTreeMap::new(),
            usage_identifier_key: None,
        }
    }

    /// Adds a context value (a string, number or boolean).
    #[must_use]
    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }

    /// Sets the usage identifier key.
    #[must_use]
    pub fn with_usage_identifier_key(mut self, key: impl Into<String>) -> Self {
        self.usage_identifier_key = Some(key.into());
        self
    }

    /// Parses an answer from its JSON form.
    ///
    /// # Errors
    ///
    /// [`AuthorizerError::Malformed`](crate::AuthorizerError::Malformed) when the JSON is not a valid answer
    /// (the message names the bad field).
    pub fn from_json(json: &str) -> Result<Self, crate::AuthorizerError> {
        Self::from_slice(json.as_bytes())
    }

    /// Parses an answer from JSON bytes.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json).
    pub fn from_slice(json: &[u8]) -> Result<Self, crate::AuthorizerError> {
        serde_json::from_slice(json).map_err(|e| crate::AuthorizerError::Malformed(e.to_string()))
    }

    /// Checks what serde cannot: a non-empty principal and scalar context
    /// values.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.principal_id.is_empty() {
            return Err("`principalId` is empty".to_owned());
        }
        if let Some((key, _)) = self.context.iter().find(|(_, v)| !is_scalar(v)) {
            return Err(format!(
                "context value `{key}` is not a string, number or boolean"
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for AuthorizerResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizerResponse")
            .field("principal_id", &self.principal_id)
            .field("policy_document", &self.policy_document)
            .field("context", &self.context)
            .field(
                "usage_identifier_key",
                &self.usage_identifier_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn scalar_context<'de, D>(deserializer: D) -> Result<BTreeMap<String, Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let map = Option::<BTreeMap<String, Value>>::deserialize(deserializer)?.unwrap_or_default();
    if let Some((key, _)) = map.iter().find(|(_, v)| !is_scalar(v)) {
        return Err(serde::de::Error::custom(format!(
            "context value `{key}` is not a string, number or boolean"
        )));
    }
    Ok(map)
}
