//! AWS managed rule groups, as this crate's own rule groups.
//!
//! AWS does not publish the rules of its managed rule groups. This module
//! holds equivalents written from AWS's public description of each rule (the
//! AWS WAF developer guide's "Baseline rule groups" and "Use-case specific rule
//! groups" pages): every rule has AWS's name, inspects the fields AWS says it
//! inspects, and adds AWS's label, but what it looks for is ours. Each group is
//! a rule group document (`managed/<name>.json` in the crate, the JSON that
//! `aws wafv2 get-rule-group` prints), read by the same loader as any rule
//! group, so it can be audited and diffed. The crate README gives each group's
//! measured detection and false-positive rates.
//!
//! Groups whose rules need data only AWS has (its IP reputation lists, Bot
//! Control, account takeover and account creation fraud prevention) are
//! listed in [`PRIVATE_DATA_GROUPS`]; a web ACL that uses one is refused at
//! load unless [`AclSources::with_unavailable_managed_groups_never_matching`]
//! is set, or, for the two IP-list groups, a list of addresses is supplied
//! with [`AclSources::with_managed_ip_list`].
//!
//! ```
//! use portcullis_waf::managed;
//!
//! let crs = managed::rule_group("AWSManagedRulesCommonRuleSet").unwrap();
//! assert_eq!(crs.rules[0].name, "NoUserAgent_HEADER");
//! assert_eq!(
//!     crs.label_namespace.as_deref(),
//!     Some("awswaf:managed:aws:core-rule-set:")
//! );
//! ```
//!
//! [`AclSources::with_unavailable_managed_groups_never_matching`]: crate::AclSources::with_unavailable_managed_groups_never_matching
//! [`AclSources::with_managed_ip_list`]: crate::AclSources::with_managed_ip_list

use crate::model::RuleGroup;

/// The AWS managed rule groups this crate provides, by AWS's name, with
/// their rule group documents.
const GROUPS: &[(&str, &str)] = &[
    (
        "AWSManagedRulesCommonRuleSet",
        include_str!("../managed/AWSManagedRulesCommonRuleSet.json"),
    ),
    (
        "AWSManagedRulesAdminProtectionRuleSet",
        include_str!("../managed/AWSManagedRulesAdminProtectionRuleSet.json"),
    ),
    (
        "AWSManagedRulesKnownBadInputsRuleSet",
        include_str!("../managed/AWSManagedRulesKnownBadInputsRuleSet.json"),
    ),
    (
        "AWSManagedRulesSQLiRuleSet",
        include_str!("../managed/AWSManagedRulesSQLiRuleSet.json"),
    ),
    (
        "AWSManagedRulesLinuxRuleSet",
        include_str!("../managed/AWSManagedRulesLinuxRuleSet.json"),
    ),
    (
        "AWSManagedRulesUnixRuleSet",
        include_str!("../managed/AWSManagedRulesUnixRuleSet.json"),
    ),
    (
        "AWSManagedRulesWindowsRuleSet",
        include_str!("../managed/AWSManagedRulesWindowsRuleSet.json"),
    ),
    (
        "AWSManagedRulesPHPRuleSet",
        include_str!("../managed/AWSManagedRulesPHPRuleSet.json"),
    ),
    (
        "AWSManagedRulesWordPressRuleSet",
        include_str!("../managed/AWSManagedRulesWordPressRuleSet.json"),
    ),
];

/// The AWS managed rule groups whose rules need data only AWS has. A web ACL
/// that uses one is refused at load, unless told otherwise.
pub const PRIVATE_DATA_GROUPS: &[&str] = &[
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesAnonymousIpList",
    "AWSManagedRulesBotControlRuleSet",
    "AWSManagedRulesATPRuleSet",
    "AWSManagedRulesACFPRuleSet",
    "AWSManagedRulesAntiDDoSRuleSet",
];

/// The IP-list groups that accept a list of one's own
/// ([`AclSources::with_managed_ip_list`](crate::AclSources::with_managed_ip_list)):
/// the group, the rule that list becomes, and its label namespace.
pub(crate) const IP_LIST_GROUPS: &[(&str, &str, &str)] = &[
    (
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedIPReputationList",
        "awswaf:managed:aws:amazon-ip-list:",
    ),
    (
        "AWSManagedRulesAnonymousIpList",
        "AnonymousIPList",
        "awswaf:managed:aws:anonymous-ip-list:",
    ),
];

/// The names of the managed rule groups this crate provides.
pub fn available() -> impl Iterator<Item = &'static str> {
    GROUPS.iter().map(|(name, _)| *name)
}

/// A provided group's rule group document, as `aws wafv2 get-rule-group`
/// prints it.
#[must_use]
pub fn rule_group_json(name: &str) -> Option<&'static str> {
    GROUPS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, json)| *json)
}

/// A provided group, parsed. `None` for a name this crate does not provide.
#[must_use]
pub fn rule_group(name: &str) -> Option<RuleGroup> {
    let json = rule_group_json(name)?;
    let mut value: serde_json::Value = serde_json::from_str(json).ok()?;
    serde_json::from_value(value.get_mut("RuleGroup")?.take()).ok()
}
