//! The compiler: a web ACL, its rule groups and their rules, compiled once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::engine::{Action, CompiledAcl, Field, Group, Rule, RuleBody, Stmt};
use portcullis_core::config::ConfigError;

use crate::error::LoadError;
use crate::ipset::IpRanges;
use crate::model::{self, Statement};
use crate::rate::RateTable;
use crate::transform::{ChainTriggers, TransformKind};

use super::{AclSources, DEFAULT_BODY_INSPECTION_LIMIT};

impl AclSources {
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

pub(super) struct Compiler<'s> {
    pub(super) sources: &'s AclSources,
    /// The path of the statement that refers to the document being compiled
    /// (a rule group), in front of every path inside it; empty for the web
    /// ACL itself.
    pub(super) base: String,
    /// The custom response bodies of the document being compiled (copied:
    /// a managed group's document lives only while it is compiled).
    pub(super) bodies: BTreeMap<String, model::CustomResponseBody>,
    pub(super) fields: Vec<Field>,
    pub(super) field_ids: HashMap<Field, usize>,
    pub(super) inputs: Vec<(usize, Box<[TransformKind]>)>,
    pub(super) input_ids: HashMap<(usize, Vec<TransformKind>), usize>,
    pub(super) ip_sets: HashMap<String, Arc<IpRanges>>,
    pub(super) rate_tables: Vec<(String, Arc<RateTable>)>,
    pub(super) rate_prefix: String,
}

pub(super) type Res<T> = Result<T, LoadError>;

pub(super) fn join(path: &str, segment: &str) -> String {
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
            base: String::new(),
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

    /// A configuration error at `path` in the document being compiled.
    pub(super) fn err(&self, path: &str, message: impl Into<String>) -> LoadError {
        LoadError::Config(ConfigError::new(path.to_owned(), message).within(&self.base))
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
                    format!("duplicate rule name `{}`", rule.name),
                ));
            }
            if !priorities.insert(rule.priority) {
                return Err(self.err(
                    &join(&path, "Priority"),
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
                return Err(self.err(&join(path, "Action"), "a rule needs an Action"));
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
                    format!("AWS managed rule group `{name}` needs data only AWS has{hint}"),
                ));
            }
        } else {
            return Err(self.err(
                &join(path, "Name"),
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
        let base = join(&self.base, path);
        let saved_base = std::mem::replace(&mut self.base, base);
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
        self.base = saved_base;
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
}
