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
