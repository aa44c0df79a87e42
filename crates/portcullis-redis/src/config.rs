//! [`RedisConfig`]: where Redis is and how to reach it, and connecting
//! (which loads the stores' scripts).

use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;

use crate::connection::{Breaker, Inner, Link, RedisConnection, timed_out};

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
        crate::scripts::preload(&mut loader).await?;
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
