//! Connections to Redis or Redis Cluster, with a deadline on every call.

use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

/// Milliseconds since this process first asked: the breaker's cheap clock.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What the breaker lets a call do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// The circuit is closed: call.
    Call,
    /// The circuit is open and this call is the probe.
    Probe,
    /// The circuit is open: fail at once.
    Refuse,
}

/// A circuit breaker shared by the clones of one connection.
///
/// Closed: every call goes to Redis; `threshold` consecutive failures for
/// want of Redis open it. Open: calls fail at once, except one probe every
/// `probe_ms`; a probe's success closes it. One log line and one counter
/// increment per change of state, never per call.
pub(crate) struct Breaker {
    failures: AtomicU32,
    open: AtomicBool,
    probing: AtomicBool,
    next_probe_ms: AtomicU64,
    threshold: u32,
    probe_ms: u64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, probe: Duration) -> Self {
        Self {
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            next_probe_ms: AtomicU64::new(0),
            threshold,
            probe_ms: u64::try_from(probe.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn admit(&self) -> Admission {
        if !self.open.load(Ordering::Acquire) {
            return Admission::Call;
        }
        if now_ms() < self.next_probe_ms.load(Ordering::Acquire) {
            return Admission::Refuse;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Admission::Probe
        } else {
            Admission::Refuse
        }
    }

    pub(crate) fn open_now(&self, error: &RedisError) {
        self.next_probe_ms
            .store(now_ms().saturating_add(self.probe_ms), Ordering::Release);
        if !self.open.swap(true, Ordering::AcqRel) {
            metrics::counter!("portcullis_redis_circuit_changes_total", "state" => "open")
                .increment(1);
            tracing::warn!(
                layer = "redis",
                state = "open",
                %error,
                probe_ms = self.probe_ms,
                "redis unreachable: failing calls at once and probing every probe interval"
            );
        }
    }

    pub(crate) fn succeeded(&self, probe: bool) {
        self.failures.store(0, Ordering::Relaxed);
        if self.open.swap(false, Ordering::AcqRel) {
            metrics::counter!("portcullis_redis_circuit_changes_total", "state" => "closed")
                .increment(1);
            tracing::info!(layer = "redis", state = "closed", "redis reachable again");
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    fn failed(&self, probe: bool, error: &RedisError) {
        if probe {
            self.next_probe_ms
                .store(now_ms().saturating_add(self.probe_ms), Ordering::Release);
            self.probing.store(false, Ordering::Release);
            return;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if failures >= self.threshold {
            self.open_now(error);
        }
    }
}

/// Ends a probe that was dropped before it finished (its caller gave up):
/// the next probe may go.
struct ProbeGuard<'a>(Option<&'a Breaker>);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if let Some(breaker) = self.0 {
            breaker.probing.store(false, Ordering::Release);
        }
    }
}

/// Whether a failure says Redis could not be reached (rather than that it
/// answered with an error, or was slow).
///
/// A timeout does not count: a slow server (overloaded, paused, failing
/// over) may still run the call, and a fail-open admission is only exact if
/// it does, so slow calls keep being sent and waited for up to their
/// deadline. A refused, dropped or broken connection does count: the call
/// cannot have run.
pub(crate) fn unreachable(error: &RedisError) -> bool {
    if error.is_timeout() {
        return false;
    }
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == ErrorKind::ClusterConnectionNotFound
}

const CIRCUIT_OPEN: &str = "redis unavailable; circuit breaker open, call not sent";

fn circuit_open() -> RedisError {
    RedisError::from((
        ErrorKind::Client,
        "redis unavailable",
        CIRCUIT_OPEN.to_owned(),
    ))
}

/// Whether `error` is the circuit breaker's: the call was not sent, so
/// nothing changed on Redis.
pub(crate) fn is_circuit_open(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Client && error.detail() == Some(CIRCUIT_OPEN)
}

pub(crate) struct Link {
    /// Set once connected (at once, or later by `connect_later`).
    pub(crate) inner: OnceLock<Inner>,
    pub(crate) breaker: Breaker,
}

/// A connection to one server or to a cluster. Cheap to clone: clones share
/// the underlying multiplexed connection, which reconnects by itself after a
/// failure, and one circuit breaker (see [`RedisConfig::circuit_breaker`]).
///
/// [`RedisConfig::circuit_breaker`]: crate::RedisConfig::circuit_breaker
#[derive(Clone)]
pub struct RedisConnection {
    pub(crate) link: Arc<Link>,
    pub(crate) timeout: Duration,
}

#[derive(Clone)]
pub(crate) enum Inner {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field(
                "kind",
                &match self.link.inner.get() {
                    Some(Inner::Single(_)) => "single",
                    Some(Inner::Cluster(_)) => "cluster",
                    None => "not yet connected",
                },
            )
            .field("timeout", &self.timeout)
            .field("available", &self.is_available())
            .finish()
    }
}

impl RedisConnection {
    /// Whether this is a cluster connection.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.link.inner.get(), Some(Inner::Cluster(_)))
    }

    /// The deadline of one call.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether calls go to Redis: `false` while the circuit breaker is open
    /// (Redis was unreachable at the last calls) or the connection has not
    /// been made yet. A readiness signal for load balancers.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.link.inner.get().is_some() && !self.link.breaker.open.load(Ordering::Acquire)
    }

    /// Runs one call through the breaker and the deadline.
    async fn guarded<T, F, Fut>(&self, call: F) -> Result<T, RedisError>
    where
        F: FnOnce(Inner) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let breaker = &self.link.breaker;
        let admission = breaker.admit();
        let Some(inner) = self.link.inner.get().cloned() else {
            return Err(circuit_open());
        };
        if admission == Admission::Refuse {
            return Err(circuit_open());
        }
        let probe = admission == Admission::Probe;
        let mut guard = ProbeGuard(probe.then_some(breaker));
        let result = tokio::time::timeout(self.timeout, call(inner))
            .await
            .unwrap_or_else(|_| Err(timed_out()));
        guard.0 = None;
        match &result {
            Err(error) if unreachable(error) => breaker.failed(probe, error),
            _ => breaker.succeeded(probe),
        }
        result
    }
}

pub(crate) fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "redis call timed out",
    ))
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.guarded(move |inner| async move {
            match inner {
                Inner::Single(mut c) => c.req_packed_command(cmd).await,
                Inner::Cluster(mut c) => c.req_packed_command(cmd).await,
            }
        }))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.guarded(move |inner| async move {
            match inner {
                Inner::Single(mut c) => c.req_packed_commands(cmd, offset, count).await,
                Inner::Cluster(mut c) => c.req_packed_commands(cmd, offset, count).await,
            }
        }))
    }

    fn get_db(&self) -> i64 {
        match self.link.inner.get() {
            Some(Inner::Single(c)) => c.get_db(),
            Some(Inner::Cluster(c)) => c.get_db(),
            None => 0,
        }
    }
}
