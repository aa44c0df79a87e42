//! Giving leases back: unused ones in the background, all on shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use portcullis_throttle::store::ThrottleStoreError;

use super::entry::{Entry, Slow};
use super::slow_path::Op;
use super::state::Inner;

impl Inner {
    /// Gives one lease back whole (reporting what it spent).
    pub(super) async fn give_back(
        &self,
        key: &str,
        entry: &Entry,
        slow: &mut Slow,
    ) -> Result<(), ThrottleStoreError> {
        if slow.held == 0 {
            return Ok(());
        }
        let left = entry.snapshot(true);
        entry.deadline.store(0, Ordering::Release);
        let op = Op {
            spent: slow.held.saturating_sub(left),
            returned: left,
            kept: 0,
            want: 0,
        };
        let params = (
            entry.t.load(Ordering::Relaxed),
            entry.cap.load(Ordering::Relaxed),
        );
        let now = self.last_now.load(Ordering::Relaxed);
        match self
            .call(&[key], &[params], &[self.field(slow.lease_id)], &[op], now)
            .await
        {
            Ok(_) => {
                slow.held = 0;
                Ok(())
            }
            Err(error) => {
                self.forfeit(entry, slow);
                Err(error)
            }
        }
    }

    /// Gives back leases not renewed within `give_back_after`; with
    /// `idle_too`, also forgets buckets that held nothing for ten times that.
    pub(super) async fn flush(&self, idle_too: bool) {
        let after = self.config.give_back_after;
        // A bucket whose deadline is 0 holds no lease: skipped.
        let candidates: Vec<(String, Arc<Entry>)> = match self.entries.read() {
            Ok(map) => map
                .iter()
                .filter(|(_, e)| idle_too || e.deadline.load(Ordering::Relaxed) != 0)
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
            Err(_) => return,
        };
        let mut idle = Vec::new();
        for (key, entry) in candidates {
            let Ok(mut slow) = entry.slow.try_lock() else {
                continue;
            };
            if slow.held > 0
                && slow.granted_at.elapsed() >= after
                && let Err(error) = self.give_back(&key, &entry, &mut slow).await
            {
                tracing::debug!(%error, "throttle leases: giving a lease back failed");
            }
            if slow.held == 0 {
                // Nothing to spend (the tokens are 0 with nothing held, and
                // the slow path, which adds them, is locked out here).
                entry.deadline.store(0, Ordering::Release);
                if idle_too && slow.granted_at.elapsed() >= after * 10 {
                    idle.push(key);
                }
            }
        }
        if idle.is_empty() {
            return;
        }
        if let Ok(mut map) = self.entries.write() {
            for key in idle {
                // Only if nothing uses it now: held by the map alone.
                if map.get(&key).is_some_and(|e| Arc::strong_count(e) == 1) {
                    map.remove(&key);
                }
            }
        }
    }
}
