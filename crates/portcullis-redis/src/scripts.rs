//! The stores' Lua scripts, each built once, and [`preload`], which loads
//! them when a connection is made (see `script.rs`).

use redis::{ErrorKind, RedisResult};

use crate::connection::RedisConnection;
use crate::script::Lua;

/// The prelude every throttle script starts with: the time, and a bucket's
/// hash (see `lua/throttle_common.lua`).
const COMMON: &str = include_str!("lua/throttle_common.lua");

/// A bucket as a Lua table (`load`, `save`), for the lease and refund
/// scripts, after [`COMMON`].
const STATE: &str = include_str!("lua/throttle_state.lua");

fn acquire_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| format!("{COMMON}\n{}", include_str!("lua/throttle_acquire.lua")))
}

pub(crate) fn acquire_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || acquire_source().to_owned())
}

pub(crate) fn refund_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        format!(
            "{COMMON}\n{STATE}\n{}",
            include_str!("lua/throttle_refund.lua")
        )
    })
}

pub(crate) fn script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || quota_source().to_owned())
}

fn quota_source() -> &'static str {
    include_str!("lua/quota.lua")
}

pub(crate) fn combined_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        format!(
            "local function throttle(KEYS, ARGV)\n{}\nend\nlocal function quota(KEYS, ARGV)\n{}\nend\n{}",
            acquire_source(),
            quota_source(),
            include_str!("lua/usage_plan.lua")
        )
    })
}

pub(crate) fn lease_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        format!(
            "{COMMON}\n{STATE}\n{}",
            include_str!("lua/throttle_lease.lua")
        )
    })
}

/// The scripts a request may need at once: the throttle's acquire,
/// refund and lease, the quota's, and the usage plan's combined one. (The control
/// plane's are not preloaded: their first call is one `EVAL`.)
pub(crate) fn all() -> [&'static Lua; 5] {
    [
        acquire_script(),
        lease_script(),
        refund_script(),
        script(),
        combined_script(),
    ]
}

/// Loads every script (on Cluster, `SCRIPT LOAD` goes to every master), so
/// that the first request a server sees runs its script at once.
pub(crate) async fn preload(connection: &mut RedisConnection) -> RedisResult<()> {
    for lua in all() {
        let hash: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(&lua.source)
            .query_async(connection)
            .await?;
        if hash != lua.hash {
            return Err(redis::RedisError::from((
                ErrorKind::Client,
                "SCRIPT LOAD answered another SHA1",
            )));
        }
    }
    Ok(())
}
