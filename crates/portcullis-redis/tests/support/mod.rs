//! Finding the Redis servers the tests run against.
//!
//! `scripts/test.sh` starts them and exports `REDIS_URL` (one server) and
//! `REDIS_CLUSTER_URLS` (a 3-master cluster). Without those variables a plain
//! `cargo test` skips these tests with one line saying how to run them;
//! under CI (`CI` set) a missing server fails the test instead.

#![allow(dead_code, unreachable_pub)]

use portcullis_redis::RedisConfig;

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: under CI the Redis tests must run (see scripts/test.sh)")
        }
        _ => {
            eprintln!(
                "skipped: {var} is not set; run `bash scripts/test.sh` (which starts Redis) to run the Redis tests"
            );
            None
        }
    }
}

/// One Redis server, with a key prefix unique to this test.
pub fn single(test: &str) -> Option<RedisConfig> {
    let url = required("REDIS_URL")?;
    Some(RedisConfig::single(url).key_prefix(unique_prefix(test)))
}

/// The Redis Cluster, with a key prefix unique to this test.
pub fn cluster(test: &str) -> Option<RedisConfig> {
    let urls = required("REDIS_CLUSTER_URLS")?;
    Some(RedisConfig::cluster(urls.split(',').map(str::to_owned)).key_prefix(unique_prefix(test)))
}

/// Both deployments, each as (name, config).
pub fn backends(test: &str) -> Vec<(&'static str, RedisConfig)> {
    let mut all = Vec::new();
    if let Some(config) = single(test) {
        all.push(("redis", config));
    }
    if let Some(config) = cluster(test) {
        all.push(("cluster", config));
    }
    all
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("pt:{test}:{}:{nanos}", std::process::id())
}

/// A private `redis-server` on a free loopback port, stopped on drop: for
/// tests that stop the server or read its global statistics, so that no
/// other test disturbs them (or is disturbed).
pub struct PrivateServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateServer {
    pub fn start() -> PrivateServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let server = PrivateServer {
            port,
            child: Some(child),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
