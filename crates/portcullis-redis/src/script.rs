//! The stores' Lua scripts: loaded when a connection is made, then called by
//! SHA, with a fallback that stays one atomic step.
//!
//! `redis::Script`'s own fallback answers `NOSCRIPT` with `SCRIPT LOAD` and a
//! second `EVALSHA`: three round trips, each with its own deadline. A
//! request whose first `EVALSHA` came back `NOSCRIPT` and whose deadline then
//! passed was never counted, yet the layer's failure policy (fail-open by
//! default) admitted it. On a server that had not seen the scripts yet (a
//! fresh or restarted Redis, a new Cluster master), the first burst of
//! concurrent requests was slow enough for that to happen, and a fleet
//! admitted more than the quota. So every connection loads the scripts when
//! it is made ([`preload`]), and a `NOSCRIPT` is answered by one `EVAL` of
//! the whole source, which loads and runs the script in one command.
//!
//! [`preload`]: crate::scripts::preload

use std::sync::OnceLock;

use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs};

use crate::connection::RedisConnection;

/// A Lua script and its SHA1.
#[derive(Debug)]
pub(crate) struct Lua {
    pub(crate) source: String,
    pub(crate) hash: String,
}

impl Lua {
    pub(crate) fn new(source: String) -> Self {
        let hash = redis::Script::new(&source).get_hash().to_owned();
        Self { source, hash }
    }

    /// A call of this script, to which keys and then arguments are added.
    pub(crate) fn call(&self) -> LuaCall<'_> {
        LuaCall {
            lua: self,
            keys: Vec::with_capacity(4),
            args: Vec::with_capacity(24),
        }
    }
}

/// One call of a [`Lua`] script.
pub(crate) struct LuaCall<'a> {
    lua: &'a Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl LuaCall<'_> {
    pub(crate) fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    pub(crate) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn command(&self, name: &str, script: &str) -> Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(script).arg(self.keys.len());
        for part in self.keys.iter().chain(&self.args) {
            cmd.arg(part.as_slice());
        }
        cmd
    }

    /// `EVALSHA`, and on `NOSCRIPT` one `EVAL` of the source: either way the
    /// script runs in one command, never split across several.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        connection: &mut RedisConnection,
    ) -> RedisResult<T> {
        match self
            .command("EVALSHA", &self.lua.hash)
            .query_async(connection)
            .await
        {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command("EVAL", &self.lua.source)
                    .query_async(connection)
                    .await
            }
            other => other,
        }
    }
}

/// A script built once.
pub(crate) fn once(cell: &'static OnceLock<Lua>, source: impl FnOnce() -> String) -> &'static Lua {
    cell.get_or_init(|| Lua::new(source()))
}
