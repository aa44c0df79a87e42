//! Connections to Redis or Redis Cluster, with a deadline on every call.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// The default deadline of one call: 20 ms, as Envoy's global rate-limit
/// filter uses.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);

/// Where the shared state lives and how to reach it. Its `Debug` output
/// redacts passwords in the URLs.
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    target: Target,
    timeout: Duration,
    connect_timeout: Duration,
    prefix: String,
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
        }
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

    /// Connects.
    ///
    /// # Errors
    ///
    /// The URLs must parse, and the server (or a cluster node) must answer
    /// within the connect timeout. Connecting also loads the stores' Lua
    /// scripts (`SCRIPT LOAD`, on every master of a cluster), so the user
    /// needs that command; a server that later forgets them (restarted,
    /// flushed, failed over) gets the whole script in one `EVAL`.
    pub async fn connect(&self) -> Result<RedisConnection, RedisError> {
        let inner = match &self.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Inner::Single(ConnectionManager::new_with_config(client, config).await?)
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
                Inner::Cluster(client.get_async_connection().await?)
            }
        };
        // The scripts are loaded before the first request, with the connect
        // deadline: a first request must not be the one that loads them
        // (see `script.rs`).
        let mut connection = RedisConnection {
            inner,
            timeout: self.connect_timeout,
        };
        crate::script::preload(&mut connection).await?;
        connection.timeout = self.timeout;
        Ok(connection)
    }
}

/// A connection to one server or to a cluster. Cheap to clone: clones share
/// the underlying multiplexed connection, which reconnects by itself after a
/// failure.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Inner,
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
                &match self.inner {
                    Inner::Single(_) => "single",
                    Inner::Cluster(_) => "cluster",
                },
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisConnection {
    /// Whether this is a cluster connection.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Inner::Cluster(_))
    }

    /// The deadline of one call.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
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
        let timeout = self.timeout;
        Box::pin(async move {
            let call = async {
                match &mut self.inner {
                    Inner::Single(c) => c.req_packed_command(cmd).await,
                    Inner::Cluster(c) => c.req_packed_command(cmd).await,
                }
            };
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let timeout = self.timeout;
        Box::pin(async move {
            let call = async {
                match &mut self.inner {
                    Inner::Single(c) => c.req_packed_commands(cmd, offset, count).await,
                    Inner::Cluster(c) => c.req_packed_commands(cmd, offset, count).await,
                }
            };
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        })
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
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
