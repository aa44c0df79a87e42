//! What the admin service reads: its routes, query strings and UpdateUsage
//! patch bodies.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;
use time::Date;

use super::response::AdminError;
use crate::store::UsageUpdate;

/// The most patch operations one UpdateUsage request may carry.
pub const MAX_PATCH_OPERATIONS: usize = 16;

/// A route of the admin service, from a method and a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Route {
    Plans,
    Plan(String),
    Keys(String),
    Key(String, String),
    Usage(String),
    KeyUsage(String, String),
}

impl Route {
    /// Parses a [`CanonicalPath`] (decoded already) such as
    /// `/usageplans/basic/keys/k1/usage`.
    pub(super) fn parse(path: &str) -> Option<Route> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut parts = path.split('/');
        if parts.next()? != "usageplans" {
            return None;
        }
        let segments: Vec<String> = parts.map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return None;
        }
        let mut segments = segments.into_iter();
        let route = match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (None, ..) => Route::Plans,
            (Some(plan), None, ..) => Route::Plan(plan),
            (Some(plan), Some(k), None, _) if k == "keys" => Route::Keys(plan),
            (Some(plan), Some(u), None, _) if u == "usage" => Route::Usage(plan),
            (Some(plan), Some(k), Some(key), None) if k == "keys" => Route::Key(plan, key),
            (Some(plan), Some(k), Some(key), Some(u)) if k == "keys" && u == "usage" => {
                Route::KeyUsage(plan, key)
            }
            _ => return None,
        };
        segments.next().is_none().then_some(route)
    }

    pub(super) fn allowed(&self) -> &'static str {
        match self {
            Route::KeyUsage(..) => "PATCH",
            _ => "GET",
        }
    }
}

/// Parses a query string into decoded pairs (`+` is a space). The first
/// occurrence of a name wins.
pub(super) fn parse_query(query: &str) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_decode_str(&s).decode_utf8_lossy().into_owned()
        };
        pairs.entry(decode(name)).or_insert_with(|| decode(value));
    }
    pairs
}

pub(super) fn parse_date(name: &str, value: Option<&String>) -> Result<Date, AdminError> {
    let value = value.ok_or_else(|| AdminError::bad_request(format!("{name} is required")))?;
    Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| AdminError::bad_request(format!("Invalid {name} `{value}`: expected YYYY-MM-DD")))
}

/// An UpdateUsage request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PatchRequest {
    pub(crate) patch_operations: Vec<PatchOperation>,
}

/// One patch operation.
#[derive(Debug, Deserialize)]
pub(super) struct PatchOperation {
    pub(crate) op: String,
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) value: Option<Value>,
}

impl PatchOperation {
    /// The usage update this operation asks for.
    pub(super) fn to_update(&self) -> Result<UsageUpdate, String> {
        if self.path != "/remaining" {
            return Err(format!(
                "Invalid patch path `{}`: only /remaining is supported",
                self.path
            ));
        }
        let value = || -> Result<u64, String> {
            let parsed = match &self.value {
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            };
            parsed.ok_or_else(|| {
                format!(
                    "Invalid value for `{} /remaining`: expected a non-negative integer",
                    self.op
                )
            })
        };
        match self.op.as_str() {
            "replace" => Ok(UsageUpdate::SetRemaining(value()?)),
            "add" => Ok(UsageUpdate::Extend(value()?)),
            "remove" => Ok(UsageUpdate::Reset),
            other => Err(format!(
                "Invalid patch operation `{other}`: expected replace, add or remove"
            )),
        }
    }
}

/// Parses an UpdateUsage body into updates.
pub(super) fn parse_patch(body: &[u8]) -> Result<Vec<UsageUpdate>, String> {
    let request: PatchRequest =
        serde_json::from_slice(body).map_err(|e| format!("Invalid request body: {e}"))?;
    if request.patch_operations.is_empty() {
        return Err("patchOperations must not be empty".to_owned());
    }
    if request.patch_operations.len() > MAX_PATCH_OPERATIONS {
        return Err(format!(
            "At most {MAX_PATCH_OPERATIONS} patch operations are allowed"
        ));
    }
    request
        .patch_operations
        .iter()
        .map(PatchOperation::to_update)
        .collect()
}

#[cfg(test)]
mod tests {
    use portcullis_core::path::CanonicalPath;

    use super::*;

    #[test]
    fn routes_parse() {
        let route = |path: &str| {
            CanonicalPath::parse(path)
                .ok()
                .and_then(|p| Route::parse(&p))
        };
        assert_eq!(route("/usageplans/p1%2Fx"), None);
        assert_eq!(route("/usageplans/%70%31"), Some(Route::Plan("p1".into())));
        assert_eq!(route("/usageplans"), Some(Route::Plans));
        assert_eq!(route("/usageplans/"), Some(Route::Plans));
        assert_eq!(route("/usageplans/p1"), Some(Route::Plan("p1".into())));
        assert_eq!(
            route("/usageplans/p%201/keys/k1/usage"),
            Some(Route::KeyUsage("p 1".into(), "k1".into()))
        );
        assert_eq!(
            route("/usageplans/p1/usage"),
            Some(Route::Usage("p1".into()))
        );
        assert_eq!(route("/usageplans/p1/keys/k1/usage/x"), None);
        assert_eq!(route("/usageplans//keys"), None);
        assert_eq!(route("/apikeys"), None);
        assert_eq!(route("/usageplans/%FF"), None);
    }

    #[test]
    fn queries_decode() {
        let q = parse_query("keyId=a%2Bb&startDate=2026-11-01&keyId=ignored&x+y=1+2&flag");
        assert_eq!(q["keyId"], "a+b");
        assert_eq!(q["x y"], "1 2");
        assert_eq!(q["flag"], "");
    }

    #[test]
    fn patches_parse() {
        let ops = parse_patch(
            br#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"100"},
                {"op":"add","path":"/remaining","value":5},{"op":"remove","path":"/remaining"}]}"#,
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                UsageUpdate::SetRemaining(100),
                UsageUpdate::Extend(5),
                UsageUpdate::Reset
            ]
        );
        for bad in [
            &br#"{"patchOperations":[]}"#[..],
            br#"{"patchOperations":[{"op":"replace","path":"/used","value":"1"}]}"#,
            br#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"-1"}]}"#,
            br#"{"patchOperations":[{"op":"move","path":"/remaining","value":"1"}]}"#,
            b"not json",
        ] {
            assert!(
                parse_patch(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
