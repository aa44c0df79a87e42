//! Throttle leases: a replica takes a few tokens of a bucket from Redis in
//! one script call and spends them in memory.
//!
//! See [`LeasedThrottleStore`] for the design and the bounds it keeps.
//!
//! [`LeaseConfig`] sizes the leases; one bucket's lease lives in an
//! `entry`; a replica's leases and the fast path that spends them in
//! `state`; the calls to Redis in `slow_path` and `give_back`; the public
//! store in `store`.

mod config;
mod entry;
mod give_back;
mod slow_path;
mod state;
mod store;

pub use config::LeaseConfig;
pub use store::LeasedThrottleStore;
