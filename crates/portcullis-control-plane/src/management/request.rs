//! Reading a request: its route, its query, its body, and the operation it
//! names.

use std::collections::BTreeMap;

use http::Method;
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use time::Date;

use super::response::ApiError;
use crate::model::PageRequest;

/// A route, from the canonical path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Route {
    ApiKeys,
    ApiKey(String),
    Plans,
    Plan(String),
    PlanKeys(String),
    PlanKey(String, String),
    Usage(String),
    KeyUsage(String, String),
}

impl Route {
    pub(super) fn parse(path: &str) -> Option<Route> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let parts: Vec<&str> = path.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let own = |s: &str| s.to_owned();
        Some(match parts.as_slice() {
            ["apikeys"] => Route::ApiKeys,
            ["apikeys", id] => Route::ApiKey(own(id)),
            ["usageplans"] => Route::Plans,
            ["usageplans", id] => Route::Plan(own(id)),
            ["usageplans", id, "keys"] => Route::PlanKeys(own(id)),
            ["usageplans", id, "usage"] => Route::Usage(own(id)),
            ["usageplans", id, "keys", key] => Route::PlanKey(own(id), own(key)),
            ["usageplans", id, "keys", key, "usage"] => Route::KeyUsage(own(id), own(key)),
            _ => return None,
        })
    }
}

/// The decoded query: the first occurrence of a name wins.
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

pub(super) struct Query(pub(super) BTreeMap<String, String>);

impl Query {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(super) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v.is_empty() => Ok(false),
            Some(v) => Err(ApiError::bad(format!(
                "Invalid {name} {v:?}: expected true or false"
            ))),
        }
    }

    pub(super) fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.get("limit") {
            None => None,
            Some(v) => {
                let n: i64 = v.parse().map_err(|_| {
                    ApiError::bad(format!("Invalid limit {v:?}: expected an integer"))
                })?;
                let n = u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=crate::model::MAX_PAGE_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad(format!(
                            "limit must be between 1 and {}, got {n}",
                            crate::model::MAX_PAGE_LIMIT
                        ))
                    })?;
                Some(n)
            }
        };
        Ok(PageRequest {
            position: self.get("position").map(str::to_owned),
            limit,
        })
    }
}

pub(super) fn parse_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("Invalid request body: {e}")))
}

pub(super) fn parse_required<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("Invalid request body: {e}")))
}

pub(super) fn parse_date(name: &str, value: Option<&str>) -> Result<Date, ApiError> {
    let value = value.ok_or_else(|| ApiError::bad(format!("{name} is required")))?;
    Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| ApiError::bad(format!("Invalid {name} {value:?}: expected YYYY-MM-DD")))
}

pub(super) const USAGE_ADMIN_OPERATIONS: &[&str] = &[
    "GetUsagePlans",
    "GetUsagePlan",
    "GetUsagePlanKeys",
    "GetUsagePlanKey",
    "GetUsage",
    "UpdateUsage",
];

pub(super) fn operation_name(
    method: &Method,
    route: &Route,
    query: &Query,
) -> Option<&'static str> {
    let m = method.as_str();
    Some(match (route, m) {
        (Route::ApiKeys, "POST") if query.get("mode") == Some("import") => "ImportApiKeys",
        (Route::ApiKeys, "POST") => "CreateApiKey",
        (Route::ApiKeys, "GET") => "GetApiKeys",
        (Route::ApiKey(_), "GET") => "GetApiKey",
        (Route::ApiKey(_), "PATCH") => "UpdateApiKey",
        (Route::ApiKey(_), "DELETE") => "DeleteApiKey",
        (Route::Plans, "POST") => "CreateUsagePlan",
        (Route::Plans, "GET") => "GetUsagePlans",
        (Route::Plan(_), "GET") => "GetUsagePlan",
        (Route::Plan(_), "PATCH") => "UpdateUsagePlan",
        (Route::Plan(_), "DELETE") => "DeleteUsagePlan",
        (Route::PlanKeys(_), "POST") => "CreateUsagePlanKey",
        (Route::PlanKeys(_), "GET") => "GetUsagePlanKeys",
        (Route::PlanKey(..), "GET") => "GetUsagePlanKey",
        (Route::PlanKey(..), "DELETE") => "DeleteUsagePlanKey",
        (Route::Usage(_), "GET") => "GetUsage",
        (Route::KeyUsage(..), "PATCH") => "UpdateUsage",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(Route::parse("/apikeys"), Some(Route::ApiKeys));
        assert_eq!(
            Route::parse("/usageplans/p/keys/k/usage"),
            Some(Route::KeyUsage("p".into(), "k".into()))
        );
        assert_eq!(Route::parse("/usageplans//keys"), None);
        assert_eq!(Route::parse("/other"), None);
    }
}
