//! The control plane on Redis: API keys, usage plans, plan–key associations,
//! usage records and quota counters shared by a fleet (see
//! [`RedisControlPlane`]).
//!
//! One job per file: [`store`] holds the handle, its connection and its
//! reads; [`write`] the configuration transactions; [`management`] the
//! management operations; [`counter`] and [`reservation`] the quota
//! counters; [`follow`] the propagation of changes between replicas.

mod counter;
mod error;
mod follow;
mod inner;
mod management;
mod names;
mod records;
mod reply;
mod reservation;
mod scripts;
mod store;
mod write;

pub use store::{DEFAULT_POLL_INTERVAL, MIN_CONTROL_PLANE_TIMEOUT, RedisControlPlane};
