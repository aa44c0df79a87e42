//! Rate-limit response headers, one convention for every layer.
//!
//! The throttle and the quota each describe their state as a
//! [`RateLimitPolicy`]; a [`RateLimitInfo`] collects the policies of one
//! response and writes them as one set of headers, in the convention
//! [`RateLimitHeaders`] chooses. A layer that writes headers leaves its
//! [`RateLimitInfo`] in the response extensions, and a layer outside it that
//! writes headers too merges its own policies into it
//! ([`RateLimitInfo::apply`]): with the throttle and the quota in one stack,
//! the client gets one set of headers describing both.
//!
//! # The default: the IETF draft's `RateLimit-Policy` and `RateLimit`
//!
//! The default is the current IETF draft's pair
//! (draft-ietf-httpapi-ratelimit-headers, the form every revision since -08
//! has kept): `RateLimit-Policy` lists each policy with its quota `q` and
//! window `w` in seconds, and `RateLimit` gives the remaining units `r` and
//! the seconds `t` until the policy's quota is restored, for the one policy
//! nearest to refusing the client.
//!
//! ```text
//! RateLimit-Policy: "key";q=100;w=1, "quota";q=1000;w=86400
//! RateLimit: "quota";r=999;t=3600
//! ```
//!
//! It is chosen because it is the only convention that can describe two
//! policies at once (a burst and a daily quota) without one hiding the
//! other, and because it names the policy it reports on, so a client can
//! tell a throttle from a quota. The older trio (`RateLimit-Limit`,
//! `RateLimit-Remaining`, `RateLimit-Reset`, drafts -00 to -06, as Kong and
//! others send it) is [`RateLimitHeaders::Trio`]: it reports the same
//! nearest policy, unnamed. The `X-RateLimit-*` spelling is
//! [`RateLimitHeaders::Legacy`].
//!
//! # Which policy `RateLimit` names
//!
//! The policy that refused the request, if one did; else the one with the
//! fewest units left (ties: the one whose reset is furthest, then the first
//! listed). `Retry-After` is not part of the convention: the layer that
//! refuses a request with 429 always writes it, whatever the convention,
//! even [`RateLimitHeaders::None`].
//!
//! ```
//! use http::{HeaderMap, Response};
//! use portcullis_core::ratelimit::{RateLimitHeaders, RateLimitInfo, RateLimitPolicy};
//!
//! // What the quota (inside) left on its response.
//! let mut response = Response::new(());
//! RateLimitInfo::one(RateLimitPolicy::new("quota", 1000, 86_400, 999, 3600))
//!     .apply(RateLimitHeaders::Ietf, &mut response);
//! // The throttle (outside) adds its bucket.
//! RateLimitInfo::one(RateLimitPolicy::new("key", 100, 1, 99, 1))
//!     .apply(RateLimitHeaders::Ietf, &mut response);
//!
//! let headers = response.headers();
//! assert_eq!(headers["ratelimit-policy"], r#""key";q=100;w=1, "quota";q=1000;w=86400"#);
//! assert_eq!(headers["ratelimit"], r#""key";r=99;t=1"#);
//! ```

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue, Response};
use serde::{Deserialize, Serialize};

/// `RateLimit-Policy` (the IETF draft): the policies, with quota and window.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (the IETF draft): the nearest policy's remaining units and
/// reset.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Limit` (the older trio): the nearest policy's quota.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining` (the older trio): the nearest policy's units left.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset` (the older trio): seconds until the nearest policy's
/// quota is restored.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `X-RateLimit-Limit` (the legacy spelling of `RateLimit-Limit`).
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining` (the legacy spelling of `RateLimit-Remaining`).
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (the legacy spelling of `RateLimit-Reset`).
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Every header any convention writes: removed before a merged set is
/// written, so that no stale value of another layer survives.
const ALL: [HeaderName; 8] = [
    RATELIMIT_POLICY,
    RATELIMIT,
    RATELIMIT_LIMIT,
    RATELIMIT_REMAINING,
    RATELIMIT_RESET,
    X_RATELIMIT_LIMIT,
    X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET,
];

/// Which rate-limit headers the throttle and the quota write (the same
/// option, `rate_limit_headers`, in both layers and in the facade's
/// configuration). See the [module docs](self) for why the default is the
/// IETF draft's.
///
/// `Retry-After` (whole seconds, rounded up) is on every 429 whatever this
/// says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RateLimitHeaders {
    /// None besides `Retry-After` on a 429 (`"none"`).
    None,
    /// The current IETF draft's `RateLimit-Policy: "key";q=100;w=1,
    /// "quota";q=1000;w=86400` and `RateLimit: "quota";r=999;t=3600`
    /// (`"ietf"`, the default).
    #[default]
    Ietf,
    /// The older drafts' trio `RateLimit-Limit`, `RateLimit-Remaining`,
    /// `RateLimit-Reset`, for the nearest policy (`"trio"`).
    Trio,
    /// The legacy `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset`, for the nearest policy (`"legacy"`).
    Legacy,
    /// [`Ietf`](Self::Ietf) and [`Legacy`](Self::Legacy) together
    /// (`"both"`).
    Both,
}

/// One policy's state, as a response reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RateLimitPolicy {
    /// The policy's name (`"key"`, `"stage"`, `"account"` for the
    /// throttle's buckets, `"quota"` for the quota). Must be a valid
    /// structured-field string (printable ASCII without `"` or `\`).
    pub name: &'static str,
    /// Units the policy allows per window (`q`; `RateLimit-Limit`).
    pub quota: u64,
    /// The window in seconds (`w`).
    pub window_seconds: u64,
    /// Units left (`r`; `RateLimit-Remaining`).
    pub remaining: u64,
    /// Seconds until the quota is restored (`t`; `RateLimit-Reset`).
    pub reset_seconds: u64,
}

impl RateLimitPolicy {
    /// A policy named `name` allowing `quota` units per `window_seconds`,
    /// with `remaining` left and restored in `reset_seconds`.
    #[must_use]
    pub const fn new(
        name: &'static str,
        quota: u64,
        window_seconds: u64,
        remaining: u64,
        reset_seconds: u64,
    ) -> Self {
        Self {
            name,
            quota,
            window_seconds,
            remaining,
            reset_seconds,
        }
    }

    const EMPTY: Self = Self::new("", 0, 0, 0, 0);
}

/// The most policies one response describes; more are dropped (the stack
/// has at most a throttle and a quota, one policy each).
pub const MAX_POLICIES: usize = 4;

/// The policies one response describes, outermost layer first, and which of
/// them refused the request, if one did. Layers leave it in the response
/// extensions; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitInfo {
    policies: [RateLimitPolicy; MAX_POLICIES],
    len: usize,
    refused: Option<usize>,
}

impl Default for RateLimitInfo {
    fn default() -> Self {
        Self {
            policies: [RateLimitPolicy::EMPTY; MAX_POLICIES],
            len: 0,
            refused: None,
        }
    }
}

impl RateLimitInfo {
    /// One policy that admitted the request.
    #[must_use]
    pub fn one(policy: RateLimitPolicy) -> Self {
        let mut info = Self::default();
        info.push(policy);
        info
    }

    /// One policy that refused the request.
    #[must_use]
    pub fn refusal(policy: RateLimitPolicy) -> Self {
        let mut info = Self::one(policy);
        info.refused = Some(0);
        info
    }

    /// Adds a policy at the end (dropped past [`MAX_POLICIES`]).
    pub fn push(&mut self, policy: RateLimitPolicy) {
        if let Some(slot) = self.policies.get_mut(self.len) {
            *slot = policy;
            self.len += 1;
        }
    }

    /// The policies, outermost layer first.
    #[must_use]
    pub fn policies(&self) -> &[RateLimitPolicy] {
        &self.policies[..self.len]
    }

    /// The policy that refused the request, if one did.
    #[must_use]
    pub fn refused(&self) -> Option<&RateLimitPolicy> {
        self.refused.and_then(|i| self.policies().get(i))
    }

    /// The policy nearest to refusing the client, the one `RateLimit` (and
    /// the trio) report: the one that refused, else the one with the fewest
    /// units left (ties: the furthest reset, then the first).
    #[must_use]
    pub fn nearest(&self) -> Option<&RateLimitPolicy> {
        if let Some(refused) = self.refused() {
            return Some(refused);
        }
        let mut best: Option<&RateLimitPolicy> = None;
        for policy in self.policies() {
            best = match best {
                Some(b)
                    if (b.remaining, std::cmp::Reverse(b.reset_seconds))
                        <= (policy.remaining, std::cmp::Reverse(policy.reset_seconds)) =>
                {
                    Some(b)
                }
                _ => Some(policy),
            };
        }
        best
    }

    /// This layer's policies (`self`, outside) followed by those of the
    /// layer inside it (`inner`).
    #[must_use]
    pub fn then(mut self, inner: &RateLimitInfo) -> Self {
        let offset = self.len;
        for policy in inner.policies() {
            self.push(*policy);
        }
        if self.refused.is_none() {
            self.refused = inner.refused.map(|i| i + offset).filter(|&i| i < self.len);
        }
        self
    }

    /// Writes the headers of `style` into `headers`, replacing any
    /// rate-limit header already there (of every convention). Writes
    /// nothing but that removal for [`RateLimitHeaders::None`] or no policy.
    pub fn write(&self, style: RateLimitHeaders, headers: &mut HeaderMap) {
        for name in &ALL {
            headers.remove(name);
        }
        let Some(nearest) = self.nearest() else {
            return;
        };
        if matches!(style, RateLimitHeaders::Ietf | RateLimitHeaders::Both) {
            let mut policy = String::new();
            for (i, p) in self.policies().iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(
                    policy,
                    "{sep}\"{}\";q={};w={}",
                    p.name, p.quota, p.window_seconds
                );
            }
            let state = format!(
                "\"{}\";r={};t={}",
                nearest.name, nearest.remaining, nearest.reset_seconds
            );
            // Names are the layers' constants; a bad one writes nothing
            // rather than panic.
            if let (Ok(policy), Ok(state)) =
                (HeaderValue::try_from(policy), HeaderValue::try_from(state))
            {
                headers.insert(RATELIMIT_POLICY, policy);
                headers.insert(RATELIMIT, state);
            }
        }
        let trio = match style {
            RateLimitHeaders::Trio => Some([RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET]),
            RateLimitHeaders::Legacy | RateLimitHeaders::Both => {
                Some([X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET])
            }
            RateLimitHeaders::None | RateLimitHeaders::Ietf => None,
        };
        if let Some([limit, remaining, reset]) = trio {
            headers.insert(limit, HeaderValue::from(nearest.quota));
            headers.insert(remaining, HeaderValue::from(nearest.remaining));
            headers.insert(reset, HeaderValue::from(nearest.reset_seconds));
        }
    }

    /// Puts this layer's policies on `response`: merged before those a
    /// layer inside left in its extensions (see [`then`](Self::then)), the
    /// merged set written as the headers of `style` (replacing the inner
    /// layer's) and left in the extensions for a layer further out.
    pub fn apply<B>(self, style: RateLimitHeaders, response: &mut Response<B>) {
        let merged = match response.extensions().get::<RateLimitInfo>() {
            Some(inner) => self.then(inner),
            None => self,
        };
        merged.write(style, response.headers_mut());
        response.extensions_mut().insert(merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(remaining: u64) -> RateLimitPolicy {
        RateLimitPolicy::new("quota", 1000, 86_400, remaining, 3600)
    }

    fn key(remaining: u64) -> RateLimitPolicy {
        RateLimitPolicy::new("key", 100, 1, remaining, 1)
    }

    #[test]
    fn nearest_is_the_refusal_else_the_fewest_left() {
        let info = RateLimitInfo::one(key(5)).then(&RateLimitInfo::one(quota(3)));
        assert_eq!(info.nearest().unwrap().name, "quota");
        let info = RateLimitInfo::one(key(0)).then(&RateLimitInfo::refusal(quota(0)));
        assert_eq!(info.nearest().unwrap().name, "quota");
        assert_eq!(info.refused().unwrap().name, "quota");
        // A tie: the furthest reset.
        let info = RateLimitInfo::one(key(2)).then(&RateLimitInfo::one(quota(2)));
        assert_eq!(info.nearest().unwrap().name, "quota");
        assert!(RateLimitInfo::default().nearest().is_none());
    }

    #[test]
    fn each_style_writes_its_headers_only() {
        let info = RateLimitInfo::one(key(7)).then(&RateLimitInfo::one(quota(999)));
        let written = |style| {
            let mut headers = HeaderMap::new();
            headers.insert(RATELIMIT_LIMIT, HeaderValue::from(1));
            info.write(style, &mut headers);
            let mut pairs: Vec<_> = headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                .collect();
            pairs.sort();
            pairs
        };
        assert_eq!(
            written(RateLimitHeaders::Ietf),
            [
                r#"ratelimit-policy: "key";q=100;w=1, "quota";q=1000;w=86400"#,
                r#"ratelimit: "key";r=7;t=1"#,
            ]
        );
        assert_eq!(
            written(RateLimitHeaders::Trio),
            [
                "ratelimit-limit: 100",
                "ratelimit-remaining: 7",
                "ratelimit-reset: 1"
            ]
        );
        assert_eq!(
            written(RateLimitHeaders::Legacy),
            [
                "x-ratelimit-limit: 100",
                "x-ratelimit-remaining: 7",
                "x-ratelimit-reset: 1"
            ]
        );
        assert_eq!(written(RateLimitHeaders::Both).len(), 5);
        assert!(written(RateLimitHeaders::None).is_empty());
    }

    #[test]
    fn past_the_capacity_policies_are_dropped_and_the_refusal_kept() {
        let mut inner = RateLimitInfo::refusal(quota(0));
        inner.push(key(1));
        let mut outer = RateLimitInfo::one(key(3));
        outer.push(key(4));
        outer.push(key(5));
        let merged = outer.then(&inner);
        assert_eq!(merged.policies().len(), MAX_POLICIES);
        assert_eq!(merged.refused().unwrap().name, "quota");
    }

    #[test]
    fn styles_parse_from_configuration() {
        for (text, style) in [
            ("\"ietf\"", RateLimitHeaders::Ietf),
            ("\"trio\"", RateLimitHeaders::Trio),
            ("\"legacy\"", RateLimitHeaders::Legacy),
            ("\"none\"", RateLimitHeaders::None),
            ("\"both\"", RateLimitHeaders::Both),
        ] {
            assert_eq!(
                serde_json::from_str::<RateLimitHeaders>(text).unwrap(),
                style
            );
        }
        assert!(serde_json::from_str::<RateLimitHeaders>("\"x\"").is_err());
    }
}
