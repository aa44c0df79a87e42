//! AppSync's real-time WebSocket protocol for subscriptions, with AppSync's
//! authorization on the connection and on every subscription.
//!
//! `endpoint` holds the endpoint and its settings, `connection` one
//! connection's messages and subscriptions, and `protocol` the protocol's
//! messages and the connection parameters.

mod connection;
mod endpoint;
mod protocol;

pub use endpoint::{AppSyncRealtime, CONNECT_PATH, REALTIME_SUBPROTOCOL, START_PATH};
