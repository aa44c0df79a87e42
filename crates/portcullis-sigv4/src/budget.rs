//! The body bytes buffered across every in-flight request of one layer.
//!
//! A request whose payload hash must be computed (no `x-amz-content-sha256`)
//! or checked (a signed hex digest) is read before the layer can say yes. Each
//! such request reserves its bytes from one budget, shared by every clone of
//! the layer and of its services, before it keeps them: up front for the
//! size the body announces (`Content-Length`), then as it goes for what comes
//! beyond (a chunked body). A reservation that does not fit is refused at
//! once; nothing waits for room, so memory never grows past the budget.
//! The reservation is given back when the request is refused, when its
//! buffered chunks have all been handed to the inner service, or when the
//! request (or its response future, or its body) is dropped.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::SigV4Error;

/// The bytes of body buffering one layer allows across all its in-flight
/// requests.
#[derive(Clone, Debug)]
pub(crate) struct BodyBudget {
    semaphore: Arc<Semaphore>,
}

impl BodyBudget {
    /// A budget of `capacity` bytes (at most tokio's `Semaphore::MAX_PERMITS`,
    /// about 2^61 on 64-bit targets: more than any memory).
    pub(crate) fn new(capacity: u64) -> Self {
        let permits = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(permits)),
        }
    }

    /// The bytes not reserved now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> u64 {
        self.semaphore.available_permits() as u64
    }

    /// An empty reservation against this budget.
    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            semaphore: self.semaphore.clone(),
            permit: None,
            held: 0,
        }
    }
}

/// Bytes reserved from a [`BodyBudget`] for one request; given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    held: u64,
}

impl Reservation {
    /// Grows the reservation to `total` bytes (nothing to do when it holds
    /// that much already).
    ///
    /// # Errors
    ///
    /// [`SigV4Error::BodyBufferFull`] when the budget has not that much left
    /// now; the reservation keeps what it held.
    pub(crate) fn grow_to(&mut self, total: u64) -> Result<(), SigV4Error> {
        let Some(more) = total.checked_sub(self.held).filter(|more| *more > 0) else {
            return Ok(());
        };
        let more = u32::try_from(more).map_err(|_| SigV4Error::BodyBufferFull)?;
        let permit = self
            .semaphore
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| SigV4Error::BodyBufferFull)?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.held = total;
        Ok(())
    }

    /// The bytes held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> u64 {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back_on_drop() {
        let budget = BodyBudget::new(100);
        let mut a = budget.reservation();
        a.grow_to(60).expect("fits");
        a.grow_to(40).expect("already held");
        assert_eq!(a.held(), 60);
        let mut b = budget.clone().reservation();
        assert_eq!(b.grow_to(41), Err(SigV4Error::BodyBufferFull));
        assert_eq!(b.held(), 0, "a refused reservation keeps what it held");
        b.grow_to(40).expect("fits exactly");
        assert_eq!(budget.available(), 0);
        assert_eq!(a.grow_to(61), Err(SigV4Error::BodyBufferFull));
        drop(a);
        assert_eq!(budget.available(), 60);
        b.grow_to(100).expect("room again");
        drop(b);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn a_reservation_larger_than_a_permit_count_is_refused() {
        let budget = BodyBudget::new(u64::MAX);
        let mut a = budget.reservation();
        assert_eq!(
            a.grow_to(u64::from(u32::MAX) + 1),
            Err(SigV4Error::BodyBufferFull)
        );
        a.grow_to(u64::from(u32::MAX)).expect("one permit count");
    }
}
