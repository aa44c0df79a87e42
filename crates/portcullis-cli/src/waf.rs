//! `portcullis waf eval` and `portcullis waf check`.

use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::HeaderName;
use portcullis_core::client_ip::PeerAddr;
use portcullis_waf::model::RuleGroup;
use portcullis_waf::{AclSources, LoadError, WafLayer, WafOutcome};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::raw::RawRequest;
use crate::{Failure, Report};

/// The header the CLI sets to pass `--country` to the engine's geo match.
pub const COUNTRY_HEADER: &str = "x-portcullis-cli-country";

/// The documents of a web ACL, as read from files.
#[derive(Clone, Debug, Default)]
pub struct AclFiles {
    /// The web ACL (`aws wafv2 get-web-acl` output, with or without the
    /// `WebACL` wrapper).
    pub web_acl: String,
    /// IP sets: each file one document or a JSON array of documents.
    pub ip_sets: Vec<String>,
    /// Regex pattern sets, likewise.
    pub regex_sets: Vec<String>,
    /// Rule groups, likewise.
    pub rule_groups: Vec<String>,
}

/// The field a serde "missing field `X`" message names.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(field, _)| field)
}

/// A load error as JSON, with its JSON path. A missing field's path is the
/// field's own (`Rules[0].VisibilityConfig`), not its parent's, and
/// `missing_field` names it.
fn load_failure(error: &LoadError) -> Failure {
    let Some(config) = error.as_config() else {
        // Not JSON, or a file that cannot be read: no path.
        return Failure::new("load_error", error.to_string()).with(json!({"path": ""}));
    };
    let (path, message) = (config.path(), config.message());
    let mut extra = json!({ "path": path });
    if let Some(field) = missing_field(message) {
        extra["path"] = json!(if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        });
        extra["missing_field"] = json!(field);
    }
    Failure::new("load_error", message.to_owned()).with(extra)
}

/// Splits a file into documents: a JSON array gives its elements.
fn documents(text: &str, what: &str) -> Result<Vec<String>, Failure> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Failure::new("load_error", format!("{what}: {e}")).with(json!({
            "path": ""
        }))
    })?;
    Ok(match value {
        Value::Array(items) => items.iter().map(Value::to_string).collect(),
        other => vec![other.to_string()],
    })
}

/// Parses and compiles the ACL with its sets and groups.
///
/// # Errors
///
/// The first load error, with its document and JSON path.
pub fn load(files: &AclFiles) -> Result<(AclSources, Vec<RuleGroup>), Failure> {
    let mut sources = AclSources::from_json(&files.web_acl).map_err(|e| load_failure(&e))?;
    let mut groups = Vec::new();
    for text in &files.ip_sets {
        for doc in documents(text, "IP set")? {
            sources = sources
                .with_ip_set_json(&doc)
                .map_err(|e| load_failure(&e))?;
        }
    }
    for text in &files.regex_sets {
        for doc in documents(text, "regex pattern set")? {
            sources = sources
                .with_regex_pattern_set_json(&doc)
                .map_err(|e| load_failure(&e))?;
        }
    }
    for text in &files.rule_groups {
        for doc in documents(text, "rule group")? {
            sources = sources
                .with_rule_group_json(&doc)
                .map_err(|e| load_failure(&e))?;
            let mut value: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
            if let Some(inner) = value.get_mut("RuleGroup") {
                value = inner.take();
            }
            if let Ok(group) = serde_json::from_value::<RuleGroup>(value) {
                groups.push(group);
            }
        }
    }
    Ok((sources, groups))
}

/// One request of a `--requests` file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRequest {
    /// The method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// The request target: path and query.
    pub uri: String,
    /// Headers, as `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    #[serde(default)]
    pub body: String,
    /// The client IP (default: `--client-ip`).
    #[serde(default)]
    pub client_ip: Option<IpAddr>,
}

fn get() -> String {
    "GET".to_owned()
}

impl JsonRequest {
    fn to_http(&self) -> Result<http::Request<Bytes>, String> {
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.uri.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Bytes::from(self.body.clone()))
            .map_err(|e| format!("invalid request: {e}"))
    }
}

/// Evaluates requests against one loaded ACL; the rate-based rules count
/// across every request of the run.
#[derive(Debug)]
pub struct Evaluator {
    layer: WafLayer,
    client_ip: Option<IpAddr>,
    country: Option<String>,
}

impl Evaluator {
    /// Compiles the ACL.
    ///
    /// # Errors
    ///
    /// The load error, with its JSON path.
    pub fn new(
        files: &AclFiles,
        client_ip: Option<IpAddr>,
        country: Option<String>,
    ) -> Result<Self, Failure> {
        let (sources, _groups) = load(files)?;
        let compiled = sources.compile().map_err(|e| load_failure(&e))?;
        let layer = WafLayer::new(compiled).geo_header(HeaderName::from_static(COUNTRY_HEADER));
        Ok(Self {
            layer,
            client_ip,
            country,
        })
    }

    /// Evaluates one request.
    #[must_use]
    pub fn eval(&self, mut request: http::Request<Bytes>, client_ip: Option<IpAddr>) -> Value {
        if let Some(ip) = client_ip.or(self.client_ip) {
            request
                .extensions_mut()
                .insert(PeerAddr(SocketAddr::new(ip, 0)));
        }
        if let Some(country) = &self.country
            && let Ok(value) = http::HeaderValue::from_str(country)
        {
            request.headers_mut().insert(COUNTRY_HEADER, value);
        }
        let outcome = self.layer.evaluate(&request);
        self.render(&outcome)
    }

    fn render(&self, outcome: &WafOutcome) -> Value {
        // The Block action's custom response code, or 403: the layer's own
        // answer, so the CLI can never disagree with what a server sends.
        let (action, status) = match outcome.block_status() {
            Some(status) => ("BLOCK", status.as_u16()),
            None => ("ALLOW", 200),
        };
        // As AWS WAF's logs report rule groups (`ruleGroupList`): the group
        // (`AWS#<name>` for a managed one), the rule that ended evaluation
        // and the rules that only counted, each by its own name.
        let rule_group_list: Vec<Value> = outcome
            .rule_groups()
            .iter()
            .map(|group| {
                json!({
                    "rule_group_id": group.group_id(),
                    "web_acl_rule": group.web_acl_rule(),
                    "terminating_rule": group.terminating_rule().map(|rule| json!({
                        "rule_id": rule,
                        "action": action,
                    })),
                    "non_terminating_matching_rules": group
                        .non_terminating_rules()
                        .map(|rule| json!({"rule_id": rule, "action": "COUNT"}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "action": action,
            "status": status,
            "terminating_rule": outcome.terminating_rule(),
            "matched_rules": outcome.matched_rules().collect::<Vec<_>>(),
            "rule_group_list": rule_group_list,
            "labels": outcome.labels(),
        })
    }

    /// Evaluates one raw HTTP request, or one JSON request object.
    ///
    /// # Errors
    ///
    /// A malformed request.
    pub fn eval_file(&self, bytes: &[u8]) -> Result<Value, Failure> {
        let trimmed = bytes.iter().position(|b| !b.is_ascii_whitespace());
        if trimmed.is_some_and(|i| bytes[i] == b'{') {
            let request: JsonRequest = serde_json::from_slice(bytes)
                .map_err(|e| Failure::new("bad_request", e.to_string()))?;
            let http = request
                .to_http()
                .map_err(|m| Failure::new("bad_request", m))?;
            return Ok(self.eval(http, request.client_ip));
        }
        let raw = RawRequest::parse(bytes).map_err(|m| Failure::new("bad_request", m))?;
        let http = raw.to_http().map_err(|m| Failure::new("bad_request", m))?;
        Ok(self.eval(http, None))
    }

    /// Evaluates a JSON-lines file: one output line per input line (blank
    /// lines are skipped). A malformed line gives an `{"error": ...}` line and
    /// the run goes on. Returns how many lines were malformed.
    ///
    /// # Errors
    ///
    /// Reading or writing fails.
    pub fn eval_lines(
        &self,
        input: impl BufRead,
        mut out: impl Write,
    ) -> Result<usize, std::io::Error> {
        let mut bad = 0;
        for (index, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let result = serde_json::from_str::<JsonRequest>(&line)
                .map_err(|e| e.to_string())
                .and_then(|r| r.to_http().map(|h| (h, r.client_ip)));
            let value = match result {
                Ok((request, ip)) => self.eval(request, ip),
                Err(message) => {
                    bad += 1;
                    json!({"error": "bad_request", "message": message, "line": index + 1})
                }
            };
            serde_json::to_writer(&mut out, &value)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(bad)
    }
}

fn statement_kind(statement: &Value) -> String {
    statement
        .as_object()
        .and_then(|o| o.keys().next())
        .cloned()
        .unwrap_or_default()
}

fn action_name(rule: &Value) -> String {
    let key = if rule.get("Action").is_some() {
        "Action"
    } else {
        "OverrideAction"
    };
    let name = rule
        .get(key)
        .and_then(Value::as_object)
        .and_then(|o| o.keys().next())
        .cloned()
        .unwrap_or_default();
    if key == "OverrideAction" {
        format!("Override:{name}")
    } else {
        name
    }
}

/// A managed group's rules as this ACL runs them: each rule's AWS name, its
/// action after `ExcludedRules`, `RuleActionOverrides` and `OverrideAction`,
/// and its label.
fn managed_rules(rule: &Value, managed: &Value) -> Value {
    let name = managed
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let count_all = rule
        .get("OverrideAction")
        .is_some_and(|o| o.get("Count").is_some());
    let names = |key: &str| -> Vec<&str> {
        managed
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|r| r.get("Name")?.as_str())
                    .collect()
            })
            .unwrap_or_default()
    };
    let excluded = names("ExcludedRules");
    let overridden: Vec<(&str, String)> = managed
        .get("RuleActionOverrides")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|o| {
                    let action = o.get("ActionToUse")?.as_object()?.keys().next()?.clone();
                    Some((o.get("Name")?.as_str()?, action))
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(group) = portcullis_waf::managed::rule_group(name) else {
        return json!({"vendor": managed.get("VendorName"), "name": name, "rules": []});
    };
    let namespace = group.label_namespace.clone().unwrap_or_default();
    let rules: Vec<Value> = group
        .rules
        .iter()
        .map(|r| {
            let own = r
                .action
                .as_ref()
                .map(|a| {
                    if a.block.is_some() {
                        "Block"
                    } else if a.allow.is_some() {
                        "Allow"
                    } else {
                        "Count"
                    }
                })
                .unwrap_or("Block")
                .to_owned();
            let mut effective = overridden
                .iter()
                .rev()
                .find(|(n, _)| *n == r.name)
                .map_or(own, |(_, a)| a.clone());
            if excluded.contains(&r.name.as_str()) || count_all {
                effective = "Count".to_owned();
            }
            json!({
                "name": r.name,
                "action": effective,
                "labels": r.rule_labels.iter().map(|l| format!("{namespace}{}", l.name)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "vendor": managed.get("VendorName"),
        "name": name,
        "version": managed.get("Version"),
        "scope_down": managed.get("ScopeDownStatement").is_some(),
        "rules": rules,
    })
}

/// Validates the ACL and lists its rules.
///
/// # Errors
///
/// The load error, with its JSON path.
pub fn check(files: &AclFiles) -> Result<Report, Failure> {
    let (sources, _) = load(files)?;
    let compiled = sources.compile().map_err(|e| load_failure(&e))?;
    let mut value: Value = serde_json::from_str(&files.web_acl).unwrap_or(Value::Null);
    if let Some(inner) = value.get_mut("WebACL") {
        value = inner.take();
    }
    let mut rules: Vec<Value> = value
        .get("Rules")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|rule| {
                    let mut listed = json!({
                        "name": rule.get("Name"),
                        "priority": rule.get("Priority"),
                        "action": action_name(rule),
                        "statement": statement_kind(rule.get("Statement").unwrap_or(&Value::Null)),
                    });
                    if let Some(managed) = rule
                        .get("Statement")
                        .and_then(|s| s.get("ManagedRuleGroupStatement"))
                    {
                        listed["managed_rule_group"] = managed_rules(rule, managed);
                    }
                    listed
                })
                .collect()
        })
        .unwrap_or_default();
    rules.sort_by_key(|r| r["priority"].as_i64().unwrap_or(i64::MAX));
    let default_action = value
        .get("DefaultAction")
        .and_then(Value::as_object)
        .and_then(|o| o.keys().next())
        .cloned();
    Ok(Report::ok(json!({
        "valid": true,
        "name": compiled.name(),
        "default_action": default_action,
        "rule_count": compiled.rule_count(),
        "inspects_body": compiled.inspects_body(),
        "body_inspection_limit": compiled.body_inspection_limit(),
        "rules": rules,
    })))
}
