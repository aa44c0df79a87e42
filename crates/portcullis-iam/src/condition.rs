//! The `Condition` element: operators, keys and their typed values, compiled
//! once.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::context::{ContextValue, RequestContext};
use crate::error::PolicyDocumentError;
use crate::json::{Path, as_object};
use crate::keys::{ConditionKey, parse_bool, parse_date};
use crate::pattern::Pattern;

/// What an operator tests, before negation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    ArnLike,
    Null,
}

/// `ForAnyValue:` / `ForAllValues:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

/// The policy's values, typed for the operator.
#[derive(Clone, Debug)]
enum Operands {
    Strings(Vec<Box<str>>),
    Patterns(Vec<Pattern>),
    Numbers(Vec<f64>),
    Dates(Vec<i128>),
    Bools(Vec<bool>),
    Nets(Vec<IpNet>),
    Arns(Vec<Vec<Pattern>>),
}

/// One operator applied to one key: `"StringLike": {"aws:UserAgent": [...]}`.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    test: Test,
    negated: bool,
    if_exists: bool,
    set: SetQualifier,
    key: ConditionKey,
    operands: Operands,
}

fn parse_operator(name: &str) -> Option<(SetQualifier, Test, bool, bool)> {
    let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (SetQualifier::ForAnyValue, rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (SetQualifier::ForAllValues, rest)
    } else {
        (SetQualifier::None, name)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) if base != "Null" => (base, true),
        _ => (rest, false),
    };
    let (test, negated) = match base {
        "StringEquals" => (Test::StringEquals, false),
        "StringNotEquals" => (Test::StringEquals, true),
        "StringEqualsIgnoreCase" => (Test::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Test::StringEqualsIgnoreCase, true),
        "StringLike" => (Test::StringLike, false),
        "StringNotLike" => (Test::StringLike, true),
        "NumericEquals" => (Test::NumericEquals, false),
        "NumericNotEquals" => (Test::NumericEquals, true),
        "NumericLessThan" => (Test::NumericLessThan, false),
        "NumericLessThanEquals" => (Test::NumericLessThanEquals, false),
        "NumericGreaterThan" => (Test::NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (Test::NumericGreaterThanEquals, false),
        "DateEquals" => (Test::DateEquals, false),
        "DateNotEquals" => (Test::DateEquals, true),
        "DateLessThan" => (Test::DateLessThan, false),
        "DateLessThanEquals" => (Test::DateLessThanEquals, false),
        "DateGreaterThan" => (Test::DateGreaterThan, false),
        "DateGreaterThanEquals" => (Test::DateGreaterThanEquals, false),
        "Bool" => (Test::Bool, false),
        "BinaryEquals" => (Test::BinaryEquals, false),
        "IpAddress" => (Test::IpAddress, false),
        "NotIpAddress" => (Test::IpAddress, true),
        "ArnEquals" | "ArnLike" => (Test::ArnLike, false),
        "ArnNotEquals" | "ArnNotLike" => (Test::ArnLike, true),
        "Null" if set == SetQualifier::None => (Test::Null, false),
        _ => return None,
    };
    Some((set, test, negated, if_exists))
}

impl Condition {
    /// Compiles a whole `Condition` element.
    pub(crate) fn compile_block(
        value: &Value,
        path: &mut Path,
    ) -> Result<Vec<Self>, PolicyDocumentError> {
        let mut out = Vec::new();
        for (operator, keys) in as_object(value, path)? {
            path.push_key(operator);
            let (set, test, negated, if_exists) = parse_operator(operator)
                .ok_or_else(|| path.invalid(format!("unknown condition operator `{operator}`")))?;
            for (key, values) in as_object(keys, path)? {
                path.push_key(key);
                let raw = scalar_list(values, path)?;
                let operands = compile_operands(test, &raw, path)?;
                out.push(Condition {
                    test,
                    negated,
                    if_exists,
                    set,
                    key: ConditionKey::parse(key),
                    operands,
                });
                path.pop();
            }
            path.pop();
        }
        Ok(out)
    }

    /// Whether the condition holds for the request.
    pub(crate) fn holds(&self, ctx: &RequestContext<'_>) -> bool {
        let values = ctx.lookup(&self.key);
        if self.test == Test::Null {
            let absent = values.is_empty();
            return matches!(&self.operands, Operands::Bools(b) if b.contains(&absent));
        }
        if values.is_empty() {
            return match self.set {
                _ if self.if_exists => true,
                SetQualifier::ForAllValues => true,
                SetQualifier::ForAnyValue => false,
                SetQualifier::None => self.negated,
            };
        }
        // A value "passes" when it satisfies the operator, negation included:
        // for a negated operator, it matches none of the policy's values.
        let passes = |value: &ContextValue<'_>| self.matches_any(value) != self.negated;
        match self.set {
            SetQualifier::ForAllValues => values.iter().all(|v| passes(&v)),
            SetQualifier::ForAnyValue => values.iter().any(|v| passes(&v)),
            // A single-valued use of a key that holds several values: a positive
            // operator needs one value to match, a negated one needs none to.
            SetQualifier::None if self.negated => values.iter().all(|v| passes(&v)),
            SetQualifier::None => values.iter().any(|v| passes(&v)),
        }
    }

    /// Whether `value` matches any of the policy's values, before negation.
    fn matches_any(&self, value: &ContextValue<'_>) -> bool {
        match (&self.operands, self.test) {
            (Operands::Strings(list), Test::StringEquals | Test::BinaryEquals) => {
                let s = value.as_string();
                list.iter().any(|p| **p == *s)
            }
            (Operands::Strings(list), Test::StringEqualsIgnoreCase) => {
                let s = value.as_string();
                list.iter().any(|p| eq_ignore_case(p, &s))
            }
            (Operands::Patterns(list), _) => {
                let s = value.as_string();
                list.iter().any(|p| p.matches(&s))
            }
            (Operands::Numbers(list), test) => value.as_number().is_some_and(|n| {
                list.iter().any(|p| match test {
                    Test::NumericEquals => n == *p,
                    Test::NumericLessThan => n < *p,
                    Test::NumericLessThanEquals => n <= *p,
                    Test::NumericGreaterThan => n > *p,
                    _ => n >= *p,
                })
            }),
            (Operands::Dates(list), test) => value.as_unix_nanos().is_some_and(|t| {
                list.iter().any(|p| match test {
                    Test::DateEquals => t == *p,
                    Test::DateLessThan => t < *p,
                    Test::DateLessThanEquals => t <= *p,
                    Test::DateGreaterThan => t > *p,
                    _ => t >= *p,
                })
            }),
            (Operands::Bools(list), _) => value.as_bool().is_some_and(|b| list.contains(&b)),
            (Operands::Nets(list), _) => value
                .as_ip()
                .is_some_and(|ip| list.iter().any(|net| net.contains(&ip))),
            (Operands::Arns(list), _) => {
                let s = value.as_string();
                list.iter().any(|fields| arn_like(fields, &s))
            }
            (Operands::Strings(_), _) => false,
        }
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!a.is_ascii() && a.to_lowercase() == b.to_lowercase())
}

/// ArnLike: each of the six colon-separated fields is matched on its own, so
/// a wildcard does not cross a `:` before the resource part.
fn arn_like(fields: &[Pattern], arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let matched = fields
        .iter()
        .all(|field| parts.next().is_some_and(|part| field.matches(part)));
    matched && parts.next().is_none()
}

/// A condition value, or a list of them. IAM accepts strings, numbers and
/// booleans and compares their string forms.
fn scalar_list(value: &Value, path: &mut Path) -> Result<Vec<String>, PolicyDocumentError> {
    fn scalar(value: &Value, path: &Path) -> Result<String, PolicyDocumentError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(path.invalid("expected a string, number or boolean")),
        }
    }
    match value {
        Value::Array(items) if items.is_empty() => Err(path.invalid("expected at least one value")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                path.push_index(index);
                let s = scalar(item, path);
                path.pop();
                s
            })
            .collect(),
        other => Ok(vec![scalar(other, path)?]),
    }
}

fn compile_operands(
    test: Test,
    raw: &[String],
    path: &mut Path,
) -> Result<Operands, PolicyDocumentError> {
    fn each<T>(
        raw: &[String],
        path: &mut Path,
        f: impl Fn(&str, &Path) -> Result<T, PolicyDocumentError>,
    ) -> Result<Vec<T>, PolicyDocumentError> {
        raw.iter()
            .enumerate()
            .map(|(index, s)| {
                if raw.len() > 1 {
                    path.push_index(index);
                }
                let out = f(s, path);
                if raw.len() > 1 {
                    path.pop();
                }
                out
            })
            .collect()
    }
    Ok(match test {
        Test::StringEquals | Test::StringEqualsIgnoreCase | Test::BinaryEquals => {
            Operands::Strings(raw.iter().map(|s| s.as_str().into()).collect())
        }
        Test::StringLike => Operands::Patterns(raw.iter().map(|s| Pattern::new(s)).collect()),
        Test::NumericEquals
        | Test::NumericLessThan
        | Test::NumericLessThanEquals
        | Test::NumericGreaterThan
        | Test::NumericGreaterThanEquals => Operands::Numbers(each(raw, path, |s, path| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| path.invalid(format!("`{s}` is not a number")))
        })?),
        Test::DateEquals
        | Test::DateLessThan
        | Test::DateLessThanEquals
        | Test::DateGreaterThan
        | Test::DateGreaterThanEquals => Operands::Dates(each(raw, path, |s, path| {
            parse_date(s).ok_or_else(|| {
                path.invalid(format!(
                    "`{s}` is not a date (ISO 8601 such as 2026-01-01T00:00:00Z, or epoch seconds)"
                ))
            })
        })?),
        Test::Bool | Test::Null => Operands::Bools(each(raw, path, |s, path| {
            parse_bool(s).ok_or_else(|| path.invalid(format!("`{s}` is not `true` or `false`")))
        })?),
        Test::IpAddress => Operands::Nets(each(raw, path, |s, path| {
            parse_net(s).ok_or_else(|| path.invalid(format!("`{s}` is not an IP address or CIDR")))
        })?),
        Test::ArnLike => Operands::Arns(each(raw, path, |s, path| {
            let fields: Vec<Pattern> = s.splitn(6, ':').map(Pattern::new).collect();
            if fields.len() == 6 || s == "*" {
                Ok(fields)
            } else {
                Err(path.invalid(format!("`{s}` is not an ARN")))
            }
        })?),
    })
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}
