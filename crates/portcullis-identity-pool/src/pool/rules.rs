//! Role-mapping rules: whether a claim matches one.

use serde_json::Value;

use crate::config::MatchType;

/// Whether a claim's `value` matches a rule: see [`MatchType`] for the
/// semantics and their sources.
pub(super) fn claim_matches(value: &Value, match_type: MatchType, expected: &str) -> bool {
    fn text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
        match value {
            Value::String(s) => Some(s.as_str().into()),
            Value::Number(_) | Value::Bool(_) => Some(value.to_string().into()),
            _ => None,
        }
    }
    // A claim is a set of values: an array's scalar elements, or one scalar.
    // Anything else (an object, null, an array of no scalars) has no value
    // and matches nothing, as a missing claim.
    let values: Vec<_> = match value {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        scalar => text(scalar).into_iter().collect(),
    };
    if values.is_empty() {
        return false;
    }
    match match_type {
        // `Contains` is membership, never a substring test: a group named
        // `xloyalty-adminsx` does not contain `loyalty-admins`.
        MatchType::Equals | MatchType::Contains => values.iter().any(|v| v == expected),
        MatchType::StartsWith => values.iter().any(|v| v.starts_with(expected)),
        MatchType::NotEqual => values.iter().all(|v| v != expected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_match_as_cognito_rules() {
        let groups = json!(["Admins", "Staff"]);
        assert!(claim_matches(&groups, MatchType::Contains, "Admins"));
        assert!(!claim_matches(&groups, MatchType::Contains, "Admin"));
        assert!(claim_matches(&groups, MatchType::StartsWith, "Sta"));
        assert!(claim_matches(&groups, MatchType::NotEqual, "Pilots"));
        assert!(!claim_matches(&groups, MatchType::NotEqual, "Staff"));
        let email = json!("ann@example.com");
        assert!(!claim_matches(&email, MatchType::Contains, "@example."));
        assert!(claim_matches(
            &email,
            MatchType::Contains,
            "ann@example.com"
        ));
        assert!(claim_matches(&email, MatchType::Equals, "ann@example.com"));
        assert!(!claim_matches(&email, MatchType::StartsWith, "bob"));
        assert!(claim_matches(&json!(true), MatchType::Equals, "true"));
        assert!(claim_matches(&json!(3), MatchType::NotEqual, "4"));
        assert!(!claim_matches(&json!({"a": 1}), MatchType::NotEqual, "x"));
        assert!(!claim_matches(&json!([]), MatchType::NotEqual, "x"));
        assert!(!claim_matches(&Value::Null, MatchType::NotEqual, "x"));
    }
}
