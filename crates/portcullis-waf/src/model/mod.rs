//! The web ACL JSON, as `aws wafv2 get-web-acl` returns it, as serde types.
//!
//! These types mirror the AWS WAFv2 API shapes (botocore's `wafv2` model)
//! field for field, in AWS's PascalCase. Unknown fields are ignored, so a
//! document straight from the AWS CLI (with `LockToken`, `VisibilityConfig`,
//! `Capacity` and the rest) loads as it is. Statement types are kept as
//! optional fields rather than a Rust enum so that the compiler
//! ([`crate::CompiledAcl`]) can name the JSON path of an unsupported or
//! ill-formed statement, not just say that deserialisation failed.

mod action;
mod field;
mod statement;

pub use action::{
    ActionBody, ContentType, CustomRequestHandling, CustomResponse, CustomResponseBody,
    DefaultAction, HeaderPair, OverrideAction, RuleAction, RuleActionOverride,
};
pub use field::{
    BodyField, FieldToMatch, InvalidFallbackBehavior, JsonBodyField, JsonMatchPattern, MatchScope,
    MultiField, MultiPattern, NamedField, OversizeHandling, TextTransformation,
};
pub use statement::{
    AggregateKeyType, ByteMatchStatement, ComparisonOperator, CompoundStatement, FallbackBehavior,
    ForwardedIpConfig, GeoMatchStatement, IpSetReferenceStatement, LabelMatchStatement, LabelName,
    LabelScope, ManagedRuleGroupStatement, NamedKey, NamespaceKey, NotStatement, Position,
    PositionalConstraint, RateBasedStatement, RateCustomKey, RegexMatchStatement,
    RegexPatternSetReferenceStatement, RuleGroupReferenceStatement, SensitivityLevel,
    SizeConstraintStatement, SqliMatchStatement, Statement, TransformedKey, XssMatchStatement,
};

use std::collections::BTreeMap;

use serde::Deserialize;

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
