//! The web ACL JSON, as `aws wafv2 get-web-acl` returns it, as serde types.
//!
//! These types mirror the AWS WAFv2 API shapes (botocore's `wafv2` model)
//! field for field, in AWS's PascalCase. Unknown fields are ignored, so a
//! document straight from the AWS CLI (with `LockToken`, `VisibilityConfig`,
//! `Capacity` and the rest) loads as it is. Statement types are kept as
//! optional fields rather than a Rust enum so that the compiler
//! ([`crate::CompiledAcl`]) can name the JSON path of an unsupported or
//! ill-formed statement, not just say that deserialisation failed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A web ACL.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct WebAcl {
    /// The ACL's name; it appears in rule labels.
    pub name: String,
    /// The ACL's ARN; its account id appears in rule labels.
    #[serde(default, rename = "ARN")]
    pub arn: Option<String>,
    /// The action when no rule terminates.
    pub default_action: DefaultAction,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Bodies that custom responses refer to by key.
    #[serde(default)]
    pub custom_response_bodies: BTreeMap<String, CustomResponseBody>,
    /// The namespace AWS gives rule labels (`awswaf:<account>:webacl:<name>:`).
    #[serde(default)]
    pub label_namespace: Option<String>,
    /// The body inspection limit per resource type.
    #[serde(default)]
    pub association_config: Option<AssociationConfig>,
}

/// A rule group, as `aws wafv2 get-rule-group` returns it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RuleGroup {
    /// The group's name; it appears in rule labels.
    pub name: String,
    /// The ARN that `RuleGroupReferenceStatement`s name.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Bodies that the group's custom responses refer to.
    #[serde(default)]
    pub custom_response_bodies: BTreeMap<String, CustomResponseBody>,
    /// The namespace AWS gives the group's labels.
    #[serde(default)]
    pub label_namespace: Option<String>,
}

/// An IP set, as `aws wafv2 get-ip-set` returns it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct IpSet {
    /// The set's name.
    #[serde(default)]
    pub name: String,
    /// The ARN that `IPSetReferenceStatement`s name.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// `IPV4` or `IPV6`, informational: each address says what it is.
    #[serde(default, rename = "IPAddressVersion")]
    pub ip_address_version: Option<String>,
    /// CIDRs such as `192.0.2.0/24` or `2001:db8::/32`.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// A regex pattern set, as `aws wafv2 get-regex-pattern-set` returns it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RegexPatternSet {
    /// The set's name.
    #[serde(default)]
    pub name: String,
    /// The ARN that `RegexPatternSetReferenceStatement`s name.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// The expressions.
    #[serde(default)]
    pub regular_expression_list: Vec<RegexEntry>,
}

/// One expression of a regex pattern set.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RegexEntry {
    /// The expression.
    pub regex_string: String,
}

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

/// The ACL's association settings; only the body inspection limit is read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct AssociationConfig {
    /// Per resource type (`API_GATEWAY`, `CLOUDFRONT`, ...).
    #[serde(default)]
    pub request_body: BTreeMap<String, RequestBodyConfig>,
}

/// The body inspection limit for one resource type.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RequestBodyConfig {
    /// `KB_16`, `KB_32`, `KB_48` or `KB_64`.
    pub default_size_inspection_limit: String,
}

/// A rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Rule {
    /// The rule's name, unique in its ACL or group.
    pub name: String,
    /// Lowest first.
    pub priority: i64,
    /// What the rule matches.
    pub statement: Statement,
    /// The action, for rules that are not rule-group references.
    #[serde(default)]
    pub action: Option<RuleAction>,
    /// For rule-group references: `{"None":{}}` or `{"Count":{}}`.
    #[serde(default)]
    pub override_action: Option<OverrideAction>,
    /// Labels added when the rule matches.
    #[serde(default)]
    pub rule_labels: Vec<LabelName>,
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
