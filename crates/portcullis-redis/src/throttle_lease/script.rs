//! The lease script.

use crate::script::Lua;
use crate::throttle::{COMMON, STATE};

pub(crate) fn lease_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        format!(
            "{COMMON}\n{STATE}\n{}",
            include_str!("../lua/throttle_lease.lua")
        )
    })
}
