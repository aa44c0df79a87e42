//! Loading a web ACL with its rule groups and sets, and compiling it once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::engine::{
    Action, BlockResponse, CompiledAcl, Field, Forwarded, Group, KeyPart, NamePattern, Oversize,
    RateKey, RateStmt, Rule, RuleBody, SetMatcher, Stmt,
};
use crate::error::{LoadError, LoadErrorKind};
use crate::ipset::IpRanges;
use crate::model::{self, Statement};
use crate::rate::RateTable;
use crate::transform::{ChainTriggers, TransformKind};

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
    let mut value: Value = serde_json::from_str(json)
        .map_err(|e| LoadError::new(document, "", LoadErrorKind::Syntax, e.to_string()))?;
    // `aws wafv2 get-*` wraps the document (`{"WebACL": {...}, "LockToken": ...}`).
    if let Some(inner) = value.get_mut(wrapper) {
        value = inner.take();
    }
    serde_path_to_error::deserialize(value).map_err(|e| LoadError::from_json(document, e))
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
            return Err(LoadError::new(
                "managed IP list",
                "",
                LoadErrorKind::Invalid,
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

    /// Compiles the ACL: resolves references, compiles regular expressions and
    /// IP sets, and checks every statement.
    ///
    /// # Errors
    ///
    /// The first unsupported or invalid statement, field, action or
    /// reference, with its JSON path.
    pub fn compile(&self) -> Result<CompiledAcl, LoadError> {
        Compiler::new(self).compile()
    }
}

struct Compiler<'s> {
    sources: &'s AclSources,
    document: String,
    /// The custom response bodies of the document being compiled (copied:
    /// a managed group's document lives only while it is compiled).
    bodies: BTreeMap<String, model::CustomResponseBody>,
    fields: Vec<Field>,
    field_ids: HashMap<Field, usize>,
    inputs: Vec<(usize, Box<[TransformKind]>)>,
    input_ids: HashMap<(usize, Vec<TransformKind>), usize>,
    ip_sets: HashMap<String, Arc<IpRanges>>,
    rate_tables: Vec<(String, Arc<RateTable>)>,
    rate_prefix: String,
}

type Res<T> = Result<T, LoadError>;

fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}.{segment}")
    }
}

/// A rule group as one web ACL rule uses it.
struct GroupUse<'g> {
    group: &'g model::RuleGroup,
    id: Arc<str>,
    document: String,
    excluded: &'g [model::LabelName],
    overrides: &'g [model::RuleActionOverride],
    scope_down: Option<Stmt>,
}

/// An IP-list managed group made of a list the user supplied.
fn ip_list_group(group: &str, rule: &str, namespace: &str, arn: &str) -> model::RuleGroup {
    let statement = Statement {
        ip_set_reference_statement: Some(model::IpSetReferenceStatement {
            arn: arn.to_owned(),
            ip_set_forwarded_ip_config: None,
        }),
        ..Statement::default()
    };
    let action = model::RuleAction {
        block: Some(model::ActionBody::default()),
        ..model::RuleAction::default()
    };
    model::RuleGroup {
        name: group.to_owned(),
        arn: format!("arn:aws:wafv2:::managed/rulegroup/{group}"),
        rules: vec![model::Rule {
            name: rule.to_owned(),
            priority: 0,
            statement,
            action: Some(action),
            override_action: None,
            rule_labels: vec![model::LabelName {
                name: rule.to_owned(),
            }],
        }],
        custom_response_bodies: BTreeMap::new(),
        label_namespace: Some(namespace.to_owned()),
    }
}

fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

impl<'s> Compiler<'s> {
    fn new(sources: &'s AclSources) -> Self {
        Self {
            sources,
            document: "web ACL".to_owned(),
            bodies: sources.web_acl.custom_response_bodies.clone(),
            fields: Vec::new(),
            field_ids: HashMap::new(),
            inputs: Vec::new(),
            input_ids: HashMap::new(),
            ip_sets: HashMap::new(),
            rate_tables: Vec::new(),
            rate_prefix: String::new(),
        }
    }

    fn err(&self, path: &str, kind: LoadErrorKind, message: impl Into<String>) -> LoadError {
        LoadError::new(&self.document, path, kind, message)
    }

    fn account(&self) -> String {
        self.sources
            .web_acl
            .arn
            .as_deref()
            .and_then(account_of)
            .map(str::to_owned)
            .or_else(|| self.sources.account_id.clone())
            .unwrap_or_else(|| "000000000000".to_owned())
    }

    fn compile(mut self) -> Res<CompiledAcl> {
        let acl = &self.sources.web_acl;
        let default = match (&acl.default_action.allow, &acl.default_action.block) {
            (Some(body), None) => Action::Allow(self.insert_headers(body, "DefaultAction.Allow")?),
            (None, Some(body)) => Action::Block(self.block_response(body, "DefaultAction.Block")?),
            _ => {
                return Err(self.err(
                    "DefaultAction",
                    LoadErrorKind::Invalid,
                    "DefaultAction must be exactly one of Allow or Block",
                ));
            }
        };
        let namespace = acl
            .label_namespace
            .clone()
            .unwrap_or_else(|| format!("awswaf:{}:webacl:{}:", self.account(), acl.name));
        let rules = self.rules(&acl.rules, "", &namespace, "")?;
        let body_limit = match self.sources.body_limit {
            Some(limit) => limit,
            None => self.association_limit()?,
        };
        let inspects_body = self
            .fields
            .iter()
            .any(|f| matches!(f, Field::Body { .. } | Field::JsonBody { .. }));
        let dedupe = crate::engine::dedupe_fields(&rules, &self.inputs, self.fields.len());
        let triggers = self
            .inputs
            .iter()
            .map(|(_, chain)| ChainTriggers::new(chain))
            .collect();
        Ok(CompiledAcl {
            name: acl.name.clone(),
            default,
            rules,
            fields: self.fields,
            inputs: self.inputs,
            triggers,
            dedupe,
            inspects_body,
            body_limit,
            rate_tables: self.rate_tables,
        })
    }

    fn association_limit(&self) -> Res<usize> {
        let Some(config) = &self.sources.web_acl.association_config else {
            return Ok(DEFAULT_BODY_INSPECTION_LIMIT);
        };
        let Some(api) = config.request_body.get("API_GATEWAY") else {
            return Ok(DEFAULT_BODY_INSPECTION_LIMIT);
        };
        let kb = match api.default_size_inspection_limit.as_str() {
            "KB_16" => 16,
            "KB_32" => 32,
            "KB_48" => 48,
            "KB_64" => 64,
            other => {
                return Err(self.err(
                    "AssociationConfig.RequestBody.API_GATEWAY.DefaultSizeInspectionLimit",
                    LoadErrorKind::Invalid,
                    format!("unknown size `{other}`: expected KB_16, KB_32, KB_48 or KB_64"),
                ));
            }
        };
        Ok(kb * 1024)
    }

    fn rules(
        &mut self,
        rules: &[model::Rule],
        base: &str,
        namespace: &str,
        name_prefix: &str,
    ) -> Res<Vec<Rule>> {
        let mut names = HashSet::new();
        let mut priorities = HashSet::new();
        let mut out = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let path = join(base, &format!("Rules[{i}]"));
            if !names.insert(rule.name.as_str()) {
                return Err(self.err(
                    &join(&path, "Name"),
                    LoadErrorKind::Invalid,
                    format!("duplicate rule name `{}`", rule.name),
                ));
            }
            if !priorities.insert(rule.priority) {
                return Err(self.err(
                    &join(&path, "Priority"),
                    LoadErrorKind::Invalid,
                    format!("duplicate rule priority {}", rule.priority),
                ));
            }
            out.push((
                rule.priority,
                self.rule(rule, &path, namespace, name_prefix)?,
            ));
        }
        out.sort_by_key(|(priority, _)| *priority);
        Ok(out.into_iter().map(|(_, rule)| rule).collect())
    }

    fn rule(
        &mut self,
        rule: &model::Rule,
        path: &str,
        namespace: &str,
        name_prefix: &str,
    ) -> Res<Rule> {
        let labels = rule
            .rule_labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                if label.name.is_empty() {
                    Err(self.err(
                        &join(path, &format!("RuleLabels[{i}].Name")),
                        LoadErrorKind::Invalid,
                        "empty label name",
                    ))
                } else {
                    Ok(format!("{namespace}{}", label.name))
                }
            })
            .collect::<Res<Vec<_>>>()?;
        let name: Arc<str> = format!("{name_prefix}{}", rule.name).into();
        let statement_path = join(path, "Statement");
        let reference_kind = if rule.statement.rule_group_reference_statement.is_some() {
            Some("RuleGroupReferenceStatement")
        } else if rule.statement.managed_rule_group_statement.is_some() {
            Some("ManagedRuleGroupStatement")
        } else {
            None
        };
        let body = if let Some(kind) = reference_kind {
            if !name_prefix.is_empty() {
                return Err(self.err(
                    &join(&statement_path, kind),
                    LoadErrorKind::Invalid,
                    "a rule group cannot reference another rule group",
                ));
            }
            self.only_statement(&rule.statement, &statement_path)?;
            let count_all = match &rule.override_action {
                Some(o) if o.count.is_some() => true,
                Some(o) if o.none.is_some() => false,
                _ => {
                    return Err(self.err(
                        &join(path, "OverrideAction"),
                        LoadErrorKind::Invalid,
                        "a rule that references a rule group needs OverrideAction {\"None\":{}} or {\"Count\":{}}",
                    ));
                }
            };
            let path = join(&statement_path, kind);
            match (
                &rule.statement.rule_group_reference_statement,
                &rule.statement.managed_rule_group_statement,
            ) {
                (Some(reference), _) => self.group(reference, &path, &rule.name, count_all)?,
                (None, Some(managed)) => {
                    self.managed_group(managed, &path, &rule.name, count_all)?
                }
                (None, None) => unreachable!("reference_kind is set only when one of them is"),
            }
        } else {
            let Some(action) = &rule.action else {
                return Err(self.err(
                    &join(path, "Action"),
                    LoadErrorKind::Invalid,
                    "a rule needs an Action",
                ));
            };
            let action = self.action(action, &join(path, "Action"))?;
            let stmt = self.statement(&rule.statement, &statement_path, false)?;
            RuleBody::Plain { stmt, action }
        };
        Ok(Rule {
            name,
            labels: labels.into(),
            body,
        })
    }

    fn group(
        &mut self,
        reference: &model::RuleGroupReferenceStatement,
        path: &str,
        acl_rule: &str,
        count_all: bool,
    ) -> Res<RuleBody> {
        let Some(group) = self.sources.rule_groups.get(&reference.arn) else {
            return Err(self.err(
                &join(path, "ARN"),
                LoadErrorKind::UnresolvedReference,
                format!(
                    "no rule group with ARN `{}` was supplied (AclSources::with_rule_group_json)",
                    reference.arn
                ),
            ));
        };
        self.group_body(
            GroupUse {
                group,
                id: Arc::from(group.arn.as_str()),
                document: format!("rule group {}", reference.arn),
                excluded: &reference.excluded_rules,
                overrides: &reference.rule_action_overrides,
                scope_down: None,
            },
            path,
            acl_rule,
            count_all,
        )
    }

    fn managed_group(
        &mut self,
        statement: &model::ManagedRuleGroupStatement,
        path: &str,
        acl_rule: &str,
        count_all: bool,
    ) -> Res<RuleBody> {
        if statement.vendor_name != "AWS" {
            return Err(self.err(
                &join(path, "VendorName"),
                LoadErrorKind::Unsupported,
                format!(
                    "managed rule groups of vendor `{}` are not supported: their rules are the vendor's; only AWS's groups have equivalents here",
                    statement.vendor_name
                ),
            ));
        }
        let name = statement.name.as_str();
        let group = if let Some(group) = crate::managed::rule_group(name) {
            group
        } else if crate::managed::PRIVATE_DATA_GROUPS.contains(&name) {
            let ip_list = crate::managed::IP_LIST_GROUPS
                .iter()
                .find(|(g, _, _)| *g == name)
                .and_then(|(_, rule, namespace)| {
                    self.sources
                        .managed_ip_lists
                        .get(name)
                        .map(|arn| (*rule, *namespace, arn))
                });
            if let Some((rule, namespace, arn)) = ip_list {
                ip_list_group(name, rule, namespace, arn)
            } else if self.sources.unavailable_never_match {
                tracing::warn!(
                    target: "portcullis_waf",
                    group = name,
                    rule = acl_rule,
                    "AWS managed rule group `{name}` needs AWS's private data; it is loaded as a group that never matches"
                );
                model::RuleGroup {
                    name: name.to_owned(),
                    arn: format!("arn:aws:wafv2:::managed/rulegroup/{name}"),
                    rules: Vec::new(),
                    custom_response_bodies: BTreeMap::new(),
                    label_namespace: None,
                }
            } else {
                let hint = if crate::managed::IP_LIST_GROUPS
                    .iter()
                    .any(|(g, _, _)| *g == name)
                {
                    "; supply a list with AclSources::with_managed_ip_list, or load it as never matching with AclSources::with_unavailable_managed_groups_never_matching"
                } else {
                    "; load it as never matching with AclSources::with_unavailable_managed_groups_never_matching"
                };
                return Err(self.err(
                    &join(path, "Name"),
                    LoadErrorKind::Unsupported,
                    format!("AWS managed rule group `{name}` needs data only AWS has{hint}"),
                ));
            }
        } else {
            return Err(self.err(
                &join(path, "Name"),
                LoadErrorKind::Unsupported,
                format!(
                    "unknown AWS managed rule group `{name}`; the groups provided are {}",
                    crate::managed::available().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let scope_down = match &statement.scope_down_statement {
            Some(s) => Some(self.statement(s, &join(path, "ScopeDownStatement"), true)?),
            None => None,
        };
        let known: HashSet<&str> = group.rules.iter().map(|r| r.name.as_str()).collect();
        for named in statement
            .excluded_rules
            .iter()
            .map(|r| r.name.as_str())
            .chain(
                statement
                    .rule_action_overrides
                    .iter()
                    .map(|o| o.name.as_str()),
            )
        {
            if !known.contains(named) {
                tracing::warn!(
                    target: "portcullis_waf",
                    group = name,
                    rule = named,
                    "an override names rule `{named}`, which this crate's `{name}` does not have; it changes nothing"
                );
            }
        }
        self.group_body(
            GroupUse {
                group: &group,
                id: Arc::from(format!("AWS#{name}")),
                document: format!("managed rule group AWS {name}"),
                excluded: &statement.excluded_rules,
                overrides: &statement.rule_action_overrides,
                scope_down,
            },
            path,
            acl_rule,
            count_all,
        )
    }

    fn group_body(
        &mut self,
        used: GroupUse<'_>,
        path: &str,
        acl_rule: &str,
        count_all: bool,
    ) -> Res<RuleBody> {
        let GroupUse {
            group,
            id,
            document,
            excluded,
            overrides: action_overrides,
            scope_down,
        } = used;
        let mut overrides: HashMap<String, Action> = HashMap::new();
        for excluded in excluded {
            overrides.insert(excluded.name.clone(), Action::Count(Arc::from([])));
        }
        for (i, o) in action_overrides.iter().enumerate() {
            let action = self.action(
                &o.action_to_use,
                &join(path, &format!("RuleActionOverrides[{i}].ActionToUse")),
            )?;
            overrides.insert(o.name.clone(), action);
        }
        let saved_document = std::mem::replace(&mut self.document, document);
        let saved_bodies =
            std::mem::replace(&mut self.bodies, group.custom_response_bodies.clone());
        let saved_prefix = std::mem::replace(&mut self.rate_prefix, format!("{acl_rule}/"));
        let namespace = group.label_namespace.clone().unwrap_or_else(|| {
            let account = account_of(&group.arn)
                .map(str::to_owned)
                .unwrap_or_else(|| self.account());
            format!("awswaf:{account}:rulegroup:{}:", group.name)
        });
        let prefix = format!("{acl_rule}/");
        let rules = self.rules(&group.rules, "", &namespace, &prefix);
        self.document = saved_document;
        self.bodies = saved_bodies;
        self.rate_prefix = saved_prefix;
        let mut rules = rules?;
        for rule in &mut rules {
            let short = rule
                .name
                .strip_prefix(&prefix)
                .unwrap_or(&rule.name)
                .to_owned();
            if let (Some(action), RuleBody::Plain { action: a, .. }) =
                (overrides.get(&short), &mut rule.body)
            {
                *a = action.clone();
            }
            if count_all
                && let RuleBody::Plain { action, .. } = &mut rule.body
                && !matches!(action, Action::Count(_))
            {
                *action = Action::Count(Arc::from([]));
            }
        }
        Ok(RuleBody::Group(Arc::new(Group {
            id,
            rules,
            scope_down,
        })))
    }

    fn action(&self, action: &model::RuleAction, path: &str) -> Res<Action> {
        if action.captcha.is_some() || action.challenge.is_some() {
            let which = if action.captcha.is_some() {
                "Captcha"
            } else {
                "Challenge"
            };
            return Err(self.err(
                &join(path, which),
                LoadErrorKind::Unsupported,
                format!(
                    "the {which} action is not supported: it needs AWS's token and puzzle service; use Block or Count"
                ),
            ));
        }
        match (&action.allow, &action.block, &action.count) {
            (Some(body), None, None) => Ok(Action::Allow(
                self.insert_headers(body, &join(path, "Allow"))?,
            )),
            (None, Some(body), None) => Ok(Action::Block(
                self.block_response(body, &join(path, "Block"))?,
            )),
            (None, None, Some(body)) => Ok(Action::Count(
                self.insert_headers(body, &join(path, "Count"))?,
            )),
            _ => Err(self.err(
                path,
                LoadErrorKind::Invalid,
                "an action must be exactly one of Allow, Block or Count",
            )),
        }
    }

    fn insert_headers(
        &self,
        body: &model::ActionBody,
        path: &str,
    ) -> Res<Arc<[(HeaderName, HeaderValue)]>> {
        let Some(handling) = &body.custom_request_handling else {
            return Ok(Arc::from([]));
        };
        handling
            .insert_headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                self.header_pair(
                    h,
                    &join(path, &format!("CustomRequestHandling.InsertHeaders[{i}]")),
                )
            })
            .collect()
    }

    fn header_pair(&self, pair: &model::HeaderPair, path: &str) -> Res<(HeaderName, HeaderValue)> {
        let name = HeaderName::try_from(format!("x-amzn-waf-{}", pair.name)).map_err(|_| {
            self.err(
                &join(path, "Name"),
                LoadErrorKind::Invalid,
                format!("`{}` is not a valid header name", pair.name),
            )
        })?;
        let value = HeaderValue::try_from(pair.value.as_str()).map_err(|_| {
            self.err(
                &join(path, "Value"),
                LoadErrorKind::Invalid,
                "not a valid header value",
            )
        })?;
        Ok((name, value))
    }

    fn block_response(
        &self,
        body: &model::ActionBody,
        path: &str,
    ) -> Res<Option<Arc<BlockResponse>>> {
        let Some(custom) = &body.custom_response else {
            return Ok(None);
        };
        let path = join(path, "CustomResponse");
        let status = StatusCode::from_u16(custom.response_code)
            .ok()
            .filter(|s| (200..=599).contains(&s.as_u16()))
            .ok_or_else(|| {
                self.err(
                    &join(&path, "ResponseCode"),
                    LoadErrorKind::Invalid,
                    format!("response code {} is outside 200-599", custom.response_code),
                )
            })?;
        let mut headers = HeaderMap::new();
        for (i, pair) in custom.response_headers.iter().enumerate() {
            let (name, value) =
                self.header_pair(pair, &join(&path, &format!("ResponseHeaders[{i}]")))?;
            headers.append(name, value);
        }
        let body = match &custom.custom_response_body_key {
            None => None,
            Some(key) => {
                let Some(body) = self.bodies.get(key) else {
                    return Err(self.err(
                        &join(&path, "CustomResponseBodyKey"),
                        LoadErrorKind::UnresolvedReference,
                        format!("no CustomResponseBodies entry `{key}`"),
                    ));
                };
                let content_type = HeaderValue::from_static(match body.content_type {
                    model::ContentType::TextPlain => "text/plain",
                    model::ContentType::TextHtml => "text/html",
                    model::ContentType::ApplicationJson => "application/json",
                });
                Some((content_type, Bytes::from(body.content.clone())))
            }
        };
        Ok(Some(Arc::new(BlockResponse {
            status,
            headers,
            body,
        })))
    }

    /// Checks that a statement sets exactly one statement type.
    fn only_statement(&self, s: &Statement, path: &str) -> Res<()> {
        if let Some(key) = s.other.keys().next() {
            let message = if key == "AsnMatchStatement" {
                "AsnMatchStatement is not supported: it needs AWS's ASN database".to_owned()
            } else {
                format!("`{key}` is not a statement type this engine supports")
            };
            return Err(self.err(&join(path, key), LoadErrorKind::Unsupported, message));
        }
        let set = [
            s.byte_match_statement.is_some(),
            s.regex_match_statement.is_some(),
            s.regex_pattern_set_reference_statement.is_some(),
            s.sqli_match_statement.is_some(),
            s.xss_match_statement.is_some(),
            s.size_constraint_statement.is_some(),
            s.geo_match_statement.is_some(),
            s.ip_set_reference_statement.is_some(),
            s.label_match_statement.is_some(),
            s.rate_based_statement.is_some(),
            s.and_statement.is_some(),
            s.or_statement.is_some(),
            s.not_statement.is_some(),
            s.rule_group_reference_statement.is_some(),
            s.managed_rule_group_statement.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if set != 1 {
            return Err(self.err(
                path,
                LoadErrorKind::Invalid,
                format!("a statement must set exactly one statement type, this one sets {set}"),
            ));
        }
        Ok(())
    }

    fn statement(&mut self, s: &Statement, path: &str, nested: bool) -> Res<Stmt> {
        self.only_statement(s, path)?;
        if s.managed_rule_group_statement.is_some() {
            return Err(self.err(
                &join(path, "ManagedRuleGroupStatement"),
                LoadErrorKind::Invalid,
                "ManagedRuleGroupStatement can only be a rule's top-level statement",
            ));
        }
        if s.rule_group_reference_statement.is_some() {
            return Err(self.err(
                &join(path, "RuleGroupReferenceStatement"),
                LoadErrorKind::Invalid,
                "RuleGroupReferenceStatement can only be a rule's top-level statement",
            ));
        }
        if let Some(b) = &s.byte_match_statement {
            let path = join(path, "ByteMatchStatement");
            let needle: Vec<u8> = match (&b.search_string, &b.search_string_base64) {
                (Some(text), None) => text.as_bytes().to_vec(),
                (None, Some(encoded)) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map_err(|e| {
                            self.err(
                                &join(&path, "SearchStringBase64"),
                                LoadErrorKind::Invalid,
                                format!("not base64: {e}"),
                            )
                        })?
                }
                _ => {
                    return Err(self.err(
                        &path,
                        LoadErrorKind::Invalid,
                        "set exactly one of SearchString or SearchStringBase64",
                    ));
                }
            };
            if needle.is_empty() || needle.len() > 200 {
                return Err(self.err(
                    &join(&path, "SearchString"),
                    LoadErrorKind::Invalid,
                    format!("SearchString must be 1 to 200 bytes, not {}", needle.len()),
                ));
            }
            let input = self.input(&b.field_to_match, &b.text_transformations, &path)?;
            let finder = AhoCorasick::new([&needle]).map_err(|e| {
                self.err(
                    &join(&path, "SearchString"),
                    LoadErrorKind::Invalid,
                    e.to_string(),
                )
            })?;
            return Ok(Stmt::Byte {
                input,
                needle: needle.into(),
                position: b.positional_constraint,
                finder,
            });
        }
        if let Some(r) = &s.regex_match_statement {
            let path = join(path, "RegexMatchStatement");
            let re = self.regex(&r.regex_string, &join(&path, "RegexString"))?;
            let input = self.input(&r.field_to_match, &r.text_transformations, &path)?;
            return Ok(Stmt::Regex { input, re });
        }
        if let Some(r) = &s.regex_pattern_set_reference_statement {
            let path = join(path, "RegexPatternSetReferenceStatement");
            let Some(set) = self.sources.regex_sets.get(&r.arn) else {
                return Err(self.err(
                    &join(&path, "ARN"),
                    LoadErrorKind::UnresolvedReference,
                    format!(
                        "no regex pattern set with ARN `{}` was supplied (AclSources::with_regex_pattern_set_json)",
                        r.arn
                    ),
                ));
            };
            let matcher = self.regex_set(set)?;
            let input = self.input(&r.field_to_match, &r.text_transformations, &path)?;
            return Ok(Stmt::RegexSet { input, matcher });
        }
        if let Some(q) = &s.sqli_match_statement {
            let path = join(path, "SqliMatchStatement");
            let input = self.input(&q.field_to_match, &q.text_transformations, &path)?;
            let high = q.sensitivity_level == Some(model::SensitivityLevel::High);
            // The SQLi detector's keyword table is built once per process:
            // build it now rather than during the first request.
            crate::libinjection::sqli_data::warm_up();
            return Ok(Stmt::Sqli { input, high });
        }
        if let Some(x) = &s.xss_match_statement {
            let path = join(path, "XssMatchStatement");
            let input = self.input(&x.field_to_match, &x.text_transformations, &path)?;
            return Ok(Stmt::Xss { input });
        }
        if let Some(z) = &s.size_constraint_statement {
            let path = join(path, "SizeConstraintStatement");
            let input = self.input(&z.field_to_match, &z.text_transformations, &path)?;
            return Ok(Stmt::Size {
                input,
                op: z.comparison_operator,
                size: z.size,
            });
        }
        if let Some(g) = &s.geo_match_statement {
            let path = join(path, "GeoMatchStatement");
            let mut codes = Vec::with_capacity(g.country_codes.len());
            for (i, code) in g.country_codes.iter().enumerate() {
                let bytes = code.as_bytes();
                if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_uppercase) {
                    return Err(self.err(
                        &join(&path, &format!("CountryCodes[{i}]")),
                        LoadErrorKind::Invalid,
                        format!("`{code}` is not an ISO 3166 alpha-2 country code"),
                    ));
                }
                codes.push([bytes[0], bytes[1]]);
            }
            if codes.is_empty() {
                return Err(self.err(
                    &join(&path, "CountryCodes"),
                    LoadErrorKind::Invalid,
                    "CountryCodes is empty",
                ));
            }
            let forwarded = g
                .forwarded_ip_config
                .as_ref()
                .map(|f| self.forwarded(f, &join(&path, "ForwardedIPConfig")))
                .transpose()?;
            return Ok(Stmt::Geo {
                codes: codes.into(),
                forwarded,
            });
        }
        if let Some(ip) = &s.ip_set_reference_statement {
            let path = join(path, "IPSetReferenceStatement");
            let set = self.ip_set(&ip.arn, &join(&path, "ARN"))?;
            let forwarded = ip
                .ip_set_forwarded_ip_config
                .as_ref()
                .map(|f| self.forwarded(f, &join(&path, "IPSetForwardedIPConfig")))
                .transpose()?;
            return Ok(Stmt::Ip { set, forwarded });
        }
        if let Some(l) = &s.label_match_statement {
            if l.key.is_empty() {
                return Err(self.err(
                    &join(path, "LabelMatchStatement.Key"),
                    LoadErrorKind::Invalid,
                    "empty label key",
                ));
            }
            return Ok(Stmt::Label {
                scope: l.scope,
                key: l.key.clone(),
            });
        }
        if let Some(r) = &s.rate_based_statement {
            let path = join(path, "RateBasedStatement");
            if nested {
                return Err(self.err(
                    &path,
                    LoadErrorKind::Invalid,
                    "RateBasedStatement cannot be nested in another statement",
                ));
            }
            return self.rate(r, &path);
        }
        if let Some(and) = &s.and_statement {
            let path = join(path, "AndStatement");
            return Ok(Stmt::And(self.statements(&and.statements, &path)?));
        }
        if let Some(or) = &s.or_statement {
            let path = join(path, "OrStatement");
            return Ok(Stmt::Or(self.statements(&or.statements, &path)?));
        }
        if let Some(not) = &s.not_statement {
            let path = join(path, "NotStatement.Statement");
            return Ok(Stmt::Not(Box::new(self.statement(
                &not.statement,
                &path,
                true,
            )?)));
        }
        // `only_statement` guarantees exactly one type is set, and every type
        // is handled above.
        Err(self.err(path, LoadErrorKind::Invalid, "empty statement"))
    }

    fn statements(&mut self, list: &[Statement], path: &str) -> Res<Box<[Stmt]>> {
        if list.is_empty() {
            return Err(self.err(
                &join(path, "Statements"),
                LoadErrorKind::Invalid,
                "Statements is empty",
            ));
        }
        list.iter()
            .enumerate()
            .map(|(i, s)| self.statement(s, &join(path, &format!("Statements[{i}]")), true))
            .collect()
    }

    fn regex(&self, pattern: &str, path: &str) -> Res<regex::bytes::Regex> {
        if pattern.chars().count() > 512 {
            return Err(self.err(
                path,
                LoadErrorKind::Invalid,
                "RegexString is longer than 512 characters",
            ));
        }
        regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .or_else(|_| regex::bytes::Regex::new(pattern))
            .map_err(|e| {
                self.err(
                    path,
                    LoadErrorKind::Unsupported,
                    format!("the regex crate cannot compile this expression (no look-around or back-references): {e}"),
                )
            })
    }

    fn regex_set(&mut self, set: &model::RegexPatternSet) -> Res<SetMatcher> {
        let document = format!("regex pattern set {}", set.arn);
        let patterns: Vec<&str> = set
            .regular_expression_list
            .iter()
            .map(|r| r.regex_string.as_str())
            .collect();
        if patterns.is_empty() {
            return Err(LoadError::new(
                &document,
                "RegularExpressionList",
                LoadErrorKind::Invalid,
                "the set has no expressions",
            ));
        }
        for (i, p) in patterns.iter().enumerate() {
            // Each expression must compile on its own, to name the bad one.
            let saved = std::mem::replace(&mut self.document, document.clone());
            let checked = self.regex(p, &format!("RegularExpressionList[{i}].RegexString"));
            self.document = saved;
            checked?;
        }
        let literal = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_alphanumeric() || " _-/:,@%".contains(c))
        };
        if patterns.iter().all(literal) {
            // Plain strings: one Aho-Corasick automaton beats a regex set.
            let ac = AhoCorasick::new(&patterns).map_err(|e| {
                LoadError::new(
                    &document,
                    "RegularExpressionList",
                    LoadErrorKind::Invalid,
                    e.to_string(),
                )
            })?;
            return Ok(SetMatcher::Literals(ac));
        }
        regex::bytes::RegexSetBuilder::new(&patterns)
            .unicode(false)
            .build()
            .or_else(|_| regex::bytes::RegexSet::new(&patterns))
            .map(SetMatcher::Regexes)
            .map_err(|e| {
                LoadError::new(
                    &document,
                    "RegularExpressionList",
                    LoadErrorKind::Unsupported,
                    e.to_string(),
                )
            })
    }

    fn ip_set(&mut self, arn: &str, path: &str) -> Res<Arc<IpRanges>> {
        if let Some(set) = self.ip_sets.get(arn) {
            return Ok(set.clone());
        }
        let Some(set) = self.sources.ip_sets.get(arn) else {
            return Err(self.err(
                path,
                LoadErrorKind::UnresolvedReference,
                format!("no IP set with ARN `{arn}` was supplied (AclSources::with_ip_set_json)"),
            ));
        };
        let ranges = IpRanges::from_cidrs(&set.addresses).map_err(|bad| {
            LoadError::new(
                &format!("IP set {arn}"),
                &format!("Addresses[{}]", bad.index),
                LoadErrorKind::Invalid,
                format!("`{}` is not an IP address or CIDR", bad.value),
            )
        })?;
        let ranges = Arc::new(ranges);
        self.ip_sets.insert(arn.to_owned(), ranges.clone());
        Ok(ranges)
    }

    fn forwarded(&self, f: &model::ForwardedIpConfig, path: &str) -> Res<Forwarded> {
        let header = HeaderName::try_from(f.header_name.as_str()).map_err(|_| {
            self.err(
                &join(path, "HeaderName"),
                LoadErrorKind::Invalid,
                format!("`{}` is not a valid header name", f.header_name),
            )
        })?;
        Ok(Forwarded {
            header,
            fallback_match: f.fallback_behavior == model::FallbackBehavior::Match,
            position: f.position.unwrap_or(model::Position::First),
        })
    }

    fn rate(&mut self, r: &model::RateBasedStatement, path: &str) -> Res<Stmt> {
        if !(10..=2_000_000_000).contains(&r.limit) {
            return Err(self.err(
                &join(path, "Limit"),
                LoadErrorKind::Invalid,
                format!("Limit must be 10 to 2,000,000,000, not {}", r.limit),
            ));
        }
        let window = r.evaluation_window_sec.unwrap_or(300);
        if ![60, 120, 300, 600].contains(&window) {
            return Err(self.err(
                &join(path, "EvaluationWindowSec"),
                LoadErrorKind::Invalid,
                format!("EvaluationWindowSec must be 60, 120, 300 or 600, not {window}"),
            ));
        }
        let forwarded = r
            .forwarded_ip_config
            .as_ref()
            .map(|f| self.forwarded(f, &join(path, "ForwardedIPConfig")))
            .transpose()?;
        let key = match r.aggregate_key_type {
            model::AggregateKeyType::Ip => RateKey::Ip,
            model::AggregateKeyType::Constant => {
                if r.scope_down_statement.is_none() {
                    return Err(self.err(
                        &join(path, "ScopeDownStatement"),
                        LoadErrorKind::Invalid,
                        "AggregateKeyType CONSTANT needs a ScopeDownStatement",
                    ));
                }
                RateKey::Constant
            }
            model::AggregateKeyType::ForwardedIp => match &forwarded {
                Some(f) => RateKey::Forwarded(f.clone()),
                None => {
                    return Err(self.err(
                        &join(path, "ForwardedIPConfig"),
                        LoadErrorKind::Invalid,
                        "AggregateKeyType FORWARDED_IP needs a ForwardedIPConfig",
                    ));
                }
            },
            model::AggregateKeyType::CustomKeys => {
                if r.custom_keys.is_empty() || r.custom_keys.len() > 5 {
                    return Err(self.err(
                        &join(path, "CustomKeys"),
                        LoadErrorKind::Invalid,
                        format!("CUSTOM_KEYS needs 1 to 5 keys, not {}", r.custom_keys.len()),
                    ));
                }
                let mut parts = Vec::new();
                for (i, k) in r.custom_keys.iter().enumerate() {
                    parts.push(self.key_part(
                        k,
                        &join(path, &format!("CustomKeys[{i}]")),
                        forwarded.as_ref(),
                    )?);
                }
                RateKey::Custom(parts.into())
            }
        };
        let scope_down = r
            .scope_down_statement
            .as_ref()
            .map(|s| self.statement(s, &join(path, "ScopeDownStatement"), true))
            .transpose()?;
        let table = Arc::new(RateTable::new(self.sources.max_rate_keys));
        let name = format!("{}{path}", self.rate_prefix);
        self.rate_tables.push((name, table.clone()));
        Ok(Stmt::Rate(Box::new(RateStmt {
            limit: r.limit,
            window,
            key,
            scope_down,
            table,
        })))
    }

    fn key_part(
        &mut self,
        k: &model::RateCustomKey,
        path: &str,
        forwarded: Option<&Forwarded>,
    ) -> Res<KeyPart> {
        if let Some(other) = k.other.keys().next() {
            return Err(self.err(
                &join(path, other),
                LoadErrorKind::Unsupported,
                format!("custom key `{other}` is not supported"),
            ));
        }
        let chain =
            |this: &Self, tts: &[model::TextTransformation], p: &str| this.chain(tts, p, true);
        let part = if let Some(h) = &k.header {
            let name = HeaderName::try_from(h.name.as_str()).map_err(|_| {
                self.err(
                    &join(path, "Header.Name"),
                    LoadErrorKind::Invalid,
                    "not a valid header name",
                )
            })?;
            KeyPart::Header(
                name,
                chain(self, &h.text_transformations, &join(path, "Header"))?,
            )
        } else if let Some(c) = &k.cookie {
            KeyPart::Cookie(
                c.name.clone(),
                chain(self, &c.text_transformations, &join(path, "Cookie"))?,
            )
        } else if let Some(q) = &k.query_argument {
            KeyPart::QueryArgument(
                q.name.clone(),
                chain(self, &q.text_transformations, &join(path, "QueryArgument"))?,
            )
        } else if let Some(q) = &k.query_string {
            KeyPart::QueryString(chain(
                self,
                &q.text_transformations,
                &join(path, "QueryString"),
            )?)
        } else if let Some(u) = &k.uri_path {
            KeyPart::UriPath(chain(
                self,
                &u.text_transformations,
                &join(path, "UriPath"),
            )?)
        } else if k.http_method.is_some() {
            KeyPart::Method
        } else if k.ip.is_some() {
            KeyPart::Ip
        } else if k.forwarded_ip.is_some() {
            match forwarded {
                Some(f) => KeyPart::ForwardedIp(f.clone()),
                None => {
                    return Err(self.err(
                        &join(path, "ForwardedIP"),
                        LoadErrorKind::Invalid,
                        "a ForwardedIP key needs the statement's ForwardedIPConfig",
                    ));
                }
            }
        } else if let Some(ns) = &k.label_namespace {
            KeyPart::LabelNamespace(ns.namespace.clone())
        } else {
            return Err(self.err(path, LoadErrorKind::Invalid, "an empty custom key"));
        };
        Ok(part)
    }

    fn chain(
        &self,
        tts: &[model::TextTransformation],
        path: &str,
        optional: bool,
    ) -> Res<Box<[TransformKind]>> {
        if tts.is_empty() && !optional {
            return Err(self.err(
                &join(path, "TextTransformations"),
                LoadErrorKind::Invalid,
                "at least one TextTransformation is required (use NONE)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in tts.iter().enumerate() {
            if !seen.insert(t.priority) {
                return Err(self.err(
                    &join(path, &format!("TextTransformations[{i}].Priority")),
                    LoadErrorKind::Invalid,
                    format!("duplicate transformation priority {}", t.priority),
                ));
            }
        }
        let mut sorted: Vec<&model::TextTransformation> = tts.iter().collect();
        sorted.sort_by_key(|t| t.priority);
        Ok(sorted
            .into_iter()
            .map(|t| t.kind)
            .filter(|k| *k != TransformKind::None)
            .collect())
    }

    fn input(
        &mut self,
        field: &model::FieldToMatch,
        tts: &[model::TextTransformation],
        path: &str,
    ) -> Res<usize> {
        let field = self.field(field, &join(path, "FieldToMatch"))?;
        let chain = self.chain(tts, path, false)?;
        let field_id = match self.field_ids.get(&field) {
            Some(id) => *id,
            None => {
                let id = self.fields.len();
                self.fields.push(field.clone());
                self.field_ids.insert(field, id);
                id
            }
        };
        let key = (field_id, chain.to_vec());
        if let Some(id) = self.input_ids.get(&key) {
            return Ok(*id);
        }
        let id = self.inputs.len();
        self.inputs.push((field_id, chain));
        self.input_ids.insert(key, id);
        Ok(id)
    }

    fn field(&self, f: &model::FieldToMatch, path: &str) -> Res<Field> {
        if let Some(key) = f.other.keys().next() {
            return Err(self.err(
                &join(path, key),
                LoadErrorKind::Unsupported,
                format!("FieldToMatch `{key}` is not supported"),
            ));
        }
        let count = [
            f.single_header.is_some(),
            f.headers.is_some(),
            f.cookies.is_some(),
            f.single_query_argument.is_some(),
            f.all_query_arguments.is_some(),
            f.uri_path.is_some(),
            f.query_string.is_some(),
            f.method.is_some(),
            f.body.is_some(),
            f.json_body.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if count != 1 {
            return Err(self.err(
                path,
                LoadErrorKind::Invalid,
                format!("FieldToMatch must set exactly one field, this one sets {count}"),
            ));
        }
        let oversize = |o: Option<model::OversizeHandling>| match o {
            None | Some(model::OversizeHandling::Continue) => Oversize::Continue,
            Some(model::OversizeHandling::Match) => Oversize::Match,
            Some(model::OversizeHandling::NoMatch) => Oversize::NoMatch,
        };
        Ok(if let Some(h) = &f.single_header {
            let name = HeaderName::try_from(h.name.as_str()).map_err(|_| {
                self.err(
                    &join(path, "SingleHeader.Name"),
                    LoadErrorKind::Invalid,
                    format!("`{}` is not a valid header name", h.name),
                )
            })?;
            Field::SingleHeader(name)
        } else if let Some(h) = &f.headers {
            Field::Headers {
                pattern: self.name_pattern(
                    &h.match_pattern,
                    &join(path, "Headers.MatchPattern"),
                    true,
                )?,
                scope: h.match_scope,
                oversize: oversize(Some(h.oversize_handling)),
            }
        } else if let Some(c) = &f.cookies {
            Field::Cookies {
                pattern: self.name_pattern(
                    &c.match_pattern,
                    &join(path, "Cookies.MatchPattern"),
                    false,
                )?,
                scope: c.match_scope,
                oversize: oversize(Some(c.oversize_handling)),
            }
        } else if let Some(q) = &f.single_query_argument {
            Field::SingleQueryArgument(q.name.to_ascii_lowercase())
        } else if f.all_query_arguments.is_some() {
            Field::AllQueryArguments
        } else if f.uri_path.is_some() {
            Field::UriPath
        } else if f.query_string.is_some() {
            Field::QueryString
        } else if f.method.is_some() {
            Field::Method
        } else if let Some(b) = &f.body {
            Field::Body {
                oversize: oversize(b.oversize_handling),
            }
        } else if let Some(j) = &f.json_body {
            let pattern = match (&j.match_pattern.all, &j.match_pattern.included_paths) {
                (Some(_), None) => None,
                (None, Some(paths)) => {
                    for (i, p) in paths.iter().enumerate() {
                        if !(p.is_empty() || p.starts_with('/')) {
                            return Err(self.err(
                                &join(path, &format!("JsonBody.MatchPattern.IncludedPaths[{i}]")),
                                LoadErrorKind::Invalid,
                                format!("`{p}` is not a JSON pointer (it must start with `/`)"),
                            ));
                        }
                    }
                    Some(paths.clone().into_boxed_slice())
                }
                _ => {
                    return Err(self.err(
                        &join(path, "JsonBody.MatchPattern"),
                        LoadErrorKind::Invalid,
                        "MatchPattern must set exactly one of All or IncludedPaths",
                    ));
                }
            };
            Field::JsonBody {
                paths: pattern,
                scope: j.match_scope,
                invalid: j.invalid_fallback_behavior,
                oversize: oversize(j.oversize_handling),
            }
        } else {
            return Err(self.err(path, LoadErrorKind::Invalid, "empty FieldToMatch"));
        })
    }

    fn name_pattern(&self, p: &model::MultiPattern, path: &str, headers: bool) -> Res<NamePattern> {
        let norm = |names: &Vec<String>| -> Box<[String]> {
            names
                .iter()
                .map(|n| {
                    if headers {
                        n.to_ascii_lowercase()
                    } else {
                        n.clone()
                    }
                })
                .collect()
        };
        match (&p.all, &p.included_headers, &p.excluded_headers) {
            (Some(_), None, None) => Ok(NamePattern::All),
            (None, Some(names), None) => Ok(NamePattern::Included(norm(names))),
            (None, None, Some(names)) => Ok(NamePattern::Excluded(norm(names))),
            _ => Err(self.err(
                path,
                LoadErrorKind::Invalid,
                "MatchPattern must set exactly one of All, Included... or Excluded...",
            )),
        }
    }
}
