//! Loading a web ACL with its rule groups and sets, and compiling it once.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::LoadError;
use crate::model::{self};

/// The body inspection limit AWS applies to API Gateway by default: 16 KB.
pub const DEFAULT_BODY_INSPECTION_LIMIT: usize = 16 * 1024;

/// The most keys one rate-based rule tracks, by default.
pub const DEFAULT_MAX_RATE_KEYS: usize = 100_000;

/// A web ACL and everything it refers to, parsed but not yet compiled.
///
/// ```
/// use portcullis_waf::AclSources;
///
/// let sources = AclSources::from_json(r#"{
///     "Name": "api-acl", "DefaultAction": {"Allow": {}},
///     "Rules": [{"Name": "bad-ips", "Priority": 1, "Action": {"Block": {}},
///         "Statement": {"IPSetReferenceStatement": {"ARN": "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/bad/1"}},
///         "VisibilityConfig": {"SampledRequestsEnabled": true, "CloudWatchMetricsEnabled": true, "MetricName": "x"}}]
/// }"#).unwrap()
/// .with_ip_set_json(r#"{"IPSet": {"Name": "bad", "ARN": "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/bad/1",
///     "IPAddressVersion": "IPV4", "Addresses": ["192.0.2.0/24"]}}"#).unwrap();
/// let acl = sources.compile().unwrap();
/// assert_eq!(acl.rule_count(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct AclSources {
    web_acl: model::WebAcl,
    rule_groups: HashMap<String, model::RuleGroup>,
    ip_sets: HashMap<String, model::IpSet>,
    regex_sets: HashMap<String, model::RegexPatternSet>,
    account_id: Option<String>,
    body_limit: Option<usize>,
    max_rate_keys: usize,
    unavailable_never_match: bool,
    managed_ip_lists: HashMap<String, String>,
}

fn parse_document<T: DeserializeOwned>(
    json: &str,
    wrapper: &str,
    document: &str,
) -> Result<T, LoadError> {
    let mut value: Value = serde_json::from_str(json).map_err(|e| LoadError::Json {
        document: document.to_owned(),
        message: e.to_string(),
    })?;
    // `aws wafv2 get-*` wraps the document (`{"WebACL": {...}, "LockToken": ...}`).
    if let Some(inner) = value.get_mut(wrapper) {
        value = inner.take();
    }
    serde_path_to_error::deserialize(value).map_err(LoadError::from_json)
}

impl AclSources {
    /// Parses a web ACL, as `aws wafv2 get-web-acl` prints it (with or without
    /// the `{"WebACL": ...}` wrapper).
    ///
    /// # Errors
    ///
    /// Malformed JSON, or a field of the wrong type, with its path.
    pub fn from_json(json: &str) -> Result<Self, LoadError> {
        let web_acl: model::WebAcl = parse_document(json, "WebACL", "web ACL")?;
        Ok(Self::from_model(web_acl))
    }

    /// Wraps an already parsed web ACL.
    #[must_use]
    pub fn from_model(web_acl: model::WebAcl) -> Self {
        Self {
            web_acl,
            rule_groups: HashMap::new(),
            ip_sets: HashMap::new(),
            regex_sets: HashMap::new(),
            account_id: None,
            body_limit: None,
            max_rate_keys: DEFAULT_MAX_RATE_KEYS,
            unavailable_never_match: false,
            managed_ip_lists: HashMap::new(),
        }
    }

    /// Adds a rule group (`aws wafv2 get-rule-group` output).
    ///
    /// # Errors
    ///
    /// Malformed JSON, with its path.
    pub fn with_rule_group_json(mut self, json: &str) -> Result<Self, LoadError> {
        let group: model::RuleGroup = parse_document(json, "RuleGroup", "rule group")?;
        self.rule_groups.insert(group.arn.clone(), group);
        Ok(self)
    }

    /// Adds an IP set (`aws wafv2 get-ip-set` output).
    ///
    /// # Errors
    ///
    /// Malformed JSON, with its path.
    pub fn with_ip_set_json(mut self, json: &str) -> Result<Self, LoadError> {
        let set: model::IpSet = parse_document(json, "IPSet", "IP set")?;
        self.ip_sets.insert(set.arn.clone(), set);
        Ok(self)
    }

    /// Adds a regex pattern set (`aws wafv2 get-regex-pattern-set` output).
    ///
    /// # Errors
    ///
    /// Malformed JSON, with its path.
    pub fn with_regex_pattern_set_json(mut self, json: &str) -> Result<Self, LoadError> {
        let set: model::RegexPatternSet =
            parse_document(json, "RegexPatternSet", "regex pattern set")?;
        self.regex_sets.insert(set.arn.clone(), set);
        Ok(self)
    }

    /// The account id in rule labels (`awswaf:<account>:webacl:...`) when the
    /// ACL has neither `LabelNamespace` nor `ARN`. Defaults to `000000000000`.
    #[must_use]
    pub fn with_account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = Some(account_id.into());
        self
    }

    /// The body inspection limit in bytes, overriding the ACL's
    /// `AssociationConfig` and the 16 KB default.
    #[must_use]
    pub fn with_body_inspection_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// The most keys each rate-based rule tracks (100,000 by default). When a
    /// rule's table is full of live keys, the key idle longest is forgotten.
    #[must_use]
    pub fn with_max_rate_keys(mut self, keys: usize) -> Self {
        self.max_rate_keys = keys.max(1);
        self
    }

    /// Loads the AWS managed rule groups that need AWS's private data (see
    /// [`managed::PRIVATE_DATA_GROUPS`](crate::managed::PRIVATE_DATA_GROUPS))
    /// as groups that never match, with a warning in the log, instead of
    /// refusing the web ACL. An IP-list group given a list with
    /// [`with_managed_ip_list`](Self::with_managed_ip_list) uses that list.
    ///
    /// ```
    /// use portcullis_waf::AclSources;
    ///
    /// let acl = r#"{"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
    ///   {"Name": "bots", "Priority": 0, "OverrideAction": {"None": {}},
    ///    "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesBotControlRuleSet"}}}]}"#;
    /// let refused = AclSources::from_json(acl)?.compile().unwrap_err();
    /// assert!(refused.to_string().contains("Rules[0].Statement.ManagedRuleGroupStatement"));
    /// let loaded = AclSources::from_json(acl)?
    ///     .with_unavailable_managed_groups_never_matching()
    ///     .compile()?;
    /// assert_eq!(loaded.rule_count(), 1);
    /// # Ok::<(), portcullis_waf::LoadError>(())
    /// ```
    #[must_use]
    pub fn with_unavailable_managed_groups_never_matching(mut self) -> Self {
        self.unavailable_never_match = true;
        self
    }

    /// Gives an AWS IP-list managed group (`AWSManagedRulesAmazonIpReputationList`
    /// or `AWSManagedRulesAnonymousIpList`) a list of one's own: CIDRs such as
    /// `192.0.2.0/24`. The group then has one rule,
    /// `AWSManagedIPReputationList` or `AnonymousIPList`, that matches the
    /// client addresses in the list, with AWS's label for that rule.
    ///
    /// ```
    /// use portcullis_waf::AclSources;
    ///
    /// let acl = r#"{"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
    ///   {"Name": "reputation", "Priority": 0, "OverrideAction": {"None": {}},
    ///    "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesAmazonIpReputationList"}}}]}"#;
    /// let compiled = AclSources::from_json(acl)?
    ///     .with_managed_ip_list("AWSManagedRulesAmazonIpReputationList", ["203.0.113.0/24"])?
    ///     .compile()?;
    /// assert_eq!(compiled.rule_count(), 1);
    /// # Ok::<(), portcullis_waf::LoadError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A group that is not one of the two IP-list groups.
    pub fn with_managed_ip_list<I, S>(
        mut self,
        group: &str,
        addresses: I,
    ) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !crate::managed::IP_LIST_GROUPS
            .iter()
            .any(|(g, _, _)| *g == group)
        {
            return Err(LoadError::config(
                "",
                format!(
                    "`{group}` is not an IP-list managed group: expected AWSManagedRulesAmazonIpReputationList or AWSManagedRulesAnonymousIpList"
                ),
            ));
        }
        let arn = format!("arn:aws:wafv2:::managed/ipset/{group}");
        let set = model::IpSet {
            name: group.to_owned(),
            arn: arn.clone(),
            ip_address_version: None,
            addresses: addresses.into_iter().map(Into::into).collect(),
        };
        self.ip_sets.insert(arn.clone(), set);
        self.managed_ip_lists.insert(group.to_owned(), arn);
        Ok(self)
    }

    /// The parsed web ACL.
    #[must_use]
    pub fn web_acl(&self) -> &model::WebAcl {
        &self.web_acl
    }
}

mod action;
mod compiler;
mod field;
mod statement;
