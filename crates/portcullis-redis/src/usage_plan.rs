//! A key's throttle and quota decided together, in one round trip.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use portcullis_core::ResponseBody;
use portcullis_core::future::ResponseFuture;
use portcullis_quota::QuotaLayer;
use portcullis_quota::store::Decision;
use portcullis_throttle::ThrottleLayer;
use portcullis_throttle::store::{Outcome, ThrottleStoreError};
use tower_layer::Layer;
use tower_service::Service;

use crate::connection::RedisConnection;
use crate::quota::{QuotaCall, RedisQuotaStore};
use crate::scripts::combined_script;
use crate::throttle::{Bucket, RedisThrottleStore, decode_outcome, refund};
use crate::{ScriptClock, record_call};

/// API Gateway's usage plan (throttle, then quota) as one Tower layer over
/// Redis: a request's throttle buckets and its quota are decided by **one**
/// Lua script, in one network round trip, instead of one script per layer.
///
/// It takes a configured [`ThrottleLayer`] and [`QuotaLayer`] on the Redis
/// stores, and uses them for everything but the store call: which buckets
/// apply (keys, plans, per-method limits, run-time overrides through the
/// [`ThrottleHandle`](portcullis_throttle::ThrottleHandle)), the quota
/// period (clock, calendar, plan starts), the rate-limit headers, the
/// refusals, the metrics and each layer's failure policy. Use it in place of
/// the two layers, after the API-key layer; the [`QuotaLayer`]'s usage API
/// (GetUsage, UpdateUsage) works unchanged on the same store.
///
/// ```no_run
/// use portcullis_quota::QuotaLayer;
/// use portcullis_redis::{RedisConfig, RedisQuotaStore, RedisThrottleStore, RedisUsagePlanLayer};
/// use portcullis_throttle::ThrottleLayer;
///
/// # async fn run() -> Result<(), redis::RedisError> {
/// let config = RedisConfig::single("redis://127.0.0.1:6379");
/// let throttle = ThrottleLayer::new("a1b2c3d4e5", "prod")
///     .with_store(RedisThrottleStore::connect(&config).await?);
/// let quota = QuotaLayer::with_store(RedisQuotaStore::connect(&config).await?);
/// let usage_plan = RedisUsagePlanLayer::new(throttle, quota);
/// # let _ = usage_plan;
/// # Ok(()) }
/// ```
///
/// # Order and what a refusal costs
///
/// The script runs the throttle script's logic first, then the quota
/// script's, both unchanged (the same files the stores run alone), so the
/// decisions are exactly those of the two layers one after the other:
///
/// - a **throttled** request (429 `THROTTLED`) takes no token from any
///   bucket and consumes **no quota**;
/// - a request the **quota refuses** (429 `QUOTA_EXCEEDED`) has taken one
///   token from each of its throttle buckets (key, stage, account), as it
///   does when the two layers run one after the other, and as API Gateway,
///   which checks the throttle before the quota, also counts it.
///
/// # Round trips
///
/// - **Single Redis**: one script, one round trip, whatever buckets apply.
///   The first time a key is counted in a plan, one more call lists it for
///   GetUsage (once per key, not per request).
/// - **Redis Cluster**: a key's own buckets and its quota share the hash tag
///   `{apikey:<hex key id>}`, so they are decided by one script on one node.
///   Shared levels (the stage's per-method limits, the account) live in a
///   slot of their own: a request that has one pays a first call for them,
///   then the script for the key's buckets and quota (two round trips), and
///   a third call to give the shared tokens back when the key's bucket then
///   refuses. A throttle keyed by something other than the API key (a
///   principal, an IP) is in another slot too and is decided the same way.
///   Without shared levels, Cluster is one round trip too.
///
/// # Failures
///
/// The call has the connection's deadline (20 ms by default). When it
/// fails, the throttle layer's policy applies first (`on_store_error(OnStoreError::Refuse)`
/// answers 500), then the quota layer's (`OnStoreError::Refuse` answers
/// 500); with both open the request is served. Failures are counted in
/// `portcullis_redis_call_errors_total{store="usage_plan"}` and in each layer's
/// own counters, and traced.
#[derive(Clone)]
#[must_use]
pub struct RedisUsagePlanLayer {
    parts: Arc<Parts>,
}

struct Parts {
    throttle: ThrottleLayer<RedisThrottleStore>,
    quota: QuotaLayer<RedisQuotaStore>,
}

impl fmt::Debug for RedisUsagePlanLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUsagePlanLayer")
            .field("throttle", &self.parts.throttle)
            .field("quota", &self.parts.quota)
            .finish()
    }
}

impl RedisUsagePlanLayer {
    /// One layer deciding `throttle` and `quota` together. The two stores
    /// should be on the same Redis deployment and key prefix (the script
    /// runs on the throttle store's connection).
    pub fn new(
        throttle: ThrottleLayer<RedisThrottleStore>,
        quota: QuotaLayer<RedisQuotaStore>,
    ) -> Self {
        Self {
            parts: Arc::new(Parts { throttle, quota }),
        }
    }

    /// The throttle layer (its [`handle`](ThrottleLayer::handle) changes
    /// rates at run time).
    pub fn throttle(&self) -> &ThrottleLayer<RedisThrottleStore> {
        &self.parts.throttle
    }

    /// The quota layer (its [`usage_api`](QuotaLayer::usage_api) serves
    /// GetUsage and UpdateUsage).
    pub fn quota(&self) -> &QuotaLayer<RedisQuotaStore> {
        &self.parts.quota
    }
}

impl<S> Layer<S> for RedisUsagePlanLayer {
    type Service = RedisUsagePlan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RedisUsagePlan {
            inner,
            parts: Arc::clone(&self.parts),
        }
    }
}

/// The service [`RedisUsagePlanLayer`] makes.
pub struct RedisUsagePlan<S> {
    inner: S,
    parts: Arc<Parts>,
}

impl<S: Clone> Clone for RedisUsagePlan<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            parts: Arc::clone(&self.parts),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RedisUsagePlan<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUsagePlan")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> RedisUsagePlan<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RedisUsagePlan<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    /// Core's response future: the inner future run in place when no plan
    /// applies, else the Redis round trip and then the inner service, boxed.
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let parts = &*self.parts;
        let store = parts.throttle.store();
        let throttle = parts
            .throttle
            .resolve(&request, |checks, now| (store.buckets(checks), now));
        let quota = parts.quota.resolve(&request);
        if throttle.is_none() && quota.is_none() {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let call = quota
            .as_ref()
            .map(|plan| parts.quota.store().prepare("consume", &plan.request(), 0));
        let (buckets, now, throttle) = match throttle {
            Some(((buckets, now), plan)) => (buckets, now, Some(plan)),
            None => (Vec::new(), 0, None),
        };
        let connection = store.connection().clone();
        let time = store.time();
        // The ready service goes with the request; this one keeps a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::waiting(Box::pin(async move {
            let started = Instant::now();
            let result = decide(connection, buckets, time, now, call).await;
            record_call("usage_plan", started, result.as_ref().err());
            // Each layer's rate-limit policy, merged as a stack of the two
            // layers merges them: one set of headers describes both.
            let mut throttle_policy = None;
            if let Some(plan) = throttle {
                let answer = match &result {
                    Ok(combined) => combined.throttle.ok_or_else(|| {
                        ThrottleStoreError::msg("the usage-plan script gave no throttle answer")
                    }),
                    Err(error) => Err(ThrottleStoreError::msg(error.to_string())),
                };
                match plan.conclude_rate_limit(answer, &request) {
                    Ok(policy) => throttle_policy = policy,
                    Err(refusal) => return Ok(*refusal),
                }
            }
            let mut quota_policy = None;
            if let Some(plan) = quota {
                let missing = ThrottleStoreError::msg("the usage-plan script gave no quota answer");
                let answer: Result<Decision, &(dyn std::error::Error + 'static)> = match &result {
                    Ok(Combined {
                        quota: Some(decision),
                        ..
                    }) => Ok(*decision),
                    Ok(_) => Err(&missing),
                    Err(error) => Err(error),
                };
                match plan.conclude_rate_limit(answer, &request) {
                    Ok(policy) => quota_policy = policy,
                    Err(refusal) => {
                        // The quota's 429 names the throttle's policy too.
                        let mut refusal = *refusal;
                        if let Some((info, style)) = throttle_policy {
                            info.apply(style, &mut refusal);
                        }
                        return Ok(refusal);
                    }
                }
            }
            let response = inner.call(request).await?;
            let mut response = response.map(ResponseBody::inner);
            // Inside out, as the layers would: the quota's policy, then the
            // throttle's before it.
            if let Some((info, style)) = quota_policy {
                info.apply(style, &mut response);
            }
            if let Some((info, style)) = throttle_policy {
                info.apply(style, &mut response);
            }
            Ok(response)
        }))
    }
}

/// What the store decided: the throttle's outcome (when buckets applied and
/// were decided) and the quota's decision (when a quota applied and the
/// throttle admitted).
#[derive(Clone, Copy, Debug)]
struct Combined {
    throttle: Option<Outcome>,
    quota: Option<Decision>,
}

/// The hash tag of a key: what Redis Cluster hashes.
fn tag(key: &str) -> &str {
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map_or(key, |(tag, _)| tag)
}

/// The reply of `usage_plan.lua`: the throttle's held and code (as
/// `throttle_acquire.lua`'s), then the quota's decided, admitted, remaining
/// and is-new.
type Reply = (u64, u64, i64, i64, i64, i64);

/// One `usage_plan.lua` call: `own` buckets (all in the quota's slot on
/// Cluster) and the quota.
async fn run_combined(
    mut connection: RedisConnection,
    own: &[Bucket],
    time: ScriptClock,
    now: u64,
    quota: Option<&QuotaCall>,
) -> Result<Combined, ThrottleStoreError> {
    let mut invocation = combined_script().call();
    for bucket in own {
        invocation.key(&bucket.key);
    }
    if let Some(quota) = quota {
        invocation.key(&quota.keys[0]).key(&quota.keys[1]);
    }
    invocation
        .arg(own.len())
        .arg(if quota.is_some() { "1" } else { "0" });
    if !own.is_empty() {
        match time {
            ScriptClock::Redis => invocation.arg("r").arg(0).arg(0),
            ScriptClock::Caller => invocation
                .arg("c")
                .arg(now / 1_000_000_000)
                .arg(now % 1_000_000_000),
        };
        for bucket in own {
            invocation.arg(bucket.packed().as_slice());
        }
    }
    if let Some(quota) = quota {
        for arg in &quota.args {
            invocation.arg(arg);
        }
    }
    let (held, code, decided, q_admitted, q_remaining, q_new): Reply = invocation
        .invoke(&mut connection)
        .await
        .map_err(ThrottleStoreError::new)?;
    let throttle = if own.is_empty() {
        None
    } else {
        Some(decode_outcome(held, code, own, "usage-plan")?)
    };
    let quota_decision = (decided == 1).then(|| Decision {
        admitted: q_admitted == 1,
        remaining: u64::try_from(q_remaining).unwrap_or(0),
    });
    if let Some(quota) = quota.filter(|_| q_new == 1) {
        quota
            .index_new_key(&mut connection)
            .await
            .map_err(ThrottleStoreError::new)?;
    }
    Ok(Combined {
        throttle,
        quota: quota_decision,
    })
}

async fn decide(
    connection: RedisConnection,
    buckets: Vec<Bucket>,
    time: ScriptClock,
    now: u64,
    quota: Option<QuotaCall>,
) -> Result<Combined, ThrottleStoreError> {
    let cluster = connection.is_cluster();
    let Some(quota) = quota else {
        let outcome = RedisThrottleStore::decide(connection, buckets, time, now, cluster).await?;
        return Ok(Combined {
            throttle: Some(outcome),
            quota: None,
        });
    };
    let slot = tag(&quota.keys[0]).to_owned();
    if !cluster || buckets.iter().all(|b| tag(&b.key) == slot) {
        return run_combined(connection, &buckets, time, now, Some(&quota)).await;
    }
    // Cluster, with buckets in other slots (shared levels, or a throttle not
    // keyed by the API key): those first, all or nothing, then the key's
    // buckets with the quota in one script.
    let (own, others): (Vec<Bucket>, Vec<Bucket>) =
        buckets.into_iter().partition(|b| tag(&b.key) == slot);
    let first =
        RedisThrottleStore::decide(connection.clone(), others.clone(), time, now, true).await?;
    if !first.admitted {
        return Ok(Combined {
            throttle: Some(first),
            quota: None,
        });
    }
    let mut combined = run_combined(connection.clone(), &own, time, now, Some(&quota)).await?;
    match combined.throttle {
        Some(second) if !second.admitted => {
            // Give the other slots their tokens back, one slot at a time.
            let mut groups: Vec<Vec<Bucket>> = Vec::new();
            for bucket in others {
                match groups
                    .iter_mut()
                    .find(|g| tag(&g[0].key) == tag(&bucket.key))
                {
                    Some(group) => group.push(bucket),
                    None => groups.push(vec![bucket]),
                }
            }
            for group in &groups {
                refund(connection.clone(), group, time, now).await?;
            }
        }
        Some(second) => {
            // Report the bucket with the fewest tokens left, the first such.
            if first.remaining < second.remaining {
                combined.throttle = Some(first);
            }
        }
        None => combined.throttle = Some(first),
    }
    Ok(combined)
}
