//! Rate-limit response headers: the throttle's bucket as a
//! [`RateLimitPolicy`], written in the convention shared with the quota
//! ([`portcullis_core::ratelimit`]).

use http::HeaderValue;
pub use portcullis_core::ratelimit::RateLimitHeaders;
use portcullis_core::ratelimit::{RateLimitInfo, RateLimitPolicy};

use crate::gcra::Gcra;
use crate::store::{Level, Outcome};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Whole seconds in `nanos`, rounded up.
pub(crate) fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SECOND)
}

/// The bucket an outcome reports on, on the level `level` with parameters
/// `gcra`, as a policy named after its level: `q` is the bucket's burst,
/// `w` the seconds it takes to refill from empty (rounded up, at least 1),
/// `r` the whole tokens left and `t` the seconds until the bucket is full
/// again (rounded up).
pub(crate) fn policy(level: Level, gcra: &Gcra, outcome: &Outcome) -> RateLimitPolicy {
    RateLimitPolicy::new(
        level.as_str(),
        u64::from(gcra.burst().get()),
        ceil_seconds(gcra.capacity_nanos()).max(1),
        u64::from(outcome.remaining),
        ceil_seconds(outcome.full_after_nanos),
    )
}

/// `Retry-After` of a refusal: whole seconds until the bucket has a token,
/// rounded up, at least 1.
pub(crate) fn retry_after(outcome: &Outcome) -> HeaderValue {
    HeaderValue::from(ceil_seconds(outcome.retry_after_nanos).max(1))
}

/// The headers to add to an admitted request's response (only with
/// `rate_limit_headers_on_success`): its policy and the convention.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SuccessHeaders {
    pub(crate) info: RateLimitInfo,
    pub(crate) style: RateLimitHeaders,
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use portcullis_core::plan::ThrottleSettings;

    #[test]
    fn a_refusal_in_every_convention() {
        let gcra = Gcra::new(&ThrottleSettings::new(0.5, 3).unwrap());
        let outcome = Outcome {
            admitted: false,
            bucket: 0,
            remaining: 0,
            retry_after_nanos: 1_000_000_001,
            full_after_nanos: 6_000_000_000,
        };
        assert_eq!(retry_after(&outcome), "2");
        let info = RateLimitInfo::refusal(policy(Level::Stage, &gcra, &outcome));
        let mut headers = HeaderMap::new();
        info.write(RateLimitHeaders::Both, &mut headers);
        assert_eq!(headers["ratelimit-policy"], "\"stage\";q=3;w=6");
        assert_eq!(headers["ratelimit"], "\"stage\";r=0;t=6");
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        assert_eq!(headers["x-ratelimit-reset"], "6");
        let mut headers = HeaderMap::new();
        info.write(RateLimitHeaders::Trio, &mut headers);
        assert_eq!(headers["ratelimit-limit"], "3");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert_eq!(headers["ratelimit-reset"], "6");
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let outcome = Outcome {
            admitted: false,
            bucket: 0,
            remaining: 0,
            retry_after_nanos: 1,
            full_after_nanos: 1,
        };
        assert_eq!(retry_after(&outcome), "1");
    }
}
