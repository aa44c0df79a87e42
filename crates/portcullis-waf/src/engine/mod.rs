//! The compiled ACL and its evaluation.
//!
//! Every distinct `FieldToMatch` of the ACL is a numbered field, and every
//! distinct (field, transformation chain) pair a numbered input. A request
//! extracts a field at most once and transforms an input at most once, however
//! many rules use them: the per-request cache is two vectors indexed by those
//! numbers.
//!
//! `mod.rs` holds the compiled rules and the outcome; `fields` extracts the
//! parts of a request a rule inspects; `evaluate` runs the rules on them.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use portcullis_core::client_ip::ClientIpResolver;

use crate::ipset::IpRanges;
use crate::model::{
    ComparisonOperator, InvalidFallbackBehavior, LabelScope, MatchScope, Position,
    PositionalConstraint,
};
use crate::rate::RateTable;
use crate::transform::{ChainTriggers, TransformKind};

/// AWS inspects at most this many bytes of headers or cookies.
const HEADERS_LIMIT_BYTES: usize = 8 * 1024;
/// AWS inspects at most this many headers or cookies.
const HEADERS_LIMIT_COUNT: usize = 200;
/// `ForwardedIPConfig` position ANY looks at this many addresses.
const FORWARDED_ANY_LIMIT: usize = 10;

/// A compiled web ACL, ready to evaluate requests. Cheap to share behind an
/// `Arc`; compile it with [`AclSources::compile`](crate::AclSources::compile).
pub struct CompiledAcl {
    pub(crate) name: String,
    pub(crate) default: Action,
    pub(crate) rules: Vec<Rule>,
    pub(crate) fields: Vec<Field>,
    pub(crate) inputs: Vec<(usize, Box<[TransformKind]>)>,
    /// Per input, the bytes without which its chain changes no value
    /// (`None` where the chain has no such set).
    pub(crate) triggers: Vec<Option<ChainTriggers>>,
    /// Per field, whether its repeated values are dropped before testing:
    /// only where some test of it costs more than finding the repeats
    /// (see [`dedupe_fields`]).
    pub(crate) dedupe: Vec<bool>,
    pub(crate) inspects_body: bool,
    pub(crate) body_limit: usize,
    pub(crate) rate_tables: Vec<(String, Arc<RateTable>)>,
}

impl fmt::Debug for CompiledAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledAcl")
            .field("name", &self.name)
            .field("rules", &self.rules.len())
            .field("fields", &self.fields.len())
            .field("inputs", &self.inputs.len())
            .field("inspects_body", &self.inspects_body)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl CompiledAcl {
    /// Compiles a web ACL document that refers to no rule group or set.
    ///
    /// # Errors
    ///
    /// See [`AclSources::compile`](crate::AclSources::compile).
    pub fn from_json(json: &str) -> Result<Self, crate::LoadError> {
        crate::AclSources::from_json(json)?.compile()
    }

    /// The ACL's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many top-level rules it has.
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether some rule inspects the body (so requests wait for up to
    /// [`body_inspection_limit`](Self::body_inspection_limit) bytes of it).
    #[must_use]
    pub fn inspects_body(&self) -> bool {
        self.inspects_body
    }

    /// How many bytes of the body are inspected.
    #[must_use]
    pub fn body_inspection_limit(&self) -> usize {
        self.body_limit
    }

    /// Keeps the rate-based counters of `previous` for every rate-based rule
    /// at the same place with the same name, so a reload does not reset them.
    pub(crate) fn adopt_rate_state(&mut self, previous: &CompiledAcl) {
        let mut swaps = Vec::new();
        for (name, table) in &previous.rate_tables {
            if let Some(i) = self.rate_tables.iter().position(|(n, _)| n == name) {
                swaps.push((self.rate_tables[i].1.clone(), table.clone()));
                self.rate_tables[i].1 = table.clone();
            }
        }
        if swaps.is_empty() {
            return;
        }
        fn visit(stmt: &mut Stmt, swaps: &[(Arc<RateTable>, Arc<RateTable>)]) {
            match stmt {
                Stmt::Rate(rate) => {
                    if let Some((_, old)) =
                        swaps.iter().find(|(new, _)| Arc::ptr_eq(new, &rate.table))
                    {
                        rate.table = old.clone();
                    }
                }
                Stmt::And(list) | Stmt::Or(list) => list.iter_mut().for_each(|s| visit(s, swaps)),
                Stmt::Not(inner) => visit(inner, swaps),
                _ => {}
            }
        }
        for rule in &mut self.rules {
            match &mut rule.body {
                RuleBody::Plain { stmt, .. } => visit(stmt, &swaps),
                RuleBody::Group(group) => {
                    if let Some(group) = Arc::get_mut(group) {
                        for r in &mut group.rules {
                            if let RuleBody::Plain { stmt, .. } = &mut r.body {
                                visit(stmt, &swaps);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Action {
    Allow(Arc<[(HeaderName, HeaderValue)]>),
    Block(Option<Arc<BlockResponse>>),
    Count(Arc<[(HeaderName, HeaderValue)]>),
}

/// A Block action's custom response.
#[derive(Debug)]
pub(crate) struct BlockResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<(HeaderValue, Bytes)>,
}

pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    pub(crate) labels: Box<[String]>,
    pub(crate) body: RuleBody,
}

pub(crate) enum RuleBody {
    Plain { stmt: Stmt, action: Action },
    Group(Arc<Group>),
}

pub(crate) struct Group {
    /// How AWS WAF's logs name the group (`ruleGroupId`): `AWS#<name>` for a
    /// managed group, the ARN for a rule group of one's own.
    pub(crate) id: Arc<str>,
    pub(crate) rules: Vec<Rule>,
    /// A managed group's `ScopeDownStatement`: the group evaluates only the
    /// requests it matches.
    pub(crate) scope_down: Option<Stmt>,
}

pub(crate) enum Stmt {
    Byte {
        input: usize,
        needle: Box<[u8]>,
        position: PositionalConstraint,
        finder: AhoCorasick,
    },
    Regex {
        input: usize,
        re: regex::bytes::Regex,
    },
    RegexSet {
        input: usize,
        matcher: SetMatcher,
    },
    Sqli {
        input: usize,
        high: bool,
    },
    Xss {
        input: usize,
    },
    Size {
        input: usize,
        op: ComparisonOperator,
        size: u64,
    },
    Geo {
        codes: Box<[[u8; 2]]>,
        forwarded: Option<Forwarded>,
    },
    Ip {
        set: Arc<IpRanges>,
        forwarded: Option<Forwarded>,
    },
    Label {
        scope: LabelScope,
        key: String,
    },
    Rate(Box<RateStmt>),
    And(Box<[Stmt]>),
    Or(Box<[Stmt]>),
    Not(Box<Stmt>),
}

pub(crate) enum SetMatcher {
    Literals(AhoCorasick),
    Regexes(regex::bytes::RegexSet),
}

#[derive(Clone, Debug)]
pub(crate) struct Forwarded {
    pub(crate) header: HeaderName,
    pub(crate) fallback_match: bool,
    pub(crate) position: Position,
}

pub(crate) struct RateStmt {
    pub(crate) limit: u64,
    pub(crate) window: u64,
    pub(crate) key: RateKey,
    pub(crate) scope_down: Option<Stmt>,
    pub(crate) table: Arc<RateTable>,
}

pub(crate) enum RateKey {
    Ip,
    Forwarded(Forwarded),
    Constant,
    Custom(Box<[KeyPart]>),
}

pub(crate) enum KeyPart {
    Header(HeaderName, Box<[TransformKind]>),
    Cookie(String, Box<[TransformKind]>),
    QueryArgument(String, Box<[TransformKind]>),
    QueryString(Box<[TransformKind]>),
    UriPath(Box<[TransformKind]>),
    Method,
    Ip,
    ForwardedIp(Forwarded),
    LabelNamespace(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Oversize {
    Continue,
    Match,
    NoMatch,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum NamePattern {
    All,
    Included(Box<[String]>),
    Excluded(Box<[String]>),
}

impl NamePattern {
    fn admits(&self, name: &str) -> bool {
        match self {
            NamePattern::All => true,
            NamePattern::Included(names) => names.iter().any(|n| n == name),
            NamePattern::Excluded(names) => !names.iter().any(|n| n == name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    SingleHeader(HeaderName),
    Headers {
        pattern: NamePattern,
        scope: MatchScope,
        oversize: Oversize,
    },
    Cookies {
        pattern: NamePattern,
        scope: MatchScope,
        oversize: Oversize,
    },
    SingleQueryArgument(String),
    AllQueryArguments,
    UriPath,
    QueryString,
    Method,
    Body {
        oversize: Oversize,
    },
    JsonBody {
        paths: Option<Box<[String]>>,
        scope: MatchScope,
        invalid: Option<InvalidFallbackBehavior>,
        oversize: Oversize,
    },
}

/// Where the country of a request comes from, for `GeoMatchStatement`.
pub trait CountryLookup: Send + Sync + fmt::Debug + 'static {
    /// The ISO 3166 alpha-2 code of `ip`'s country, upper case.
    fn country(&self, ip: IpAddr) -> Option<[u8; 2]>;
}

/// What the engine needs besides the request: the client-IP resolver, the
/// clock for rate-based rules, and where countries come from.
#[derive(Clone, Debug)]
pub(crate) struct Env {
    pub(crate) resolver: ClientIpResolver,
    pub(crate) clock: portcullis_core::clock::SharedClock,
    pub(crate) geo_header: Option<HeaderName>,
    pub(crate) geo_lookup: Option<Arc<dyn CountryLookup>>,
}

/// The parts of a request the engine reads.
#[derive(Clone, Copy)]
pub(crate) struct RequestView<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) body: &'a [u8],
    pub(crate) body_oversize: bool,
}

/// The action a web ACL took on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WafAction {
    /// Let through, by an Allow rule or the default action.
    Allow,
    /// Refused, by a Block rule or the default action.
    Block,
}

/// What the web ACL decided about a request. The layer logs it and puts it in
/// the extensions of the request it passes on (allowed requests) or of the
/// refusal it answers with (blocked requests), so that later layers, a facade
/// or a tool can report the terminating rule, the status and the labels.
#[derive(Clone, Debug)]
pub struct WafOutcome {
    action: WafAction,
    terminating_rule: Option<Arc<str>>,
    matched_rules: Vec<Arc<str>>,
    rule_groups: Vec<RuleGroupMatch>,
    labels: Vec<String>,
    pub(crate) block: Option<Arc<BlockResponse>>,
    pub(crate) insert_headers: Vec<(HeaderName, HeaderValue)>,
}

impl WafOutcome {
    /// Allow or Block.
    #[must_use]
    pub fn action(&self) -> WafAction {
        self.action
    }

    /// The rule that ended evaluation, or `None` for the default action. A
    /// rule inside a rule group is named `<web ACL rule>/<group rule>`.
    #[must_use]
    pub fn terminating_rule(&self) -> Option<&str> {
        self.terminating_rule.as_deref()
    }

    /// Every rule that matched, in evaluation order (Count rules and the
    /// terminating rule).
    pub fn matched_rules(&self) -> impl Iterator<Item = &str> {
        self.matched_rules.iter().map(|r| &**r)
    }

    /// The labels rules added, fully qualified.
    #[must_use]
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The rule groups (managed or one's own) in which some rule matched, in
    /// evaluation order: AWS WAF's log field `ruleGroupList`.
    #[must_use]
    pub fn rule_groups(&self) -> &[RuleGroupMatch] {
        &self.rule_groups
    }

    /// Whether the ACL refused the request.
    #[must_use]
    pub fn is_blocked(&self) -> bool {
        self.action == WafAction::Block
    }

    /// The status the refusal answers with: the Block action's
    /// `CustomResponse.ResponseCode`, or 403 (API Gateway's WAF_FILTERED).
    /// `None` for an allowed request.
    #[must_use]
    pub fn block_status(&self) -> Option<StatusCode> {
        match self.action {
            WafAction::Block => Some(
                self.block
                    .as_ref()
                    .map_or(StatusCode::FORBIDDEN, |block| block.status),
            ),
            WafAction::Allow => None,
        }
    }
}

/// The rules that matched inside one rule group, as AWS WAF's logs report
/// them in `ruleGroupList[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleGroupMatch {
    group_id: Arc<str>,
    web_acl_rule: Arc<str>,
    terminating_rule: Option<Arc<str>>,
    non_terminating_rules: Vec<Arc<str>>,
}

impl RuleGroupMatch {
    /// `ruleGroupId`: `AWS#<group name>` for an AWS managed rule group (such
    /// as `AWS#AWSManagedRulesCommonRuleSet`), the group's ARN otherwise.
    #[must_use]
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The web ACL rule that holds the group (`terminatingRuleId` when the
    /// group ended evaluation).
    #[must_use]
    pub fn web_acl_rule(&self) -> &str {
        &self.web_acl_rule
    }

    /// `terminatingRule.ruleId`: the group's rule, by its own name (such as
    /// `NoUserAgent_HEADER`), whose Allow or Block ended evaluation.
    #[must_use]
    pub fn terminating_rule(&self) -> Option<&str> {
        self.terminating_rule.as_deref()
    }

    /// `nonTerminatingMatchingRules[].ruleId`: the group's rules that matched
    /// and counted (Count actions, `ExcludedRules`, `OverrideAction` Count).
    pub fn non_terminating_rules(&self) -> impl Iterator<Item = &str> {
        self.non_terminating_rules.iter().map(|r| &**r)
    }
}

mod evaluate;
mod fields;

pub(crate) use fields::dedupe_fields;
