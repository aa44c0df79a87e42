//! Exact sliding-window request counting for rate-based rules.
//!
//! AWS counts approximately (it checks rates about every 10 seconds).
//! Portcullis counts exactly, at one-second resolution: a request counts for
//! the `EvaluationWindowSec` seconds that start at the second it arrived in.
//! Each key keeps one `(second, count)` pair per second in which it was seen,
//! so its memory is bounded by the window (at most 600 pairs), and the table
//! holds at most a configured number of keys.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 16;

/// The counters of one rate-based rule.
#[derive(Debug)]
pub(crate) struct RateTable {
    shards: Vec<Mutex<HashMap<Vec<u8>, Window>>>,
    max_keys_per_shard: usize,
}

#[derive(Debug, Default)]
struct Window {
    seconds: VecDeque<(u64, u64)>,
    total: u64,
}

impl Window {
    fn expire(&mut self, now: u64, window: u64) {
        while let Some(&(second, count)) = self.seconds.front() {
            if second + window <= now {
                self.seconds.pop_front();
                self.total -= count;
            } else {
                break;
            }
        }
    }

    fn hit(&mut self, now: u64, window: u64) -> u64 {
        self.expire(now, window);
        match self.seconds.back_mut() {
            Some((second, count)) if *second >= now => *count += 1,
            _ => self.seconds.push_back((now, 1)),
        }
        self.total += 1;
        self.total
    }
}

impl RateTable {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Counts one request for `key` at `now` (seconds) and returns the number
    /// of requests for the key in the window, this one included.
    pub(crate) fn hit(&self, key: &[u8], now: u64, window: u64) -> u64 {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = &self.shards[(hasher.finish() as usize) % SHARDS];
        // A poisoned shard only means another thread panicked mid-update; the
        // counters are still usable.
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = map.get_mut(key) {
            return entry.hit(now, window);
        }
        if map.len() >= self.max_keys_per_shard {
            map.retain(|_, w| {
                w.expire(now, window);
                w.total > 0
            });
            if map.len() >= self.max_keys_per_shard {
                // Full of live keys: forget the one with the oldest activity.
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, w)| w.seconds.back().map_or(0, |&(s, _)| s))
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        match map.entry(key.to_vec()) {
            Entry::Occupied(mut e) => e.get_mut().hit(now, window),
            Entry::Vacant(e) => e.insert(Window::default()).hit(now, window),
        }
    }

    /// How many keys are tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exactly_over_the_window() {
        let table = RateTable::new(100);
        for i in 0..10 {
            assert_eq!(table.hit(b"k", 1000, 60), i + 1);
        }
        assert_eq!(table.hit(b"k", 1059, 60), 11);
        // At 1060 the ten requests of second 1000 have left the window.
        assert_eq!(table.hit(b"k", 1060, 60), 2);
        assert_eq!(table.hit(b"other", 1060, 60), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let table = RateTable::new(32);
        for i in 0u32..10_000 {
            table.hit(&i.to_be_bytes(), 5, 60);
        }
        assert!(table.len() <= 32, "{}", table.len());
    }
}
