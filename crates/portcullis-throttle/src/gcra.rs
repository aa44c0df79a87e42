//! The pure arithmetic of one bucket: the generic cell rate algorithm (GCRA).
//!
//! A token bucket of `burst` tokens that refills one token every `t`
//! nanoseconds is fully described by one number, the *theoretical arrival
//! time* (TAT): the instant at which the bucket will be full again. With
//! `tau = (burst - 1) * t`, a request at `now` is admitted when
//! `TAT - now <= tau` (at least one whole token is left), and then
//! `TAT = max(TAT, now) + t` (one token taken). The number of tokens in the
//! bucket, in nanoseconds of refill, is `burst * t - max(0, TAT - now)`, so
//! GCRA admits exactly the requests the token bucket admits (the property test
//! in `tests/gcra_model.rs` checks this against a literal token bucket).
//!
//! Time is integer nanoseconds since the Unix epoch, as the core
//! [`Clock`](portcullis_core::clock::Clock) gives it. A stored TAT of `0` (or
//! any TAT at or before `now`) is a full bucket, which is why a store may
//! forget such buckets.

use std::num::{NonZeroU32, NonZeroU64};

use portcullis_core::plan::ThrottleSettings;

/// The parameters of one bucket, in integer nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gcra {
    /// The emission interval: nanoseconds per token (never zero, so that
    /// dividing by it needs no check).
    t: NonZeroU64,
    /// The tolerance: `(burst - 1) * t`.
    tau: u64,
    burst: NonZeroU32,
}

/// What one bucket decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcraDecision {
    /// The request takes a token.
    Admit {
        /// The bucket's new TAT, to be stored.
        tat: u64,
        /// Whole tokens left after this request.
        remaining: u32,
        /// Nanoseconds until the bucket is full again.
        full_after_nanos: u64,
    },
    /// The bucket is empty.
    Refuse {
        /// Nanoseconds until one token is back.
        retry_after_nanos: u64,
        /// Nanoseconds until the bucket is full again.
        full_after_nanos: u64,
    },
}

impl GcraDecision {
    /// Whether the request was admitted.
    #[must_use]
    pub fn is_admit(&self) -> bool {
        matches!(self, GcraDecision::Admit { .. })
    }
}

impl Gcra {
    /// A one-token bucket, to fill arrays.
    pub(crate) const PLACEHOLDER: Gcra = Gcra {
        t: NonZeroU64::MIN,
        tau: 0,
        burst: NonZeroU32::MIN,
    };

    /// The bucket of these throttle settings. Rates are quantised to a whole
    /// number of nanoseconds per token
    /// ([`ThrottleSettings::emission_interval_nanos`]).
    #[must_use]
    pub fn new(settings: &ThrottleSettings) -> Self {
        Self::from_parts(settings.emission_interval_nanos(), settings.burst_limit())
    }

    /// A bucket of `burst` tokens refilled one token every
    /// `emission_interval_nanos` (0 is taken as 1).
    #[must_use]
    pub fn from_parts(emission_interval_nanos: u64, burst: NonZeroU32) -> Self {
        let t = NonZeroU64::new(emission_interval_nanos).unwrap_or(NonZeroU64::MIN);
        Self {
            t,
            tau: t.get().saturating_mul(u64::from(burst.get() - 1)),
            burst,
        }
    }

    /// Nanoseconds per token.
    #[must_use]
    pub fn emission_interval_nanos(&self) -> u64 {
        self.t.get()
    }

    /// The bucket size.
    #[must_use]
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// The time a bucket takes to refill from empty, `burst * t`.
    #[must_use]
    pub fn capacity_nanos(&self) -> u64 {
        self.tau.saturating_add(self.t.get())
    }

    /// Decides one request at `now` against a bucket whose stored TAT is
    /// `tat` (`0` for a bucket never seen, which is full).
    ///
    /// A TAT further ahead than a whole bucket (possible only after the
    /// settings changed to a smaller bucket or a faster rate) is read as an
    /// empty bucket: a bucket keeps its debt measured in time, capped at the
    /// new bucket's size (a store writes the cap back on refusal, see
    /// [`normalize`](Self::normalize)). Under constant settings the cap never
    /// applies.
    #[must_use]
    #[inline]
    pub fn decide(&self, tat: u64, now: u64) -> GcraDecision {
        let debt = tat.saturating_sub(now).min(self.capacity_nanos());
        if debt > self.tau {
            GcraDecision::Refuse {
                retry_after_nanos: debt - self.tau,
                full_after_nanos: debt,
            }
        } else {
            let debt = debt + self.t.get();
            GcraDecision::Admit {
                tat: now.saturating_add(debt),
                remaining: self.tokens_left(debt),
                full_after_nanos: debt,
            }
        }
    }

    /// The TAT to store after a refusal: `Some(now + burst * t)` when the
    /// stored TAT is further ahead than a whole bucket (the settings shrank),
    /// so that the bucket refills under the new settings from now on; `None`
    /// when the stored TAT stands.
    #[must_use]
    pub fn normalize(&self, tat: u64, now: u64) -> Option<u64> {
        let full = now.saturating_add(self.capacity_nanos());
        (tat > full).then_some(full)
    }

    /// The TAT after giving back the token an admitted request took: exactly
    /// the bucket it would be had the request never come, at any later time.
    #[must_use]
    pub fn refund(&self, tat: u64) -> u64 {
        tat.saturating_sub(self.t.get())
    }

    /// Whole tokens in a bucket `debt` nanoseconds short of full.
    fn tokens_left(&self, debt: u64) -> u32 {
        let left = self.capacity_nanos().saturating_sub(debt) / self.t;
        u32::try_from(left).unwrap_or(u32::MAX)
    }

    /// Whole tokens in a bucket whose TAT is `tat`, at `now`.
    #[must_use]
    pub fn tokens_at(&self, tat: u64, now: u64) -> u32 {
        self.tokens_left(tat.saturating_sub(now).min(self.capacity_nanos()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn gcra(rate: f64, burst: u32) -> Gcra {
        Gcra::new(&ThrottleSettings::new(rate, burst).unwrap())
    }

    #[test]
    fn seed_numbers() {
        let g = gcra(1.0, 2);
        let now = 100 * S;
        let GcraDecision::Admit { tat, remaining, .. } = g.decide(0, now) else {
            panic!("first request refused")
        };
        assert_eq!(remaining, 1);
        let GcraDecision::Admit { tat, remaining, .. } = g.decide(tat, now) else {
            panic!("second request refused")
        };
        assert_eq!(remaining, 0);
        let refused = g.decide(tat, now);
        assert_eq!(
            refused,
            GcraDecision::Refuse {
                retry_after_nanos: S,
                full_after_nanos: 2 * S
            }
        );
        assert!(g.decide(tat, now + S - 1).is_admit().eq(&false));
        assert!(g.decide(tat, now + S).is_admit());
    }

    #[test]
    fn refund_restores_the_bucket() {
        let g = gcra(0.5, 3);
        let now = 7 * S;
        let GcraDecision::Admit { tat: a, .. } = g.decide(0, now) else {
            panic!()
        };
        let GcraDecision::Admit { tat: b, .. } = g.decide(a, now) else {
            panic!()
        };
        assert_eq!(g.refund(b), a);
        assert_eq!(g.tokens_at(g.refund(a), now), 3);
    }

    #[test]
    fn a_shrunk_bucket_caps_the_debt() {
        // Rate 1/s, burst 10, ten requests: the bucket owes 10 s.
        let slow = gcra(1.0, 10);
        let tat = 10 * S + 10 * S;
        // A faster rate applies at once: the bucket is empty (debt capped at
        // the new bucket's 1 s) and the first token is back after 100 ms.
        let fast = gcra(10.0, 10);
        assert_eq!(
            fast.decide(tat, 10 * S),
            GcraDecision::Refuse {
                retry_after_nanos: S / 10,
                full_after_nanos: S
            }
        );
        // Until the store writes the capped debt back, time runs against the
        // old TAT; once it has, the new rate refills the bucket.
        assert!(!fast.decide(tat, 10 * S + S / 10).is_admit());
        let normalized = fast.normalize(tat, 10 * S).unwrap();
        assert_eq!(normalized, 11 * S);
        assert!(fast.decide(normalized, 10 * S + S / 10).is_admit());
        assert_eq!(fast.normalize(normalized, 10 * S), None);
        assert_eq!(slow.tokens_at(tat, 10 * S), 0);
    }
}
