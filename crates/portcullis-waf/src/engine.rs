//! The compiled ACL and its evaluation.
//!
//! Every distinct `FieldToMatch` of the ACL is a numbered field, and every
//! distinct (field, transformation chain) pair a numbered input. A request
//! extracts a field at most once and transforms an input at most once, however
//! many rules use them: the per-request cache is two vectors indexed by those
//! numbers.

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, Input};
use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use portcullis_core::client_ip::{ClientIpResolver, parse_ip_with_port};
use portcullis_core::clock::Clock;
use serde_json::Value;

use crate::detect;
use crate::ipset::IpRanges;
use crate::model::{
    ComparisonOperator, InvalidFallbackBehavior, LabelScope, MatchScope, Position,
    PositionalConstraint,
};
use crate::rate::RateTable;
use crate::transform::{TransformKind, apply_chain};

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

/// A group rule's own name: its full name is `<web ACL rule>/<group rule>`
/// (WAF names cannot hold `/`).
fn short_name(name: &Arc<str>) -> Arc<str> {
    match name.split_once('/') {
        Some((_, short)) => Arc::from(short),
        None => name.clone(),
    }
}

struct Extracted<'a> {
    values: Vec<Cow<'a, [u8]>>,
    forced: Option<bool>,
}

/// The keys and the leaf values of a JSON body, in document order; each
/// list made distinct the first time a field that needs it asks.
struct JsonItems<'a> {
    keys: Vec<Cow<'a, [u8]>>,
    values: Vec<Cow<'a, [u8]>>,
    keys_distinct: bool,
    values_distinct: bool,
}

impl<'a> JsonItems<'a> {
    fn read(body: &'a [u8]) -> Option<Self> {
        // At most one key and one value per 4 bytes of a document; about
        // one of each per 16 bytes of a typical one.
        let mut keys = Vec::with_capacity(body.len() / 16);
        let mut values = Vec::with_capacity(body.len() / 16);
        crate::json::scan(body, |is_key, text| {
            if is_key {
                keys.push(text);
            } else {
                values.push(text);
            }
        })?;
        Some(Self {
            keys,
            values,
            keys_distinct: false,
            values_distinct: false,
        })
    }

    fn keys(&mut self, dedupe: bool) -> &[Cow<'a, [u8]>] {
        if dedupe && !self.keys_distinct {
            self.keys = distinct(std::mem::take(&mut self.keys));
            self.keys_distinct = true;
        }
        &self.keys
    }

    fn values(&mut self, dedupe: bool) -> &[Cow<'a, [u8]>] {
        if dedupe && !self.values_distinct {
            self.values = distinct(std::mem::take(&mut self.values));
            self.values_distinct = true;
        }
        &self.values
    }
}

struct Ctx<'a, 'e> {
    req: RequestView<'a>,
    env: &'e Env,
    fields: Vec<Option<Extracted<'a>>>,
    /// Per input, the transformed value of each field value, `None` where
    /// the chain left it unchanged; empty when it changed none.
    inputs: Vec<Option<Vec<Option<Vec<u8>>>>>,
    json: Option<Option<Value>>,
    /// The body's JSON keys and leaf values, each list distinct, read once
    /// for every `JsonBody` field with `MatchPattern: All`.
    json_items: Option<Option<JsonItems<'a>>>,
    labels: Vec<String>,
    client_ip: Option<Option<IpAddr>>,
}

impl<'a> Ctx<'a, '_> {
    fn add_label(&mut self, label: &str) {
        if !self.labels.iter().any(|l| l == label) {
            self.labels.push(label.to_owned());
        }
    }

    fn client_ip(&mut self) -> Option<IpAddr> {
        *self.client_ip.get_or_insert_with(|| {
            self.env
                .resolver
                .resolve_parts(self.req.headers, self.req.extensions)
        })
    }
}

impl CompiledAcl {
    pub(crate) fn evaluate(&self, req: RequestView<'_>, env: &Env) -> WafOutcome {
        let mut ctx = Ctx {
            req,
            env,
            fields: (0..self.fields.len()).map(|_| None).collect(),
            inputs: (0..self.inputs.len()).map(|_| None).collect(),
            json: None,
            json_items: None,
            labels: Vec::new(),
            client_ip: None,
        };
        let mut matched: Vec<Arc<str>> = Vec::new();
        let mut rule_groups: Vec<RuleGroupMatch> = Vec::new();
        let mut insert_headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for rule in &self.rules {
            let terminal = match &rule.body {
                RuleBody::Plain { stmt, action } => {
                    if self.eval(stmt, &mut ctx) {
                        for label in &rule.labels {
                            ctx.add_label(label);
                        }
                        matched.push(rule.name.clone());
                        take_action(action, &rule.name, &mut insert_headers)
                    } else {
                        None
                    }
                }
                RuleBody::Group(group) => {
                    if let Some(scope) = &group.scope_down
                        && !self.eval(scope, &mut ctx)
                    {
                        continue;
                    }
                    let mut terminal = None;
                    let mut any = false;
                    let first = matched.len();
                    for inner in &group.rules {
                        let RuleBody::Plain { stmt, action } = &inner.body else {
                            continue;
                        };
                        if self.eval(stmt, &mut ctx) {
                            any = true;
                            for label in &inner.labels {
                                ctx.add_label(label);
                            }
                            matched.push(inner.name.clone());
                            terminal = take_action(action, &inner.name, &mut insert_headers);
                            if terminal.is_some() {
                                break;
                            }
                        }
                    }
                    if any {
                        for label in &rule.labels {
                            ctx.add_label(label);
                        }
                        let mut non_terminating: Vec<Arc<str>> =
                            matched[first..].iter().map(short_name).collect();
                        let terminating_rule = if terminal.is_some() {
                            non_terminating.pop()
                        } else {
                            None
                        };
                        rule_groups.push(RuleGroupMatch {
                            group_id: group.id.clone(),
                            web_acl_rule: rule.name.clone(),
                            terminating_rule,
                            non_terminating_rules: non_terminating,
                        });
                    }
                    terminal
                }
            };
            if let Some((action, name, block)) = terminal {
                return WafOutcome {
                    action,
                    terminating_rule: Some(name),
                    matched_rules: matched,
                    rule_groups,
                    labels: ctx.labels,
                    block,
                    insert_headers,
                };
            }
        }
        let (action, block) = match &self.default {
            Action::Allow(headers) | Action::Count(headers) => {
                insert_headers.extend(headers.iter().cloned());
                (WafAction::Allow, None)
            }
            Action::Block(block) => (WafAction::Block, block.clone()),
        };
        WafOutcome {
            action,
            terminating_rule: None,
            matched_rules: matched,
            rule_groups,
            labels: ctx.labels,
            block,
            insert_headers,
        }
    }

    fn eval(&self, stmt: &Stmt, ctx: &mut Ctx<'_, '_>) -> bool {
        match stmt {
            Stmt::Byte {
                input,
                needle,
                position,
                finder,
            } => self.test(*input, ctx, |v| byte_match(v, needle, *position, finder)),
            Stmt::Regex { input, re } => self.test(*input, ctx, |v| re.is_match(v)),
            Stmt::RegexSet { input, matcher } => self.test(*input, ctx, |v| match matcher {
                SetMatcher::Literals(ac) => ac.is_match(v),
                SetMatcher::Regexes(set) => set.is_match(v),
            }),
            Stmt::Sqli { input, high } => self.test(*input, ctx, |v| detect::is_sqli(v, *high)),
            Stmt::Xss { input } => self.test(*input, ctx, detect::is_xss),
            Stmt::Size { input, op, size } => self.test(*input, ctx, |v| {
                let len = v.len() as u64;
                match op {
                    ComparisonOperator::Eq => len == *size,
                    ComparisonOperator::Ne => len != *size,
                    ComparisonOperator::Le => len <= *size,
                    ComparisonOperator::Lt => len < *size,
                    ComparisonOperator::Ge => len >= *size,
                    ComparisonOperator::Gt => len > *size,
                }
            }),
            Stmt::Ip { set, forwarded } => match forwarded {
                None => ctx.client_ip().is_some_and(|ip| set.contains(ip)),
                Some(f) => match forwarded_ips(ctx.req.headers, f) {
                    Some(ips) if !ips.is_empty() => ips.iter().any(|ip| set.contains(*ip)),
                    _ => f.fallback_match,
                },
            },
            Stmt::Geo { codes, forwarded } => {
                let (country, namespace) = match forwarded {
                    Some(f) => match forwarded_ips(ctx.req.headers, f)
                        .and_then(|ips| ips.first().copied())
                    {
                        Some(ip) => (geo_country(ctx, Some(ip)), "forwardedip"),
                        None => return f.fallback_match,
                    },
                    None => {
                        let ip = ctx.client_ip();
                        (geo_country(ctx, ip), "clientip")
                    }
                };
                match country {
                    Some(code) => {
                        let cc = String::from_utf8_lossy(&code).into_owned();
                        ctx.add_label(&format!("awswaf:{namespace}:geo:country:{cc}"));
                        codes.contains(&code)
                    }
                    None => false,
                }
            }
            Stmt::Label { scope, key } => ctx
                .labels
                .iter()
                .any(|label| label_matches(label, *scope, key)),
            Stmt::Rate(rate) => self.eval_rate(rate, ctx),
            Stmt::And(list) => list.iter().all(|s| self.eval(s, ctx)),
            Stmt::Or(list) => list.iter().any(|s| self.eval(s, ctx)),
            Stmt::Not(inner) => !self.eval(inner, ctx),
        }
    }

    fn eval_rate(&self, rate: &RateStmt, ctx: &mut Ctx<'_, '_>) -> bool {
        if let Some(scope) = &rate.scope_down
            && !self.eval(scope, ctx)
        {
            return false;
        }
        let key: Vec<u8> = match &rate.key {
            RateKey::Constant => Vec::new(),
            RateKey::Ip => match ctx.client_ip() {
                Some(ip) => ip_key(ip),
                None => return false,
            },
            RateKey::Forwarded(f) => {
                match forwarded_ips(ctx.req.headers, f).and_then(|ips| ips.first().copied()) {
                    Some(ip) => ip_key(ip),
                    None => return f.fallback_match,
                }
            }
            RateKey::Custom(parts) => {
                let mut key = Vec::new();
                for part in parts.iter() {
                    let Some(value) = key_part(part, ctx) else {
                        // AWS does not count a request that lacks a key.
                        return false;
                    };
                    key.extend_from_slice(&(value.len() as u64).to_be_bytes());
                    key.extend_from_slice(&value);
                }
                key
            }
        };
        let now = ctx.env.clock.now_unix_seconds();
        rate.table.hit(&key, now, rate.window) > rate.limit
    }

    /// Whether `pred` holds for some value of the input, honouring oversize
    /// handling and JSON fallbacks.
    fn test(&self, input: usize, ctx: &mut Ctx<'_, '_>, pred: impl Fn(&[u8]) -> bool) -> bool {
        let (field_id, chain) = &self.inputs[input];
        let field_id = *field_id;
        if ctx.fields[field_id].is_none() {
            let extracted = extract(&self.fields[field_id], self.dedupe[field_id], ctx);
            ctx.fields[field_id] = Some(extracted);
        }
        let Some(field) = &ctx.fields[field_id] else {
            return false;
        };
        if let Some(forced) = field.forced {
            return forced;
        }
        if chain.is_empty() {
            return field.values.iter().any(|v| pred(v));
        }
        let transformed = ctx.inputs[input].get_or_insert_with(|| {
            // Empty (no allocation) while the chain changes no value, the
            // common case for ordinary requests.
            let mut changed: Vec<Option<Vec<u8>>> = Vec::new();
            for (i, value) in field.values.iter().enumerate() {
                if let Cow::Owned(out) = apply_chain(chain, value) {
                    if changed.is_empty() {
                        changed.resize(field.values.len(), None);
                    }
                    changed[i] = Some(out);
                }
            }
            changed
        });
        field.values.iter().enumerate().any(|(i, value)| {
            pred(
                transformed
                    .get(i)
                    .and_then(Option::as_deref)
                    .unwrap_or(value),
            )
        })
    }
}

/// An address as a rate key: its bytes, with no formatting.
fn ip_key(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn take_action(
    action: &Action,
    name: &Arc<str>,
    insert_headers: &mut Vec<(HeaderName, HeaderValue)>,
) -> Option<(WafAction, Arc<str>, Option<Arc<BlockResponse>>)> {
    match action {
        Action::Count(headers) => {
            insert_headers.extend(headers.iter().cloned());
            None
        }
        Action::Allow(headers) => {
            insert_headers.extend(headers.iter().cloned());
            Some((WafAction::Allow, name.clone(), None))
        }
        Action::Block(block) => Some((WafAction::Block, name.clone(), block.clone())),
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn byte_match(
    hay: &[u8],
    needle: &[u8],
    position: PositionalConstraint,
    finder: &AhoCorasick,
) -> bool {
    match position {
        PositionalConstraint::Exactly => hay == needle,
        PositionalConstraint::StartsWith => hay.starts_with(needle),
        PositionalConstraint::EndsWith => hay.ends_with(needle),
        PositionalConstraint::Contains => finder.is_match(hay),
        PositionalConstraint::ContainsWord => {
            let mut start = 0;
            while start <= hay.len() {
                let Some(m) = finder.find(Input::new(hay).span(start..hay.len())) else {
                    return false;
                };
                let before_ok = m.start() == 0 || !is_word(hay[m.start() - 1]);
                let after_ok = m.end() == hay.len() || !is_word(hay[m.end()]);
                if before_ok && after_ok {
                    return true;
                }
                start = m.start() + 1;
            }
            false
        }
    }
}

/// Label matching as AWS describes it: a `LABEL` key is the label's name with
/// any number of its namespaces before it, up to the fully qualified label; a
/// `NAMESPACE` key is a run of whole namespaces (with or without the final
/// `:`) that ends the label's namespace or starts it.
fn label_matches(label: &str, scope: LabelScope, key: &str) -> bool {
    match scope {
        LabelScope::Label => {
            label == key
                || (label.len() > key.len()
                    && label.ends_with(key)
                    && label.as_bytes()[label.len() - key.len() - 1] == b':')
        }
        LabelScope::Namespace => {
            let key = key.strip_suffix(':').unwrap_or(key);
            let Some((namespace, _name)) = label.rsplit_once(':') else {
                return false;
            };
            let ends = namespace == key
                || (namespace.ends_with(key)
                    && namespace.len() > key.len()
                    && namespace.as_bytes()[namespace.len() - key.len() - 1] == b':');
            let starts = namespace
                .strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'));
            ends || starts
        }
    }
}

/// The addresses of a forwarding header at the configured position, or `None`
/// when the header is missing or the chosen entry is not an address.
fn forwarded_ips(headers: &HeaderMap, f: &Forwarded) -> Option<Vec<IpAddr>> {
    let value = headers.get(&f.header)?.to_str().ok()?;
    let mut entries = value.split(',').map(str::trim).filter(|e| !e.is_empty());
    match f.position {
        Position::First => Some(vec![parse_ip_with_port(entries.next()?)?]),
        Position::Last => Some(vec![parse_ip_with_port(entries.next_back()?)?]),
        Position::Any => {
            let ips: Vec<IpAddr> = entries
                .take(FORWARDED_ANY_LIMIT)
                .filter_map(parse_ip_with_port)
                .collect();
            (!ips.is_empty()).then_some(ips)
        }
    }
}

fn geo_country(ctx: &Ctx<'_, '_>, ip: Option<IpAddr>) -> Option<[u8; 2]> {
    if let (Some(lookup), Some(ip)) = (&ctx.env.geo_lookup, ip) {
        return lookup.country(ip);
    }
    let header = ctx.env.geo_header.as_ref()?;
    let value = ctx.req.headers.get(header)?.as_bytes();
    (value.len() == 2 && value.iter().all(u8::is_ascii_alphabetic))
        .then(|| [value[0].to_ascii_uppercase(), value[1].to_ascii_uppercase()])
}

fn key_part(part: &KeyPart, ctx: &mut Ctx<'_, '_>) -> Option<Vec<u8>> {
    let req = ctx.req;
    let transformed = |chain: &[TransformKind], v: &[u8]| apply_chain(chain, v).into_owned();
    match part {
        KeyPart::Header(name, chain) => Some(transformed(chain, req.headers.get(name)?.as_bytes())),
        KeyPart::Cookie(name, chain) => {
            let value = cookies(req.headers).find(|(k, _)| *k == name.as_bytes())?.1;
            Some(transformed(chain, value))
        }
        KeyPart::QueryArgument(name, chain) => {
            let value = query_args(req.uri)
                .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))?
                .1;
            Some(transformed(chain, value))
        }
        KeyPart::QueryString(chain) => Some(transformed(chain, req.uri.query()?.as_bytes())),
        KeyPart::UriPath(chain) => Some(transformed(chain, req.uri.path().as_bytes())),
        KeyPart::Method => Some(req.method.as_str().as_bytes().to_vec()),
        KeyPart::Ip => Some(ctx.client_ip()?.to_string().into_bytes()),
        KeyPart::ForwardedIp(f) => Some(
            forwarded_ips(req.headers, f)?
                .first()?
                .to_string()
                .into_bytes(),
        ),
        KeyPart::LabelNamespace(ns) => {
            let mut found: Vec<&str> = ctx
                .labels
                .iter()
                .filter(|l| label_matches(l, LabelScope::Namespace, ns))
                .map(String::as_str)
                .collect();
            if found.is_empty() {
                return None;
            }
            found.sort_unstable();
            Some(found.join("\n").into_bytes())
        }
    }
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(trim_ascii)
        .filter(|c| !c.is_empty())
        .map(|c| match c.iter().position(|&b| b == b'=') {
            Some(i) => (&c[..i], &c[i + 1..]),
            None => (c, &c[c.len()..]),
        })
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

fn query_args(uri: &Uri) -> impl Iterator<Item = (&[u8], &[u8])> {
    uri.query()
        .unwrap_or("")
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|a| !a.is_empty())
        .map(|a| match a.iter().position(|&b| b == b'=') {
            Some(i) => (&a[..i], &a[i + 1..]),
            None => (a, &a[a.len()..]),
        })
}

fn oversize_forced(oversize: Oversize) -> Option<bool> {
    match oversize {
        Oversize::Continue => None,
        Oversize::Match => Some(true),
        Oversize::NoMatch => Some(false),
    }
}

fn push_scoped<'a>(
    values: &mut Vec<Cow<'a, [u8]>>,
    scope: MatchScope,
    key: &'a [u8],
    value: &'a [u8],
) {
    if scope != MatchScope::Value {
        values.push(Cow::Borrowed(key));
    }
    if scope != MatchScope::Key {
        values.push(Cow::Borrowed(value));
    }
}

/// Multi-valued fields often repeat values (JSON arrays of similar objects);
/// testing each distinct value once gives the same answer for less. The first
/// of equal values stays, in order; equality is on the bytes (the hash only
/// finds candidates, so a collision never hides a value). The table is a
/// randomly seeded open-addressing table of indices into the kept values,
/// sized once: no per-value allocation, and no crafted set of values can
/// make probing quadratic across processes.
fn distinct(mut values: Vec<Cow<'_, [u8]>>) -> Vec<Cow<'_, [u8]>> {
    let n = values.len();
    if n <= 1 {
        return values;
    }
    if n <= 8 {
        // A few values: comparing each with those kept is cheaper than hashing.
        let mut kept = 0;
        for i in 0..n {
            if !values[..kept].iter().any(|k| **k == *values[i]) {
                values.swap(kept, i);
                kept += 1;
            }
        }
        values.truncate(kept);
        return values;
    }
    let slots = (2 * n).next_power_of_two();
    // 0 is an empty slot, otherwise the kept value's index plus one. Up to
    // 128 values (most requests) the table lives on the stack.
    let mut small = [0u32; 256];
    let mut large = Vec::new();
    let table: &mut [u32] = if slots <= small.len() {
        &mut small[..slots]
    } else {
        large.resize(slots, 0);
        &mut large
    };
    let mask = slots - 1;
    let state = foldhash::fast::RandomState::default();
    let mut kept = 0;
    for i in 0..n {
        let mut slot = state.hash_one(&*values[i]) as usize & mask;
        let fresh = loop {
            match table[slot] as usize {
                0 => break true,
                k if *values[k - 1] == *values[i] => break false,
                _ => slot = (slot + 1) & mask,
            }
        };
        if fresh {
            values.swap(kept, i);
            kept += 1;
            // `kept <= n`, which fits `u32`: a body past 4 GB is never
            // inspected (the limit is at most 64 KB).
            table[slot] = kept as u32;
        }
    }
    values.truncate(kept);
    values
}

fn extract<'a>(field: &Field, dedupe: bool, ctx: &mut Ctx<'a, '_>) -> Extracted<'a> {
    let mut extracted = extract_all(field, dedupe, ctx);
    let multi_valued = match field {
        Field::Headers { .. } | Field::Cookies { .. } | Field::AllQueryArguments => true,
        // `MatchPattern: All` with scope KEY or VALUE takes a list that
        // `extract_all` made distinct.
        Field::JsonBody {
            paths: None,
            scope: MatchScope::Key | MatchScope::Value,
            ..
        } => false,
        Field::JsonBody { .. } => true,
        _ => false,
    };
    if dedupe && multi_valued {
        extracted.values = distinct(extracted.values);
    }
    extracted
}

/// Which fields are worth deduplicating: those that some input tests with a
/// transformation chain, a regular expression, a pattern set or the SQLi or
/// XSS detector. A field only byte- or size-matched untransformed (a JSON
/// key compared with `__proto__`) costs less to test twice than to hash.
pub(crate) fn dedupe_fields(
    rules: &[Rule],
    inputs: &[(usize, Box<[TransformKind]>)],
    field_count: usize,
) -> Vec<bool> {
    fn visit(stmt: &Stmt, inputs: &[(usize, Box<[TransformKind]>)], out: &mut [bool]) {
        let (input, costly) = match stmt {
            Stmt::Byte { input, .. } | Stmt::Size { input, .. } => (*input, false),
            Stmt::Regex { input, .. }
            | Stmt::RegexSet { input, .. }
            | Stmt::Sqli { input, .. }
            | Stmt::Xss { input } => (*input, true),
            Stmt::Rate(rate) => {
                if let Some(scope) = &rate.scope_down {
                    visit(scope, inputs, out);
                }
                return;
            }
            Stmt::And(list) | Stmt::Or(list) => {
                list.iter().for_each(|s| visit(s, inputs, out));
                return;
            }
            Stmt::Not(inner) => return visit(inner, inputs, out),
            Stmt::Geo { .. } | Stmt::Ip { .. } | Stmt::Label { .. } => return,
        };
        if let Some((field, chain)) = inputs.get(input)
            && let Some(flag) = out.get_mut(*field)
        {
            *flag |= costly || !chain.is_empty();
        }
    }
    let mut out = vec![false; field_count];
    for rule in rules {
        match &rule.body {
            RuleBody::Plain { stmt, .. } => visit(stmt, inputs, &mut out),
            RuleBody::Group(group) => {
                if let Some(scope) = &group.scope_down {
                    visit(scope, inputs, &mut out);
                }
                for inner in &group.rules {
                    if let RuleBody::Plain { stmt, .. } = &inner.body {
                        visit(stmt, inputs, &mut out);
                    }
                }
            }
        }
    }
    out
}

fn extract_all<'a>(field: &Field, dedupe: bool, ctx: &mut Ctx<'a, '_>) -> Extracted<'a> {
    let req = ctx.req;
    let plain = |values: Vec<Cow<'a, [u8]>>| Extracted {
        values,
        forced: None,
    };
    match field {
        Field::SingleHeader(name) => plain(
            req.headers
                .get_all(name)
                .iter()
                .map(|v| Cow::Borrowed(v.as_bytes()))
                .collect(),
        ),
        Field::Headers {
            pattern,
            scope,
            oversize,
        } => {
            let mut values = Vec::new();
            let (mut bytes, mut count, mut over) = (0usize, 0usize, false);
            for (name, value) in req.headers {
                bytes += name.as_str().len() + value.len() + 4;
                count += 1;
                if bytes > HEADERS_LIMIT_BYTES || count > HEADERS_LIMIT_COUNT {
                    over = true;
                    break;
                }
                if pattern.admits(name.as_str()) {
                    push_scoped(
                        &mut values,
                        *scope,
                        name.as_str().as_bytes(),
                        value.as_bytes(),
                    );
                }
            }
            let forced = if over {
                oversize_forced(*oversize)
            } else {
                None
            };
            Extracted { values, forced }
        }
        Field::Cookies {
            pattern,
            scope,
            oversize,
        } => {
            let mut values = Vec::new();
            let (mut bytes, mut count, mut over) = (0usize, 0usize, false);
            for (name, value) in cookies(req.headers) {
                bytes += name.len() + value.len() + 2;
                count += 1;
                if bytes > HEADERS_LIMIT_BYTES || count > HEADERS_LIMIT_COUNT {
                    over = true;
                    break;
                }
                if pattern.admits(&String::from_utf8_lossy(name)) {
                    push_scoped(&mut values, *scope, name, value);
                }
            }
            let forced = if over {
                oversize_forced(*oversize)
            } else {
                None
            };
            Extracted { values, forced }
        }
        Field::SingleQueryArgument(name) => plain(
            query_args(req.uri)
                .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| Cow::Borrowed(v))
                .collect(),
        ),
        Field::AllQueryArguments => {
            plain(query_args(req.uri).map(|(_, v)| Cow::Borrowed(v)).collect())
        }
        Field::UriPath => plain(vec![Cow::Borrowed(req.uri.path().as_bytes())]),
        Field::QueryString => plain(vec![Cow::Borrowed(
            req.uri.query().unwrap_or("").as_bytes(),
        )]),
        Field::Method => plain(vec![Cow::Borrowed(req.method.as_str().as_bytes())]),
        Field::Body { oversize } => Extracted {
            values: vec![Cow::Borrowed(req.body)],
            forced: if req.body_oversize {
                oversize_forced(*oversize)
            } else {
                None
            },
        },
        Field::JsonBody {
            paths,
            scope,
            invalid,
            oversize,
        } => {
            if req.body_oversize
                && let Some(forced) = oversize_forced(*oversize)
            {
                return Extracted {
                    values: Vec::new(),
                    forced: Some(forced),
                };
            }
            if req.body.iter().all(u8::is_ascii_whitespace) {
                // Nothing to inspect: an empty body is not invalid JSON.
                return plain(Vec::new());
            }
            let parsed = match paths {
                None => ctx
                    .json_items
                    .get_or_insert_with(|| JsonItems::read(req.body))
                    .as_mut()
                    .map(|items| match scope {
                        MatchScope::Key => items.keys(dedupe).to_vec(),
                        MatchScope::Value => items.values(dedupe).to_vec(),
                        MatchScope::All => {
                            let mut all = Vec::with_capacity(items.keys.len() + items.values.len());
                            all.extend(items.keys.iter().cloned());
                            all.extend(items.values.iter().cloned());
                            all
                        }
                    }),
                Some(paths) => ctx
                    .json
                    .get_or_insert_with(|| serde_json::from_slice::<Value>(req.body).ok())
                    .as_ref()
                    .map(|doc| {
                        let mut values = Vec::new();
                        for p in paths.iter() {
                            if let Some(v) = doc.pointer(p) {
                                walk_json(v, *scope, &mut values);
                            }
                        }
                        values
                    }),
            };
            match parsed {
                Some(values) => plain(values),
                None => match invalid {
                    Some(InvalidFallbackBehavior::Match) => Extracted {
                        values: Vec::new(),
                        forced: Some(true),
                    },
                    Some(InvalidFallbackBehavior::NoMatch) => Extracted {
                        values: Vec::new(),
                        forced: Some(false),
                    },
                    Some(InvalidFallbackBehavior::EvaluateAsString) | None => {
                        plain(vec![Cow::Borrowed(req.body)])
                    }
                },
            }
        }
    }
}

fn walk_json(value: &Value, scope: MatchScope, out: &mut Vec<Cow<'static, [u8]>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if scope != MatchScope::Value {
                    out.push(Cow::Owned(k.as_bytes().to_vec()));
                }
                walk_json(v, scope, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk_json(v, scope, out)),
        leaf => {
            if scope != MatchScope::Key {
                let text = match leaf {
                    Value::String(s) => s.as_bytes().to_vec(),
                    other => other.to_string().into_bytes(),
                };
                out.push(Cow::Owned(text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_match_as_aws_describes() {
        let label = "awswaf:111122223333:webacl:acl:ns1:ns2:name";
        assert!(label_matches(label, LabelScope::Label, label));
        assert!(label_matches(label, LabelScope::Label, "name"));
        assert!(label_matches(label, LabelScope::Label, "ns2:name"));
        assert!(!label_matches(label, LabelScope::Label, "ame"));
        assert!(label_matches(label, LabelScope::Namespace, "ns1:ns2:"));
        assert!(label_matches(
            label,
            LabelScope::Namespace,
            "awswaf:111122223333:webacl:acl:ns1:"
        ));
        assert!(!label_matches(label, LabelScope::Namespace, "s2:"));
        assert!(!label_matches(label, LabelScope::Namespace, "name"));
    }

    #[test]
    fn contains_word_needs_word_boundaries() {
        let f = AhoCorasick::new(["bot"]).unwrap();
        let m = |h: &str| byte_match(h.as_bytes(), b"bot", PositionalConstraint::ContainsWord, &f);
        assert!(m("bot"));
        assert!(m("a;bot;b"));
        assert!(m("robot bot"));
        assert!(!m("robot"));
        assert!(!m("bots"));
        assert!(!m("bot_x"));
    }
}
