//! Statements: what a rule matches.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::action::RuleActionOverride;
use super::field::{FieldToMatch, TextTransformation};

/// A label name (without its namespace).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct LabelName {
    /// The name, such as `internal` or `ns:internal`.
    pub name: String,
}

/// A statement: exactly one field is set. Statement types AWS has that this
/// engine does not support land in `other` and are refused at load.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Statement {
    /// Bytes in a field.
    pub byte_match_statement: Option<ByteMatchStatement>,
    /// A regular expression.
    pub regex_match_statement: Option<RegexMatchStatement>,
    /// A regex pattern set.
    pub regex_pattern_set_reference_statement: Option<RegexPatternSetReferenceStatement>,
    /// SQL injection.
    pub sqli_match_statement: Option<SqliMatchStatement>,
    /// Cross-site scripting.
    pub xss_match_statement: Option<XssMatchStatement>,
    /// A field's size.
    pub size_constraint_statement: Option<SizeConstraintStatement>,
    /// The client's country.
    pub geo_match_statement: Option<GeoMatchStatement>,
    /// An IP set.
    #[serde(rename = "IPSetReferenceStatement")]
    pub ip_set_reference_statement: Option<IpSetReferenceStatement>,
    /// A label added by an earlier rule.
    pub label_match_statement: Option<LabelMatchStatement>,
    /// A request rate.
    pub rate_based_statement: Option<Box<RateBasedStatement>>,
    /// All of several statements.
    pub and_statement: Option<CompoundStatement>,
    /// Any of several statements.
    pub or_statement: Option<CompoundStatement>,
    /// The negation of a statement.
    pub not_statement: Option<Box<NotStatement>>,
    /// A rule group.
    pub rule_group_reference_statement: Option<RuleGroupReferenceStatement>,
    /// An AWS managed rule group (see [`crate::managed`]).
    pub managed_rule_group_statement: Option<Box<ManagedRuleGroupStatement>>,
    /// Every other key: unsupported statement types.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `ByteMatchStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ByteMatchStatement {
    /// The bytes to find (the CLI's form), at most 200 bytes.
    #[serde(default)]
    pub search_string: Option<String>,
    /// The bytes to find, base64-encoded (the SDK's wire form).
    #[serde(default)]
    pub search_string_base64: Option<String>,
    /// Where to look.
    pub field_to_match: FieldToMatch,
    /// Applied before matching.
    pub text_transformations: Vec<TextTransformation>,
    /// How the bytes must sit in the field.
    pub positional_constraint: PositionalConstraint,
}

/// Where a byte match must sit.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum PositionalConstraint {
    /// The whole field.
    Exactly,
    /// At the start.
    StartsWith,
    /// At the end.
    EndsWith,
    /// Anywhere.
    Contains,
    /// Anywhere, between non-word characters or the ends.
    ContainsWord,
}

/// `RegexMatchStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RegexMatchStatement {
    /// The expression, at most 512 characters.
    pub regex_string: String,
    /// Where to look.
    pub field_to_match: FieldToMatch,
    /// Applied before matching.
    pub text_transformations: Vec<TextTransformation>,
}

/// `RegexPatternSetReferenceStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RegexPatternSetReferenceStatement {
    /// The set's ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// Where to look.
    pub field_to_match: FieldToMatch,
    /// Applied before matching.
    pub text_transformations: Vec<TextTransformation>,
}

/// `SqliMatchStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SqliMatchStatement {
    /// Where to look.
    pub field_to_match: FieldToMatch,
    /// Applied before matching.
    pub text_transformations: Vec<TextTransformation>,
    /// `LOW` (the default) or `HIGH`.
    #[serde(default)]
    pub sensitivity_level: Option<SensitivityLevel>,
}

/// SQL injection sensitivity.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum SensitivityLevel {
    /// Fewer false positives.
    Low,
    /// More detections, more false positives.
    High,
}

/// `XssMatchStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct XssMatchStatement {
    /// Where to look.
    pub field_to_match: FieldToMatch,
    /// Applied before matching.
    pub text_transformations: Vec<TextTransformation>,
}

/// `SizeConstraintStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SizeConstraintStatement {
    /// Where to look.
    pub field_to_match: FieldToMatch,
    /// The comparison.
    pub comparison_operator: ComparisonOperator,
    /// The size in bytes, after transformations.
    pub size: u64,
    /// Applied before measuring.
    pub text_transformations: Vec<TextTransformation>,
}

/// A size comparison: `field OP Size`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ComparisonOperator {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less or equal.
    Le,
    /// Less.
    Lt,
    /// Greater or equal.
    Ge,
    /// Greater.
    Gt,
}

/// `GeoMatchStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct GeoMatchStatement {
    /// ISO 3166 alpha-2 codes.
    pub country_codes: Vec<String>,
    /// Take the address from a header instead of the connection.
    #[serde(default, rename = "ForwardedIPConfig")]
    pub forwarded_ip_config: Option<ForwardedIpConfig>,
}

/// `IPSetReferenceStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct IpSetReferenceStatement {
    /// The set's ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// Take the address from a header instead of the connection.
    #[serde(default, rename = "IPSetForwardedIPConfig")]
    pub ip_set_forwarded_ip_config: Option<ForwardedIpConfig>,
}

/// `ForwardedIPConfig` / `IPSetForwardedIPConfig`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ForwardedIpConfig {
    /// The header, such as `X-Forwarded-For`.
    pub header_name: String,
    /// The result when the header is missing or holds no valid address.
    pub fallback_behavior: FallbackBehavior,
    /// IP sets only: which address of the list (`FIRST` by default).
    #[serde(default)]
    pub position: Option<Position>,
}

/// The result when there is nothing to inspect.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum FallbackBehavior {
    /// The statement matches.
    Match,
    /// The statement does not match.
    NoMatch,
}

/// Which address of a forwarding header.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Position {
    /// The left-most.
    First,
    /// The right-most.
    Last,
    /// Any of the first ten.
    Any,
}

/// `LabelMatchStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct LabelMatchStatement {
    /// `LABEL` or `NAMESPACE`.
    pub scope: LabelScope,
    /// The label or namespace.
    pub key: String,
}

/// What a label match compares.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum LabelScope {
    /// A label.
    Label,
    /// A namespace.
    Namespace,
}

/// `RateBasedStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RateBasedStatement {
    /// Requests allowed per window, at least 10.
    pub limit: u64,
    /// 60, 120, 300 (the default) or 600.
    #[serde(default)]
    pub evaluation_window_sec: Option<u64>,
    /// What requests are counted by.
    pub aggregate_key_type: AggregateKeyType,
    /// Only requests this statement matches are counted.
    #[serde(default)]
    pub scope_down_statement: Option<Statement>,
    /// For `FORWARDED_IP`.
    #[serde(default, rename = "ForwardedIPConfig")]
    pub forwarded_ip_config: Option<ForwardedIpConfig>,
    /// For `CUSTOM_KEYS`: up to five.
    #[serde(default)]
    pub custom_keys: Vec<RateCustomKey>,
}

/// What a rate-based statement counts by.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AggregateKeyType {
    /// The client address.
    Ip,
    /// The address in a forwarding header.
    ForwardedIp,
    /// Everything together (needs a scope-down statement).
    Constant,
    /// A combination of [`RateCustomKey`]s.
    CustomKeys,
}

/// One component of a custom rate key: exactly one field is set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RateCustomKey {
    /// A header's value.
    pub header: Option<NamedKey>,
    /// A cookie's value.
    pub cookie: Option<NamedKey>,
    /// A query argument's value.
    pub query_argument: Option<NamedKey>,
    /// The query string.
    pub query_string: Option<TransformedKey>,
    /// The method.
    #[serde(rename = "HTTPMethod")]
    pub http_method: Option<Value>,
    /// The forwarded address.
    #[serde(rename = "ForwardedIP")]
    pub forwarded_ip: Option<Value>,
    /// The client address.
    #[serde(rename = "IP")]
    pub ip: Option<Value>,
    /// The labels in a namespace.
    pub label_namespace: Option<NamespaceKey>,
    /// The URI path.
    pub uri_path: Option<TransformedKey>,
    /// Every other key: refused at load.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A named key component.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NamedKey {
    /// The header, cookie or argument name.
    pub name: String,
    /// Applied to the value.
    #[serde(default)]
    pub text_transformations: Vec<TextTransformation>,
}

/// A key component with transformations.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct TransformedKey {
    /// Applied to the value.
    #[serde(default)]
    pub text_transformations: Vec<TextTransformation>,
}

/// A label-namespace key component.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NamespaceKey {
    /// The namespace.
    pub namespace: String,
}

/// `AndStatement` / `OrStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct CompoundStatement {
    /// At least two statements.
    pub statements: Vec<Statement>,
}

/// `NotStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NotStatement {
    /// The statement negated.
    pub statement: Statement,
}

/// `RuleGroupReferenceStatement`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RuleGroupReferenceStatement {
    /// The group's ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// Rules whose action becomes Count.
    #[serde(default)]
    pub excluded_rules: Vec<LabelName>,
    /// Per-rule action overrides.
    #[serde(default)]
    pub rule_action_overrides: Vec<RuleActionOverride>,
}

/// `ManagedRuleGroupStatement`: an AWS managed rule group, by vendor and name.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ManagedRuleGroupStatement {
    /// `AWS` (other vendors' groups are refused at load).
    pub vendor_name: String,
    /// The group, such as `AWSManagedRulesCommonRuleSet`.
    pub name: String,
    /// The version AWS would run, such as `Version_1.12`; every version loads
    /// this crate's one set of rules (see [`crate::managed`]).
    #[serde(default)]
    pub version: Option<String>,
    /// Rules whose action becomes Count.
    #[serde(default)]
    pub excluded_rules: Vec<LabelName>,
    /// Per-rule action overrides.
    #[serde(default)]
    pub rule_action_overrides: Vec<RuleActionOverride>,
    /// Only requests this statement matches are evaluated by the group.
    #[serde(default)]
    pub scope_down_statement: Option<Statement>,
    /// Group-specific settings (Bot Control, ATP, ACFP); read only to be
    /// ignored, since those groups do not load.
    #[serde(default)]
    pub managed_rule_group_configs: Option<Value>,
}
