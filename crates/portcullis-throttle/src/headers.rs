//! Rate-limit response headers.

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::gcra::Gcra;
use crate::store::{Level, Outcome};

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Which rate-limit headers the layer writes.
///
/// `Retry-After` (whole seconds, rounded up) is always on a refusal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RateLimitHeaders {
    /// None besides `Retry-After`.
    None,
    /// The IETF draft's (draft-ietf-httpapi-ratelimit-headers-07 and later)
    /// `RateLimit-Policy: "key";q=2;w=2` and `RateLimit: "key";r=0;t=2`.
    #[default]
    Ietf,
    /// The legacy `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (seconds until the bucket is full).
    Legacy,
    /// Both.
    Both,
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Whole seconds in `nanos`, rounded up.
pub(crate) fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SECOND)
}

/// Writes the headers for an outcome reported on the bucket `level` with
/// parameters `gcra`.
///
/// The policy is the bucket's `q` (its burst) per `w` (the seconds it takes to
/// refill from empty, rounded up); `r` is the whole tokens left and `t` the
/// seconds until the bucket is full again (rounded up).
pub(crate) fn write(
    style: RateLimitHeaders,
    level: Level,
    gcra: &Gcra,
    outcome: &Outcome,
    headers: &mut HeaderMap,
) {
    if !outcome.admitted {
        let seconds = ceil_seconds(outcome.retry_after_nanos).max(1);
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    let burst = gcra.burst().get();
    let reset = ceil_seconds(outcome.full_after_nanos);
    if matches!(style, RateLimitHeaders::Ietf | RateLimitHeaders::Both) {
        let window = ceil_seconds(gcra.capacity_nanos()).max(1);
        let name = level.as_str();
        if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";q={burst};w={window}")) {
            headers.insert(RATELIMIT_POLICY.clone(), v);
        }
        if let Ok(v) =
            HeaderValue::from_str(&format!("\"{name}\";r={};t={reset}", outcome.remaining))
        {
            headers.insert(RATELIMIT.clone(), v);
        }
    }
    if matches!(style, RateLimitHeaders::Legacy | RateLimitHeaders::Both) {
        headers.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(burst));
        headers.insert(
            X_RATELIMIT_REMAINING.clone(),
            HeaderValue::from(outcome.remaining),
        );
        headers.insert(X_RATELIMIT_RESET.clone(), HeaderValue::from(reset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::plan::ThrottleSettings;

    #[test]
    fn refusal_headers() {
        let gcra = Gcra::new(&ThrottleSettings::new(0.5, 3).unwrap());
        let outcome = Outcome {
            admitted: false,
            bucket: 0,
            remaining: 0,
            retry_after_nanos: 1_000_000_001,
            full_after_nanos: 6_000_000_000,
        };
        let mut headers = HeaderMap::new();
        write(
            RateLimitHeaders::Both,
            Level::Stage,
            &gcra,
            &outcome,
            &mut headers,
        );
        assert_eq!(headers["retry-after"], "2");
        assert_eq!(headers["ratelimit-policy"], "\"stage\";q=3;w=6");
        assert_eq!(headers["ratelimit"], "\"stage\";r=0;t=6");
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        assert_eq!(headers["x-ratelimit-reset"], "6");
    }

    #[test]
    fn none_writes_only_retry_after() {
        let gcra = Gcra::new(&ThrottleSettings::new(1.0, 1).unwrap());
        let outcome = Outcome {
            admitted: false,
            bucket: 0,
            remaining: 0,
            retry_after_nanos: 1,
            full_after_nanos: 1,
        };
        let mut headers = HeaderMap::new();
        write(
            RateLimitHeaders::None,
            Level::Key,
            &gcra,
            &outcome,
            &mut headers,
        );
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["retry-after"], "1");
    }
}
