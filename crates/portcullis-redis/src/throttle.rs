//! The throttle store on Redis: every bucket of a request decided by one
//! server-side script.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use portcullis_throttle::ThrottleStore;
use portcullis_throttle::store::{Answer, BucketCheck, Level, Outcome, ThrottleStoreError};

use crate::config::RedisConfig;
use crate::connection::RedisConnection;
use crate::script::{Lua, LuaCall};
use crate::scripts::{acquire_script, refund_script};
use crate::{ScriptClock, record_call};

/// The most buckets one request may touch (the layer sends at most three).
pub(crate) const MAX_BUCKETS: usize = 8;

/// Refuses a request that touches more than [`MAX_BUCKETS`] buckets, before
/// any work: both Redis throttle stores check this first.
pub(crate) fn check_bucket_count(checks: &[BucketCheck<'_>]) -> Result<(), ThrottleStoreError> {
    if checks.len() > MAX_BUCKETS {
        return Err(ThrottleStoreError::msg(format!(
            "{} buckets in one request; at most {MAX_BUCKETS}",
            checks.len()
        )));
    }
    Ok(())
}

/// Throttle buckets in Redis or Redis Cluster, shared by every replica.
///
/// # One round trip
///
/// A request's buckets are decided together by one Lua script
/// (`throttle_acquire.lua`), loaded when the connection is made and then
/// called by its SHA with `EVALSHA`; when a server answers `NOSCRIPT` (after
/// a restart or a failover) the whole script is sent in one `EVAL`, so the
/// decision is still one command.
///
/// # Keys and Cluster slots
///
/// A key-level bucket is stored under `{prefix}:t:{<caller>}:<bucket>`, whose
/// hash tag is the caller (`apikey:<hex of the key id>`), so all of one
/// caller's buckets live in one slot and one script touches them together.
/// The shared levels (a stage's per-method limits, the account) are stored
/// under the hash tag `{<prefix>:shared}`, in one slot of their own.
///
/// On a single server every bucket of a request is decided in one script,
/// one round trip. On Cluster, a request that touches both a key bucket and a
/// shared bucket needs two: its key buckets first, then the shared ones; if
/// the shared ones refuse, a third call gives the key buckets their tokens
/// back. Between those calls another request can see the key bucket one
/// token short, so on Cluster the all-or-nothing rule holds for the final
/// state but not for every instant. The shared slot is also one node's work
/// for every request that has a shared level: configure stage and account
/// limits on Cluster only where that node can take the load.
///
/// # Time
///
/// By default ([`ScriptClock::Redis`]) the script reads Redis's own `TIME`,
/// so replicas whose clocks disagree still share one clock. With
/// [`ScriptClock::Caller`] it uses the time the layer passes (its `Clock`),
/// which tests use to drive the store with a manual clock.
///
/// # Storage
///
/// Each bucket is one hash (see `lua/throttle_common.lua`): one packed field
/// (`b`) holds the TAT, the tokens outstanding in replicas' leases
/// ([`LeasedThrottleStore`](crate::LeasedThrottleStore)) and the expiry last
/// set, read with one `HGET` and written with one `HSET`; leased tokens count
/// as taken. A bucket expires once it would be full again and no lease is
/// out; `PEXPIRE` is sent only when the key must live longer than its
/// current expiry, and then with slack (twice what is needed plus 1 s), so a
/// hot key is not re-expired on every call. A full bucket carries no
/// information, so expiring it loses nothing.
#[derive(Clone, Debug)]
pub struct RedisThrottleStore {
    connection: RedisConnection,
    prefix: String,
    time: ScriptClock,
}

/// One bucket, owned, ready to send.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    pub(crate) key: String,
    pub(crate) index: usize,
    pub(crate) t: u64,
    pub(crate) tau: u64,
    pub(crate) cap: u64,
}

impl Bucket {
    /// The bucket's parameters as the scripts read them: t, tau and cap as
    /// three little-endian doubles (struct `<ddd`), one argument. (Redis
    /// parses numbers sent as text with `strtod`, which costs a script more
    /// than a command does.) Like the text form, a double holds them
    /// exactly below 2^53 ns (104 days).
    pub(crate) fn packed(&self) -> [u8; 24] {
        let mut out = [0; 24];
        for (slot, value) in out.chunks_exact_mut(8).zip([self.t, self.tau, self.cap]) {
            #[allow(clippy::cast_precision_loss)] // exact below 2^53 ns, as documented
            slot.copy_from_slice(&(value as f64).to_le_bytes());
        }
        out
    }

    /// Whether this is a shared level's bucket (stage, account), in the
    /// shared slot.
    pub(crate) fn is_shared(&self) -> bool {
        self.key.contains(":shared}:")
    }
}

impl RedisThrottleStore {
    /// Connects with `config`.
    ///
    /// # Errors
    ///
    /// As [`RedisConfig::connect`], and a key prefix must not contain `{` or `}`
    /// (they would break the hash tags).
    pub async fn connect(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        crate::check_prefix(config.prefix())?;
        Ok(Self::new(config.connect().await?, config.prefix()))
    }

    /// A store on an established connection, writing keys under `prefix`.
    pub fn new(connection: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
            time: ScriptClock::Redis,
        }
    }

    /// Where the script takes the time from (default [`ScriptClock::Redis`]).
    #[must_use]
    pub fn script_clock(mut self, time: ScriptClock) -> Self {
        self.time = time;
        self
    }

    fn redis_key(&self, check: &BucketCheck<'_>) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 64);
        write_key(&self.prefix, check, &mut key);
        key
    }

    pub(crate) fn buckets(&self, checks: &[BucketCheck<'_>]) -> Vec<Bucket> {
        checks
            .iter()
            .enumerate()
            .map(|(index, check)| {
                let t = check.gcra.emission_interval_nanos();
                let cap = check.gcra.capacity_nanos();
                Bucket {
                    key: self.redis_key(check),
                    index,
                    t,
                    tau: cap.saturating_sub(t),
                    cap,
                }
            })
            .collect()
    }
}

/// Writes the Redis key of `check`'s bucket under `prefix` (see
/// [`RedisThrottleStore`]'s "Keys and Cluster slots").
pub(crate) fn write_key(prefix: &str, check: &BucketCheck<'_>, key: &mut String) {
    key.push_str(prefix);
    key.push_str(":t:{");
    match (check.key.level, check.key.caller) {
        (Level::Key, Some(caller)) => {
            key.push_str(caller.source.as_str());
            key.push(':');
            crate::push_hex(key, caller.value);
        }
        _ => {
            key.push_str(prefix);
            key.push_str(":shared");
        }
    }
    key.push_str("}:");
    check.key.write_canonical(key);
}

pub(crate) fn invocation<'a>(
    script: &'a Lua,
    buckets: &[Bucket],
    time: ScriptClock,
    now_unix_nanos: u64,
) -> LuaCall<'a> {
    let mut invocation = script.call();
    for bucket in buckets {
        invocation.key(&bucket.key);
    }
    match time {
        ScriptClock::Redis => invocation.arg("r").arg(0).arg(0),
        ScriptClock::Caller => invocation
            .arg("c")
            .arg(now_unix_nanos / 1_000_000_000)
            .arg(now_unix_nanos % 1_000_000_000),
    };
    for bucket in buckets {
        invocation.arg(bucket.packed().as_slice());
    }
    invocation
}

/// The reply of `throttle_acquire.lua`: one integer, `held * 16 + code`, or
/// `[held, code]` when `held` is too large for that integer.
pub(crate) fn split_reply(reply: &redis::Value) -> Option<(u64, u64)> {
    match reply {
        redis::Value::Int(packed) => {
            let packed = u64::try_from(*packed).ok()?;
            Some((packed >> 4, packed & 15))
        }
        redis::Value::Array(parts) => match parts.as_slice() {
            [redis::Value::Int(held), redis::Value::Int(code)] => {
                Some((u64::try_from(*held).ok()?, u64::try_from(*code).ok()?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The outcome `throttle_acquire.lua` reported for `buckets`: `code` is
/// `bucket * 2 + admitted`, `held` the decided bucket's debt plus leased
/// tokens in ns (its time until full); the tokens left and the retry after
/// follow from the bucket's parameters, which the script no longer sends
/// back.
pub(crate) fn decode_outcome(
    held: u64,
    code: u64,
    buckets: &[Bucket],
    script: &str,
) -> Result<Outcome, ThrottleStoreError> {
    let local = usize::try_from(code >> 1)
        .ok()
        .and_then(|i| buckets.get(i))
        .ok_or_else(|| ThrottleStoreError::msg(format!("the {script} script named no bucket")))?;
    let admitted = code & 1 == 1;
    let (remaining, retry) = if admitted {
        let left = local.cap.saturating_sub(held) / local.t.max(1);
        (u32::try_from(left).unwrap_or(u32::MAX), 0)
    } else {
        (0, held.saturating_sub(local.tau))
    };
    Ok(Outcome {
        admitted,
        bucket: local.index,
        remaining,
        retry_after_nanos: retry,
        full_after_nanos: held,
    })
}

pub(crate) async fn run_acquire(
    mut connection: RedisConnection,
    buckets: &[Bucket],
    time: ScriptClock,
    now: u64,
) -> Result<Outcome, ThrottleStoreError> {
    let reply: redis::Value = invocation(acquire_script(), buckets, time, now)
        .invoke(&mut connection)
        .await
        .map_err(ThrottleStoreError::new)?;
    let (held, code) = split_reply(&reply).ok_or_else(|| {
        ThrottleStoreError::msg("the throttle script answered an unexpected reply")
    })?;
    decode_outcome(held, code, buckets, "throttle")
}

impl RedisThrottleStore {
    pub(crate) async fn decide(
        connection: RedisConnection,
        buckets: Vec<Bucket>,
        time: ScriptClock,
        now: u64,
        cluster: bool,
    ) -> Result<Outcome, ThrottleStoreError> {
        if !cluster {
            return run_acquire(connection, &buckets, time, now).await;
        }
        // On Cluster, one script per hash slot: the caller's buckets, then the
        // shared ones.
        let (own, shared): (Vec<Bucket>, Vec<Bucket>) =
            buckets.into_iter().partition(|b| !b.is_shared());
        if own.is_empty() || shared.is_empty() {
            let all = if own.is_empty() { shared } else { own };
            return run_acquire(connection, &all, time, now).await;
        }
        let first = run_acquire(connection.clone(), &own, time, now).await?;
        if !first.admitted {
            return Ok(first);
        }
        let second = run_acquire(connection.clone(), &shared, time, now).await?;
        if second.admitted {
            // Report the bucket with the fewest tokens left, the first such.
            return Ok(if second.remaining < first.remaining {
                second
            } else {
                first
            });
        }
        refund(connection, &own, time, now).await?;
        Ok(second)
    }

    pub(crate) fn connection(&self) -> &RedisConnection {
        &self.connection
    }

    pub(crate) fn time(&self) -> ScriptClock {
        self.time
    }
}

/// Gives back the tokens an admitted request took from `buckets`.
pub(crate) async fn refund(
    mut connection: RedisConnection,
    buckets: &[Bucket],
    time: ScriptClock,
    now: u64,
) -> Result<(), ThrottleStoreError> {
    let _: i64 = invocation(refund_script(), buckets, time, now)
        .invoke(&mut connection)
        .await
        .map_err(ThrottleStoreError::new)?;
    Ok(())
}

/// The future of a Redis throttle decision.
pub type AcquireFuture = Pin<Box<dyn Future<Output = Result<Outcome, ThrottleStoreError>> + Send>>;

impl ThrottleStore for RedisThrottleStore {
    type Future = AcquireFuture;

    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now_unix_nanos: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future> {
        if let Err(error) = check_bucket_count(checks) {
            return Answer::Ready(Err(error));
        }
        let buckets = self.buckets(checks);
        let connection = self.connection.clone();
        let time = self.time;
        let cluster = connection.is_cluster();
        Answer::Pending(Box::pin(async move {
            let started = Instant::now();
            let result = Self::decide(connection, buckets, time, now_unix_nanos, cluster).await;
            record_call("throttle", started, result.as_ref().err());
            result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{Bucket, decode_outcome, split_reply};

    fn bucket(index: usize) -> Bucket {
        Bucket {
            key: String::new(),
            index,
            t: 1_000,
            tau: 9_000,
            cap: 10_000,
        }
    }

    #[test]
    fn the_acquire_reply_decodes_as_integer_and_as_array() {
        let buckets = [bucket(0), bucket(2)];
        // Admitted, reported bucket 1 (the layer's index 2), 3,500 ns held:
        // 6 tokens left, full after 3,500 ns.
        let packed = redis::Value::Int(3_500 * 16 + 2 + 1);
        let (held, code) = split_reply(&packed).expect("an integer reply");
        let outcome = decode_outcome(held, code, &buckets, "test").expect("a bucket");
        assert!(outcome.admitted);
        assert_eq!(
            (outcome.bucket, outcome.remaining, outcome.retry_after_nanos),
            (2, 6, 0)
        );
        assert_eq!(outcome.full_after_nanos, 3_500);
        // Refused by bucket 0, held beyond 2^48 ns: the array form.
        let held = 1_u64 << 50;
        let array = redis::Value::Array(vec![
            redis::Value::Int(i64::try_from(held).expect("below 2^63")),
            redis::Value::Int(0),
        ]);
        let (held_back, code) = split_reply(&array).expect("an array reply");
        let outcome = decode_outcome(held_back, code, &buckets, "test").expect("a bucket");
        assert!(!outcome.admitted);
        assert_eq!(outcome.retry_after_nanos, held - 9_000);
        assert_eq!(outcome.full_after_nanos, held);
        // A bucket the request did not send, or another reply, is an error.
        assert!(decode_outcome(0, 2 * 5 + 1, &buckets, "test").is_err());
        assert!(split_reply(&redis::Value::Int(-1)).is_none());
        assert!(split_reply(&redis::Value::Nil).is_none());
    }
}
