//! Running the compiled rules on a request.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, Input};
use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_core::client_ip::parse_ip_with_port;
use portcullis_core::clock::Clock;

use super::fields::{Ctx, cookies, extract, query_args};
use super::{
    Action, BlockResponse, CompiledAcl, Env, FORWARDED_ANY_LIMIT, Forwarded, KeyPart, RateKey,
    RateStmt, RequestView, RuleBody, RuleGroupMatch, SetMatcher, Stmt, WafAction, WafOutcome,
};
use crate::detect;
use crate::model::{ComparisonOperator, LabelScope, Position, PositionalConstraint};
use crate::transform::{TransformKind, apply_chain};

/// A group rule's own name: its full name is `<web ACL rule>/<group rule>`
/// (WAF names cannot hold `/`).
fn short_name(name: &Arc<str>) -> Arc<str> {
    match name.split_once('/') {
        Some((_, short)) => Arc::from(short),
        None => name.clone(),
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
        let mut ip_bytes = [0u8; 16];
        let key: Cow<'_, [u8]> = match &rate.key {
            RateKey::Constant => Cow::Borrowed(&[]),
            RateKey::Ip => match ctx.client_ip() {
                Some(ip) => Cow::Borrowed(ip_key(ip, &mut ip_bytes)),
                None => return false,
            },
            RateKey::Forwarded(f) => {
                match forwarded_ips(ctx.req.headers, f).and_then(|ips| ips.first().copied()) {
                    Some(ip) => Cow::Borrowed(ip_key(ip, &mut ip_bytes)),
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
                Cow::Owned(key)
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
        let triggers = self.triggers[input].as_ref();
        let transformed = ctx.inputs[input].get_or_insert_with(|| {
            // Empty (no allocation) while the chain changes no value, the
            // common case for ordinary requests.
            let mut changed: Vec<Option<Vec<u8>>> = Vec::new();
            for (i, value) in field.values.iter().enumerate() {
                if triggers.is_some_and(|t| t.leave_unchanged(value)) {
                    continue;
                }
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

/// An address as a rate key: its bytes, with no formatting, written to
/// `buf` (no allocation per request).
fn ip_key(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            &buf[..4]
        }
        IpAddr::V6(v6) => {
            *buf = v6.octets();
            &buf[..]
        }
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
