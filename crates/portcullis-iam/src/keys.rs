//! Condition keys the engine knows by name, and how their values are read
//! from text (booleans, dates), shared by the `Condition` element and the
//! request context.

use std::borrow::Cow;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A condition key the engine knows by name. Names are case-insensitive, as in
/// IAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConditionKey {
    SourceIp,
    CurrentTime,
    EpochTime,
    PrincipalArn,
    SecureTransport,
    UserAgent,
    Other(Box<str>),
}

impl ConditionKey {
    pub(crate) fn parse(name: &str) -> Self {
        const KNOWN: [(&str, ConditionKey); 6] = [
            ("aws:SourceIp", ConditionKey::SourceIp),
            ("aws:CurrentTime", ConditionKey::CurrentTime),
            ("aws:EpochTime", ConditionKey::EpochTime),
            ("aws:PrincipalArn", ConditionKey::PrincipalArn),
            ("aws:SecureTransport", ConditionKey::SecureTransport),
            ("aws:UserAgent", ConditionKey::UserAgent),
        ];
        KNOWN
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map_or_else(|| ConditionKey::Other(name.into()), |(_, key)| key)
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A date as IAM writes it: ISO 8601 / RFC 3339 (`2026-01-01T00:00:00Z`), a
/// bare date (`2026-01-01`, midnight UTC), or seconds since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .map(|secs| i128::from(secs) * 1_000_000_000);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, format)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

/// A context value's text, for the string operators.
pub(crate) fn time_string(t: OffsetDateTime) -> Cow<'static, str> {
    t.format(&Rfc3339).map_or(Cow::Borrowed(""), Cow::Owned)
}
