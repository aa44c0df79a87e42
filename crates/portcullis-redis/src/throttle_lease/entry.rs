//! One bucket's lease in this process: tokens spent lock-free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub(super) const GEN_SHIFT: u32 = 40;
pub(super) const TOKENS: u64 = (1 << GEN_SHIFT) - 1;

/// One bucket's lease in this process.
pub(super) struct Entry {
    /// `generation << 40 | tokens left to spend`. The slow path raises the
    /// generation whenever it reads the tokens for a report, so a token a
    /// request took before cannot be put back afterwards (it was reported
    /// spent).
    pub(super) word: AtomicU64,
    /// The lease clock's time until which the tokens may be spent.
    pub(super) deadline: AtomicU64,
    /// The parameters the lease was taken under.
    pub(super) t: AtomicU64,
    pub(super) cap: AtomicU64,
    /// The lease clock's time until which the bucket is refused locally.
    pub(super) refused_until: AtomicU64,
    /// The lease clock's time at which that refused bucket has a token
    /// again, as Redis answered.
    pub(super) retry_at: AtomicU64,
    /// The bucket's level (whole tokens, leases excluded) at the last call.
    pub(super) level: AtomicU64,
    pub(super) slow: tokio::sync::Mutex<Slow>,
}

pub(super) struct Slow {
    /// This lease's id in Redis (`l:<replica>:<id>`).
    pub(super) lease_id: u64,
    /// The tokens Redis records in this lease, as of the last answer.
    pub(super) held: u64,
    /// When the lease was last granted or renewed.
    pub(super) granted_at: Instant,
    /// This replica's rate for the bucket, tokens per second (0: unknown).
    pub(super) rate: f64,
}

impl Entry {
    pub(super) fn new(lease_id: u64) -> Self {
        Self {
            word: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            t: AtomicU64::new(0),
            cap: AtomicU64::new(0),
            refused_until: AtomicU64::new(0),
            retry_at: AtomicU64::new(0),
            level: AtomicU64::new(0),
            slow: tokio::sync::Mutex::new(Slow {
                lease_id,
                held: 0,
                granted_at: Instant::now(),
                rate: 0.0,
            }),
        }
    }

    /// Takes one token: the generation it was taken under, or `None`.
    #[inline]
    pub(super) fn take(&self) -> Option<u64> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if word & TOKENS == 0 {
                return None;
            }
            match self.word.compare_exchange_weak(
                word,
                word - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(word >> GEN_SHIFT),
                Err(current) => word = current,
            }
        }
    }

    /// Puts back a token taken under `generation`, unless the slow path has
    /// since reported it spent (then it is lost: under-admission of one).
    pub(super) fn put_back(&self, generation: u64) {
        let mut word = self.word.load(Ordering::Acquire);
        while word >> GEN_SHIFT == generation {
            match self.word.compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    /// Reads the tokens left and raises the generation; with `empty`, also
    /// takes them all (to give them back).
    pub(super) fn snapshot(&self, empty: bool) -> u64 {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let generation = ((word >> GEN_SHIFT) + 1) & (u64::MAX >> GEN_SHIFT);
            let tokens = if empty { 0 } else { word & TOKENS };
            match self.word.compare_exchange_weak(
                word,
                generation << GEN_SHIFT | tokens,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return word & TOKENS,
                Err(current) => word = current,
            }
        }
    }

    pub(super) fn add(&self, tokens: u64) {
        if tokens > 0 {
            self.word.fetch_add(tokens.min(TOKENS), Ordering::AcqRel);
        }
    }

    pub(super) fn tokens(&self) -> u64 {
        self.word.load(Ordering::Acquire) & TOKENS
    }

    pub(super) fn matches(&self, t: u64, cap: u64) -> bool {
        self.t.load(Ordering::Relaxed) == t && self.cap.load(Ordering::Relaxed) == cap
    }
}
