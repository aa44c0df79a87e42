//! Compiling statements, regex and IP sets, and rate-based rules.

use std::sync::Arc;

use aho_corasick::AhoCorasick;
use http::HeaderName;

use crate::engine::{Forwarded, KeyPart, RateKey, RateStmt, SetMatcher, Stmt};

use crate::ipset::IpRanges;
use crate::model::{self, Statement};
use crate::rate::RateTable;

use super::compiler::{Compiler, Res, join};

impl Compiler<'_> {
    /// Checks that a statement sets exactly one statement type.
    pub(super) fn only_statement(&self, s: &Statement, path: &str) -> Res<()> {
        if let Some(key) = s.other.keys().next() {
            let message = if key == "AsnMatchStatement" {
                "AsnMatchStatement is not supported: it needs AWS's ASN database".to_owned()
            } else {
                format!("`{key}` is not a statement type this engine supports")
            };
            return Err(self.err(&join(path, key), message));
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
                format!("a statement must set exactly one statement type, this one sets {set}"),
            ));
        }
        Ok(())
    }

    pub(super) fn statement(&mut self, s: &Statement, path: &str, nested: bool) -> Res<Stmt> {
        self.only_statement(s, path)?;
        if s.managed_rule_group_statement.is_some() {
            return Err(self.err(
                &join(path, "ManagedRuleGroupStatement"),
                "ManagedRuleGroupStatement can only be a rule's top-level statement",
            ));
        }
        if s.rule_group_reference_statement.is_some() {
            return Err(self.err(
                &join(path, "RuleGroupReferenceStatement"),
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
                                format!("not base64: {e}"),
                            )
                        })?
                }
                _ => {
                    return Err(self.err(
                        &path,
                        "set exactly one of SearchString or SearchStringBase64",
                    ));
                }
            };
            if needle.is_empty() || needle.len() > 200 {
                return Err(self.err(
                    &join(&path, "SearchString"),
                    format!("SearchString must be 1 to 200 bytes, not {}", needle.len()),
                ));
            }
            let input = self.input(&b.field_to_match, &b.text_transformations, &path)?;
            let finder = AhoCorasick::new([&needle])
                .map_err(|e| self.err(&join(&path, "SearchString"), e.to_string()))?;
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
                    format!(
                        "no regex pattern set with ARN `{}` was supplied (AclSources::with_regex_pattern_set_json)",
                        r.arn
                    ),
                ));
            };
            let matcher = self.regex_set(set, &path)?;
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
                        format!("`{code}` is not an ISO 3166 alpha-2 country code"),
                    ));
                }
                codes.push([bytes[0], bytes[1]]);
            }
            if codes.is_empty() {
                return Err(self.err(&join(&path, "CountryCodes"), "CountryCodes is empty"));
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
            let set = self.ip_set(&ip.arn, &path)?;
            let forwarded = ip
                .ip_set_forwarded_ip_config
                .as_ref()
                .map(|f| self.forwarded(f, &join(&path, "IPSetForwardedIPConfig")))
                .transpose()?;
            return Ok(Stmt::Ip { set, forwarded });
        }
        if let Some(l) = &s.label_match_statement {
            if l.key.is_empty() {
                return Err(self.err(&join(path, "LabelMatchStatement.Key"), "empty label key"));
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
        Err(self.err(path, "empty statement"))
    }

    fn statements(&mut self, list: &[Statement], path: &str) -> Res<Box<[Stmt]>> {
        if list.is_empty() {
            return Err(self.err(&join(path, "Statements"), "Statements is empty"));
        }
        list.iter()
            .enumerate()
            .map(|(i, s)| self.statement(s, &join(path, &format!("Statements[{i}]")), true))
            .collect()
    }

    fn regex(&self, pattern: &str, path: &str) -> Res<regex::bytes::Regex> {
        if pattern.chars().count() > 512 {
            return Err(self.err(path, "RegexString is longer than 512 characters"));
        }
        regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .or_else(|_| regex::bytes::Regex::new(pattern))
            .map_err(|e| {
                self.err(
                    path,
                    format!("the regex crate cannot compile this expression (no look-around or back-references): {e}"),
                )
            })
    }

    /// Compiles a regex pattern set that the statement at `path` refers to:
    /// a fault in the set is named by `path` and the path inside the set.
    fn regex_set(&mut self, set: &model::RegexPatternSet, path: &str) -> Res<SetMatcher> {
        let list = join(path, "RegularExpressionList");
        let patterns: Vec<&str> = set
            .regular_expression_list
            .iter()
            .map(|r| r.regex_string.as_str())
            .collect();
        if patterns.is_empty() {
            return Err(self.err(&list, "the set has no expressions"));
        }
        for (i, p) in patterns.iter().enumerate() {
            // Each expression must compile on its own, to name the bad one.
            self.regex(p, &format!("{list}[{i}].RegexString"))?;
        }
        let literal = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_alphanumeric() || " _-/:,@%".contains(c))
        };
        if patterns.iter().all(literal) {
            // Plain strings: one Aho-Corasick automaton beats a regex set.
            let ac = AhoCorasick::new(&patterns).map_err(|e| self.err(&list, e.to_string()))?;
            return Ok(SetMatcher::Literals(ac));
        }
        regex::bytes::RegexSetBuilder::new(&patterns)
            .unicode(false)
            .build()
            .or_else(|_| regex::bytes::RegexSet::new(&patterns))
            .map(SetMatcher::Regexes)
            .map_err(|e| self.err(&list, e.to_string()))
    }

    /// Compiles the IP set that the statement at `path` refers to: a fault
    /// in the set is named by `path` and the path inside the set.
    fn ip_set(&mut self, arn: &str, path: &str) -> Res<Arc<IpRanges>> {
        if let Some(set) = self.ip_sets.get(arn) {
            return Ok(set.clone());
        }
        let Some(set) = self.sources.ip_sets.get(arn) else {
            return Err(self.err(
                &join(path, "ARN"),
                format!("no IP set with ARN `{arn}` was supplied (AclSources::with_ip_set_json)"),
            ));
        };
        let ranges = IpRanges::from_cidrs(&set.addresses).map_err(|bad| {
            self.err(
                &join(path, &format!("Addresses[{}]", bad.index)),
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
                format!("Limit must be 10 to 2,000,000,000, not {}", r.limit),
            ));
        }
        let window = r.evaluation_window_sec.unwrap_or(300);
        if ![60, 120, 300, 600].contains(&window) {
            return Err(self.err(
                &join(path, "EvaluationWindowSec"),
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
                        "AggregateKeyType FORWARDED_IP needs a ForwardedIPConfig",
                    ));
                }
            },
            model::AggregateKeyType::CustomKeys => {
                if r.custom_keys.is_empty() || r.custom_keys.len() > 5 {
                    return Err(self.err(
                        &join(path, "CustomKeys"),
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
                format!("custom key `{other}` is not supported"),
            ));
        }
        let chain =
            |this: &Self, tts: &[model::TextTransformation], p: &str| this.chain(tts, p, true);
        let part = if let Some(h) = &k.header {
            let name = HeaderName::try_from(h.name.as_str())
                .map_err(|_| self.err(&join(path, "Header.Name"), "not a valid header name"))?;
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
                        "a ForwardedIP key needs the statement's ForwardedIPConfig",
                    ));
                }
            }
        } else if let Some(ns) = &k.label_namespace {
            KeyPart::LabelNamespace(ns.namespace.clone())
        } else {
            return Err(self.err(path, "an empty custom key"));
        };
        Ok(part)
    }
}
