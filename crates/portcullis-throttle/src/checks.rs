//! [`ThrottleChecks`]: a request's bucket checks, resolved by
//! [`ThrottleLayer::resolve`] for a store that decides them together with
//! other work.

use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use portcullis_core::ResponseBody;
use portcullis_core::ratelimit::RateLimitInfo;

use crate::decision::{Checked, Decider, EMPTY_CHECK, Verdict, no_limit, push};
use crate::gcra::Gcra;
use crate::headers::RateLimitHeaders;
use crate::key::RequestHead;
use crate::layer::ThrottleLayer;
use crate::route::{PathSlot, bucket_checks};
use crate::store::{BucketCheck, Level, Outcome, ThrottleStoreError};

/// A request's throttle checks, resolved by a [`ThrottleLayer`] for a store
/// that decides them together with other work (such as `portcullis-redis`'s
/// combined usage-plan layer, which decides the throttle and the quota in one
/// round trip), and how to conclude once that store has answered.
///
/// Made by [`ThrottleLayer::resolve`].
#[derive(Clone, Debug)]
pub struct ThrottleChecks {
    decider: Decider,
}

impl ThrottleChecks {
    /// What the layer would do with `result`: `Ok` with the rate-limit
    /// headers to add to the inner service's response (when the layer writes
    /// them on success), or `Err` with the refusal (429 `THROTTLED`, or 500
    /// when the store failed and the layer fails closed). Counts and traces
    /// the decision as the layer does.
    ///
    /// # Errors
    ///
    /// The refusal, as a response ready to send.
    pub fn conclude<ReqBody, ResBody>(
        &self,
        result: Result<Outcome, ThrottleStoreError>,
        request: &Request<ReqBody>,
    ) -> Result<Option<HeaderMap>, Box<Response<ResponseBody<ResBody>>>> {
        match self.decider.conclude(result, request) {
            Verdict::Admit(headers) => Ok(headers.map(|success| {
                let mut map = HeaderMap::new();
                success.info.write(success.style, &mut map);
                map
            })),
            Verdict::Reject(response) => Err(response),
        }
    }

    /// As [`conclude`](Self::conclude), but an admitted request's rate-limit
    /// policy comes unwritten, with the convention the layer writes it in:
    /// for a caller that merges it with another layer's policies into one
    /// set of headers ([`RateLimitInfo::apply`], applied after the policies
    /// of the layers inside), as a stack of layers does.
    ///
    /// # Errors
    ///
    /// The refusal, as a response ready to send (its policy is in its
    /// extensions, for a layer outside to merge into).
    pub fn conclude_rate_limit<ReqBody, ResBody>(
        &self,
        result: Result<Outcome, ThrottleStoreError>,
        request: &Request<ReqBody>,
    ) -> Result<Option<Policy>, Box<Response<ResponseBody<ResBody>>>> {
        match self.decider.conclude(result, request) {
            Verdict::Admit(headers) => Ok(headers.map(|success| (success.info, success.style))),
            Verdict::Reject(response) => Err(response),
        }
    }
}

/// An admitted request's rate-limit policy and the convention to write it
/// in.
type Policy = (RateLimitInfo, RateLimitHeaders);

impl<St> ThrottleLayer<St> {
    /// Resolves `request`'s buckets exactly as the layer's service does, and
    /// hands them with the layer's clock reading to `decide`, which must copy
    /// what it needs (a networked store starts its call there). `None` when
    /// no bucket applies: the layer would admit the request untouched.
    ///
    /// This is for a store that decides the throttle together with other
    /// work in one call; a plain store needs none of it (use the layer).
    pub fn resolve<ReqBody, R>(
        &self,
        request: &Request<ReqBody>,
        decide: impl FnOnce(&[BucketCheck<'_>], u64) -> R,
    ) -> Option<(R, ThrottleChecks)> {
        let config = &*self.config;
        let span = portcullis_core::layer_span!("throttle");
        let entered = span.enter();
        let head = RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        };
        let mut checks = [EMPTY_CHECK; 3];
        let mut checked = Checked {
            levels: [(Level::Account, Gcra::PLACEHOLDER); 3],
            len: 0,
        };
        let resolved = config.key_by.resolve(&head);
        let path = PathSlot::new();
        let (key_check, stage_check, account_check) =
            bucket_checks(config, &self.handle, resolved.as_ref(), &head, &path);
        let path_refusal = path.get().and_then(|path| path.as_ref().err().copied());
        for check in [key_check, stage_check, account_check]
            .into_iter()
            .flatten()
        {
            push(&mut checked, check, &mut checks);
        }
        if checked.len == 0 && path_refusal.is_none() {
            no_limit(&span);
            return None;
        }
        let now = self.clock.now_unix_nanos();
        let answer = decide(&checks[..checked.len], now);
        drop(entered);
        Some((
            answer,
            ThrottleChecks {
                decider: Decider {
                    config: Arc::clone(&self.config),
                    checked,
                    path_refusal,
                    span,
                },
            },
        ))
    }
}
