//! The control plane's Lua scripts.

use crate::script::Lua;

pub(super) fn counter_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("../lua/control_plane/counter.lua").to_owned()
    })
}

pub(super) fn apply_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("../lua/control_plane/apply.lua").to_owned()
    })
}

pub(super) fn read_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("../lua/control_plane/read.lua").to_owned()
    })
}

pub(super) fn usage_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("../lua/control_plane/usage.lua").to_owned()
    })
}

pub(super) fn usage_keys_script() -> &'static Lua {
    static SCRIPT: std::sync::OnceLock<Lua> = std::sync::OnceLock::new();
    crate::script::once(&SCRIPT, || {
        include_str!("../lua/control_plane/usage_keys.lua").to_owned()
    })
}
