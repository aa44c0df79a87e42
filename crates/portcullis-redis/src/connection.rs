//! Connections to Redis or Redis Cluster, with a deadline on every call.

use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

/// The default deadline of one call: 20 ms, as Envoy's global rate-limit
/// filter uses.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);

/// How often, by default, one call is let through to find out whether Redis
/// is back while the circuit breaker is open: 250 ms, so a recovered server
/// is used again well within a second.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Consecutive failed calls (timeouts, refused or dropped connections) that
/// open the circuit breaker, by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// Where the shared state lives and how to reach it. Its `Debug` output
/// redacts passwords in the URLs.
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    target: Target,
    timeout: Duration,
    connect_timeout: Duration,
    prefix: String,
    probe_interval: Duration,
    failure_threshold: u32,
    lazy: bool,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = match &self.target {
            Target::Single(url) => vec![redact(url)],
            Target::Cluster(urls) => urls.iter().map(|u| redact(u)).collect(),
        };
        f.debug_struct("RedisConfig")
            .field("cluster", &self.is_cluster())
            .field("urls", &urls)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("prefix", &self.prefix)
            .field("probe_interval", &self.probe_interval)
            .field("failure_threshold", &self.failure_threshold)
            .finish()
    }
}

/// A URL with its credentials (between `://` and `@`) hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[derive(Clone)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl RedisConfig {
    /// One Redis server, such as `redis://127.0.0.1:6379`.
    pub fn single(url: impl Into<String>) -> Self {
        Self::new(Target::Single(url.into()))
    }

    /// A Redis Cluster, given the URLs of some of its nodes.
    pub fn cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    fn new(target: Target) -> Self {
        Self {
            target,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(1),
            prefix: "portcullis".to_owned(),
            probe_interval: DEFAULT_PROBE_INTERVAL,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            lazy: false,
        }
    }

    /// The circuit breaker's settings: after `failure_threshold`
    /// consecutive calls fail for want of Redis (a refused, dropped or
    /// broken connection; not a timeout, see below), calls fail at once, without waiting for their
    /// deadline, and one call every `probe_interval` is let through to find
    /// out whether Redis is back; its success closes the circuit. Defaults:
    /// [`DEFAULT_FAILURE_THRESHOLD`] and [`DEFAULT_PROBE_INTERVAL`].
    ///
    /// Timeouts do not open the circuit: a slow server may still run a call
    /// that timed out, and a fail-open admission stays exact only if it
    /// does (the cold-start guarantee in the crate docs), so slow calls are
    /// still sent and waited for up to [`timeout`](Self::timeout).
    pub fn circuit_breaker(mut self, failure_threshold: u32, probe_interval: Duration) -> Self {
        self.failure_threshold = failure_threshold.max(1);
        self.probe_interval = probe_interval;
        self
    }

    /// The deadline of every call (default 20 ms). A call past it fails, and
    /// the layer's failure policy decides (fail-open by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline of establishing a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The prefix of every key the stores write (default `portcullis`), so
    /// that several gateways can share one Redis.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether this is a cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// The key prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URLs of the server or of the cluster nodes given.
    pub(crate) fn urls(&self) -> Vec<String> {
        match &self.target {
            Target::Single(url) => vec![url.clone()],
            Target::Cluster(urls) => urls.clone(),
        }
    }

    /// The deadline of one call.
    #[must_use]
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether [`connect`](Self::connect) answers at once when Redis cannot
    /// be reached (default `false`: it fails). With `true` the connection
    /// starts with its circuit breaker open, calls fail at once (so a
    /// fail-open layer serves and a fail-closed one refuses), and a
    /// background task connects every probe interval until Redis answers:
    /// a replica can start while Redis is down.
    pub fn lazy_connect(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Connects.
    ///
    /// # Errors
    ///
    /// The URLs must parse, and (unless [`lazy_connect`](Self::lazy_connect))
    /// the server (or a cluster node) must answer within the connect
    /// timeout. Connecting also loads the stores' Lua scripts (`SCRIPT
    /// LOAD`, on every master of a cluster), so the user needs that
    /// command; a server that later forgets them (restarted, flushed, failed
    /// over) gets the whole script in one `EVAL`.
    pub async fn connect(&self) -> Result<RedisConnection, RedisError> {
        let link = Arc::new(Link {
            inner: OnceLock::new(),
            breaker: Breaker::new(self.failure_threshold, self.probe_interval),
        });
        let connection = RedisConnection {
            link: link.clone(),
            timeout: self.timeout,
        };
        match self.establish().await {
            Ok(inner) => {
                let _ = link.inner.set(inner);
                Ok(connection)
            }
            Err(error) if self.lazy => {
                // Validate the URLs now: only an unreachable server waits.
                if let Target::Single(url) = &self.target {
                    redis::Client::open(url.as_str())?;
                }
                link.breaker.open_now(&error);
                tokio::spawn(connect_later(Arc::downgrade(&link), self.clone()));
                Ok(connection)
            }
            Err(error) => Err(error),
        }
    }

    /// Makes the underlying connection and loads the scripts.
    async fn establish(&self) -> Result<Inner, RedisError> {
        let inner = match &self.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                let connect = ConnectionManager::new_with_config(client, config);
                Inner::Single(
                    tokio::time::timeout(self.connect_timeout.saturating_mul(2), connect)
                        .await
                        .unwrap_or_else(|_| Err(timed_out()))?,
                )
            }
            Target::Cluster(urls) => {
                // The cluster client retries a request whose response timed
                // out, and a script that already ran would run twice (a
                // request counted twice). The call's own deadline (in
                // `RedisConnection`) comes first and drops the request, so the
                // client's never fires before it.
                let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.timeout.saturating_mul(2).max(self.connect_timeout))
                    .retries(1)
                    .build()?;
                let connect = client.get_async_connection();
                Inner::Cluster(
                    tokio::time::timeout(self.connect_timeout.saturating_mul(2), connect)
                        .await
                        .unwrap_or_else(|_| Err(timed_out()))?,
                )
            }
        };
        // The scripts are loaded before the first request, with the connect
        // deadline: a first request must not be the one that loads them
        // (see `script.rs`).
        let mut loader = RedisConnection {
            link: Arc::new(Link {
                inner: OnceLock::from(inner.clone()),
                breaker: Breaker::new(u32::MAX, self.probe_interval),
            }),
            timeout: self.connect_timeout,
        };
        crate::script::preload(&mut loader).await?;
        Ok(inner)
    }
}

/// Connects a lazily started connection in the background, every probe
/// interval until Redis answers.
async fn connect_later(link: std::sync::Weak<Link>, config: RedisConfig) {
    loop {
        tokio::time::sleep(config.probe_interval).await;
        if link.strong_count() == 0 {
            return;
        }
        if let Ok(inner) = config.establish().await {
            let Some(link) = link.upgrade() else { return };
            let _ = link.inner.set(inner);
            link.breaker.succeeded(false);
            return;
        }
    }
}

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
struct Breaker {
    failures: AtomicU32,
    open: AtomicBool,
    probing: AtomicBool,
    next_probe_ms: AtomicU64,
    threshold: u32,
    probe_ms: u64,
}

impl Breaker {
    fn new(threshold: u32, probe: Duration) -> Self {
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

    fn open_now(&self, error: &RedisError) {
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

    fn succeeded(&self, probe: bool) {
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

struct Link {
    /// Set once connected (at once, or later by `connect_later`).
    inner: OnceLock<Inner>,
    breaker: Breaker,
}

/// A connection to one server or to a cluster. Cheap to clone: clones share
/// the underlying multiplexed connection, which reconnects by itself after a
/// failure, and one circuit breaker (see [`RedisConfig::circuit_breaker`]).
#[derive(Clone)]
pub struct RedisConnection {
    link: Arc<Link>,
    timeout: Duration,
}

#[derive(Clone)]
enum Inner {
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

fn timed_out() -> RedisError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_passwords() {
        let config = RedisConfig::single("redis://user:s3cret@127.0.0.1:6379/0");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("redis://<redacted>@127.0.0.1:6379/0"),
            "{shown}"
        );
        let cluster = RedisConfig::cluster(["redis://:pw@10.0.0.1:7000", "redis://10.0.0.2:7000"]);
        let shown = format!("{cluster:?}");
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(shown.contains("redis://10.0.0.2:7000"), "{shown}");
    }
}
