//! The state one store shares between its clones and its follower task.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use portcullis_control_plane::reservation::CounterChange;
use portcullis_control_plane::{StoreError, StoreOptions};
use portcullis_core::clock::SharedClock;
use redis::AsyncCommands;
use tokio::sync::{broadcast, watch};

use crate::connection::RedisConnection;

use super::error::backend;
use super::names::Names;

pub(super) struct Inner {
    pub(super) connection: RedisConnection,
    pub(super) names: Names,
    pub(super) options: StoreOptions,
    pub(super) clock: SharedClock,
    pub(super) version: watch::Sender<u64>,
    pub(super) counter_changes: broadcast::Sender<CounterChange>,
    pub(super) poll: Duration,
    pub(super) follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let follower = self
            .follower
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = follower {
            task.abort();
        }
    }
}

impl Inner {
    /// Makes `version` the one this replica's subscribers see.
    pub(super) fn announce(&self, version: u64) {
        self.version.send_if_modified(|current| {
            if *current == version {
                false
            } else {
                *current = version;
                true
            }
        });
    }

    pub(super) async fn stored_version(&self) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let version: Option<u64> = connection
            .get(self.names.version())
            .await
            .map_err(backend)?;
        Ok(version.unwrap_or(0))
    }
}
