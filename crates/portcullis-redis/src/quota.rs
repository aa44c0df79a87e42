//! The quota store on Redis: counters and usage records per usage plan and
//! API key, counted by one server-side script.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use portcullis_core::plan::QuotaPeriod;
use portcullis_quota::store::{
    Answer, DEFAULT_RETENTION_DAYS, DayUsage, Decision, QuotaRequest, QuotaStore, UsageUpdate,
};
use redis::AsyncCommands;
use time::Date;

use crate::config::RedisConfig;
use crate::connection::RedisConnection;
use crate::record_call;
use crate::scripts::script;

/// Quota counters and usage records in Redis or Redis Cluster, shared by
/// every replica.
///
/// # Exactness
///
/// Each request is counted by one Lua script (`quota.lua`, loaded when the
/// connection is made, called by SHA, and sent whole in one `EVAL` to a
/// server that answers `NOSCRIPT`) that reads what remains of the key's
/// period, admits the request only if something remains, and decrements in
/// the same atomic step. Redis runs scripts one at a time, so never more than
/// the limit is admitted in a period, whatever the number of replicas, and a
/// refused request changes nothing. The script mirrors the in-memory store
/// of `portcullis-quota` rule for rule (periods, `offset` in the initial
/// period, usage records, plan changes, updates); the conformance test runs
/// both on the same workload and requires the same answers.
///
/// # Keys
///
/// Per plan and key, a state hash and a usage-record hash share the hash tag
/// `{apikey:<hex key id>}`, the tag of the key's throttle buckets in
/// [`RedisThrottleStore`](crate::RedisThrottleStore), so one script touches
/// one Cluster slot, and [`RedisUsagePlanLayer`](crate::RedisUsagePlanLayer)
/// decides a key's throttle and quota in one script on Cluster too.
/// The set of a plan's keys (for GetUsage over all keys) lives under its own
/// tag and is written once per key, the first time the key is counted: one
/// extra round trip per key, not per request.
///
/// # Time and memory
///
/// Periods are computed by the layer from its clock, as with the in-memory
/// store; replicas whose clocks disagree by `d` disagree about a period
/// boundary for `d`, and a key never moves back to an earlier day or period.
/// Every key expires at the end of its period plus the usage retention (90
/// days by default), so quiet keys cost nothing.
#[derive(Clone, Debug)]
pub struct RedisQuotaStore {
    connection: RedisConnection,
    prefix: String,
    retention_days: u32,
}

/// A Redis quota store failed (a network error, a timeout, a script error).
#[derive(Debug, thiserror::Error)]
#[error("redis quota store: {0}")]
pub struct RedisQuotaError(#[from] redis::RedisError);

const DAY_SECONDS: i64 = 86_400;

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    crate::push_hex(&mut out, bytes);
    out
}

fn kind_of(period: QuotaPeriod) -> u8 {
    match period {
        QuotaPeriod::Day => 0,
        QuotaPeriod::Week => 1,
        QuotaPeriod::Month => 2,
    }
}

/// The reply of `quota.lua`: admitted, remaining, is_new, day, used today.
type Reply = (i64, i64, i64, i64, i64);

/// The usage records (Julian day, "used:remaining") and today's live
/// `[day, base, rem]`.
type UsageReply = (Vec<(i64, String)>, Vec<Option<i64>>);

impl RedisQuotaStore {
    /// Connects with `config`, keeping usage records for 90 days.
    ///
    /// # Errors
    ///
    /// As [`RedisConfig::connect`], and a key prefix must not contain `{` or `}`.
    pub async fn connect(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        crate::check_prefix(config.prefix())?;
        Ok(Self::new(config.connect().await?, config.prefix()))
    }

    /// A store on an established connection, writing keys under `prefix`.
    pub fn new(connection: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }

    /// Keeps usage records for `days` days before today.
    #[must_use]
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    fn keys_of(&self, plan_id: &str, key_id: &str) -> (String, String) {
        // The hash tag is the API key's, as the throttle store's key-level
        // buckets use, so a key's buckets and quota share one Cluster slot
        // and the combined usage-plan script touches one slot.
        let tag = format!(
            "{}:q:{{apikey:{}}}:{}",
            self.prefix,
            hex(key_id.as_bytes()),
            hex(plan_id.as_bytes())
        );
        (format!("{tag}:state"), format!("{tag}:usage"))
    }

    fn index_of(&self, plan_id: &str) -> String {
        format!("{}:qk:{{qk:{}}}", self.prefix, hex(plan_id.as_bytes()))
    }

    /// The keys and arguments of one `quota.lua` call.
    pub(crate) fn prepare(
        &self,
        op: &'static str,
        request: &QuotaRequest<'_>,
        value: u64,
    ) -> QuotaCall {
        let (state, usage) = self.keys_of(request.plan_id, request.key_id);
        let expire_at = request
            .window
            .end()
            .saturating_add(i64::from(self.retention_days).saturating_add(1) * DAY_SECONDS);
        let args = [
            op.to_owned(),
            request.window.start().to_string(),
            request.window.end().to_string(),
            request.day.to_julian_day().to_string(),
            request.quota.limit().to_string(),
            kind_of(request.quota.period()).to_string(),
            request.quota.offset().to_string(),
            request
                .initial_window
                .map(|w| w.start().to_string())
                .unwrap_or_default(),
            self.retention_days.to_string(),
            expire_at.to_string(),
            value.to_string(),
        ];
        QuotaCall {
            keys: [state, usage],
            args,
            index: self.index_of(request.plan_id),
            key_id: request.key_id.to_owned(),
        }
    }

    fn call(
        &self,
        op: &'static str,
        request: &QuotaRequest<'_>,
        value: u64,
    ) -> impl Future<Output = Result<Reply, RedisQuotaError>> + Send + 'static {
        let call = self.prepare(op, request, value);
        let mut connection = self.connection.clone();
        async move {
            let started = Instant::now();
            let mut invocation = script().call();
            invocation.key(&call.keys[0]).key(&call.keys[1]);
            for arg in &call.args {
                invocation.arg(arg);
            }
            let result: Result<Reply, redis::RedisError> = invocation.invoke(&mut connection).await;
            let result = match result {
                Ok(reply) if reply.2 == 1 => {
                    call.index_new_key(&mut connection).await.map(|()| reply)
                }
                other => other,
            };
            record_call("quota", started, result.as_ref().err());
            result.map_err(RedisQuotaError::from)
        }
    }
}

/// One `quota.lua` call, owned: its two keys (state, usage records), its
/// arguments, and what to write the first time a key is seen.
#[derive(Clone, Debug)]
pub(crate) struct QuotaCall {
    pub(crate) keys: [String; 2],
    pub(crate) args: [String; 11],
    index: String,
    key_id: String,
}

impl QuotaCall {
    /// Lists a key seen for the first time in its plan's key set, for
    /// GetUsage over all keys: one extra call per key, not per request.
    pub(crate) async fn index_new_key(
        &self,
        connection: &mut RedisConnection,
    ) -> Result<(), redis::RedisError> {
        connection
            .sadd::<_, _, i64>(&self.index, &self.key_id)
            .await
            .map(|_| ())
    }
}

fn day_of(julian: i64) -> Date {
    i32::try_from(julian)
        .ok()
        .and_then(|j| Date::from_julian_day(j).ok())
        .unwrap_or(Date::MIN)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The future of a Redis quota decision.
pub type ConsumeFuture = Pin<Box<dyn Future<Output = Result<Decision, RedisQuotaError>> + Send>>;

impl QuotaStore for RedisQuotaStore {
    type Error = RedisQuotaError;
    type Future = ConsumeFuture;

    fn consume(
        &self,
        request: &QuotaRequest<'_>,
    ) -> Answer<Result<Decision, Self::Error>, Self::Future> {
        let call = self.call("consume", request, 0);
        Answer::Pending(Box::pin(async move {
            let (admitted, remaining, ..) = call.await?;
            Ok(Decision {
                admitted: admitted == 1,
                remaining: count(remaining),
            })
        }))
    }

    fn update(
        &self,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
    ) -> impl Future<Output = Result<DayUsage, Self::Error>> + Send {
        let (op, value) = match update {
            UsageUpdate::Extend(n) => ("extend", n),
            UsageUpdate::SetRemaining(n) => ("set", n),
            _ => ("reset", 0),
        };
        let call = self.call(op, request, value);
        async move {
            let (_, remaining, _, day, used) = call.await?;
            Ok(DayUsage {
                day: day_of(day),
                used: count(used),
                remaining: count(remaining),
            })
        }
    }

    fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, Self::Error>> + Send {
        let (state, usage) = self.keys_of(plan_id, key_id);
        let mut connection = self.connection.clone();
        async move {
            let started = Instant::now();
            let result: Result<UsageReply, redis::RedisError> = redis::pipe()
                .atomic()
                .hgetall(&usage)
                .cmd("HMGET")
                .arg(&state)
                .arg("day")
                .arg("base")
                .arg("rem")
                .query_async(&mut connection)
                .await;
            record_call("quota", started, result.as_ref().err());
            let (records, live) = result?;
            let mut days: Vec<DayUsage> = records
                .into_iter()
                .filter_map(|(day, value)| {
                    let (used, remaining) = value.split_once(':')?;
                    Some(DayUsage {
                        day: day_of(day),
                        used: used.parse().ok()?,
                        remaining: remaining.parse().ok()?,
                    })
                })
                .collect();
            if let [Some(day), Some(base), Some(rem)] = live[..] {
                days.push(DayUsage {
                    day: day_of(day),
                    used: count(base.saturating_sub(rem)),
                    remaining: count(rem),
                });
            }
            days.retain(|r| from <= r.day && r.day <= to);
            days.sort_by_key(|r| r.day);
            Ok(days)
        }
    }

    fn keys(&self, plan_id: &str) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send {
        let index = self.index_of(plan_id);
        let mut connection = self.connection.clone();
        async move {
            let mut keys: Vec<String> = connection.smembers(index).await?;
            keys.sort_unstable();
            Ok(keys)
        }
    }
}
