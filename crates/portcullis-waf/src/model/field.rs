//! The part of a request a statement inspects, and how it is transformed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A text transformation.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct TextTransformation {
    /// Unique within the list; lowest applied first.
    pub priority: i64,
    /// The transformation.
    #[serde(rename = "Type")]
    pub kind: crate::transform::TransformKind,
}

/// Where to look: exactly one field is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct FieldToMatch {
    /// One header, by name (case-insensitive).
    pub single_header: Option<NamedField>,
    /// Headers.
    pub headers: Option<MultiField>,
    /// Cookies.
    pub cookies: Option<MultiField>,
    /// One query argument, by name (case-insensitive).
    pub single_query_argument: Option<NamedField>,
    /// Every query argument's value.
    pub all_query_arguments: Option<Value>,
    /// The path.
    pub uri_path: Option<Value>,
    /// The query string, undecoded, without `?`.
    pub query_string: Option<Value>,
    /// The method.
    pub method: Option<Value>,
    /// The body.
    pub body: Option<BodyField>,
    /// The body parsed as JSON.
    pub json_body: Option<JsonBodyField>,
    /// Every other key: unsupported fields, refused at load.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A field named by `Name`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NamedField {
    /// The name.
    pub name: String,
}

/// `Headers` / `Cookies`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct MultiField {
    /// Which headers or cookies.
    pub match_pattern: MultiPattern,
    /// Keys, values or both.
    pub match_scope: MatchScope,
    /// What to do past AWS's limits (8 KB or 200 entries).
    pub oversize_handling: OversizeHandling,
}

/// Which headers or cookies.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct MultiPattern {
    /// All of them.
    pub all: Option<Value>,
    /// Only these (headers: `IncludedHeaders`).
    #[serde(alias = "IncludedCookies")]
    pub included_headers: Option<Vec<String>>,
    /// All but these (headers: `ExcludedHeaders`).
    #[serde(alias = "ExcludedCookies")]
    pub excluded_headers: Option<Vec<String>>,
}

/// `Body`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct BodyField {
    /// What to do past the inspection limit (`CONTINUE` by default).
    #[serde(default)]
    pub oversize_handling: Option<OversizeHandling>,
}

/// `JsonBody`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct JsonBodyField {
    /// Which parts of the document.
    pub match_pattern: JsonMatchPattern,
    /// Keys, values or both.
    pub match_scope: MatchScope,
    /// When the body is not valid JSON.
    #[serde(default)]
    pub invalid_fallback_behavior: Option<InvalidFallbackBehavior>,
    /// What to do past the inspection limit (`CONTINUE` by default).
    #[serde(default)]
    pub oversize_handling: Option<OversizeHandling>,
}

/// Which parts of a JSON body.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct JsonMatchPattern {
    /// The whole document.
    pub all: Option<Value>,
    /// JSON pointers such as `/user/name`.
    pub included_paths: Option<Vec<String>>,
}

/// Keys, values or both.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum MatchScope {
    /// Keys and values: a match in either is a match.
    All,
    /// Keys only.
    Key,
    /// Values only.
    Value,
}

/// What happens when the body is not valid JSON.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum InvalidFallbackBehavior {
    /// The statement matches.
    Match,
    /// The statement does not match.
    NoMatch,
    /// The body is inspected as plain text.
    EvaluateAsString,
}

/// What happens to a field past the inspection limit.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum OversizeHandling {
    /// Inspect what fits.
    Continue,
    /// The statement matches.
    Match,
    /// The statement does not match.
    NoMatch,
}
