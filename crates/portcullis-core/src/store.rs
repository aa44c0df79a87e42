//! What every store on the request path shares: [`Answer`], the one shape of
//! its fast path, and [`OnStoreError`], the one policy for when it fails.
//!
//! # `Answer`
//!
//! A store that keeps its state in memory decides while the request waits and
//! answers [`Answer::Ready`], so the layer calls the inner service without
//! boxing, polling or awaiting anything. A store that must do I/O (Redis, a
//! database, a remote service) answers [`Answer::Pending`] with the future
//! that will decide. Every store trait of Portcullis whose decision sits on
//! the request path answers this way.
//!
//! ```
//! use std::future::Ready;
//! use portcullis_core::store::Answer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let now: Answer<u32, Ready<u32>> = Answer::Ready(7);
//! assert_eq!(now.ready(), Some(&7));
//! assert_eq!(now.resolve().await, 7);
//!
//! let later: Answer<u32, _> = Answer::Pending(std::future::ready(8));
//! assert!(later.ready().is_none());
//! assert_eq!(later.resolve().await, 8);
//! # }
//! ```

use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

/// What a layer does with a request when its store fails (a timeout, a lost
/// connection, a script error).
///
/// Every layer whose decision reads a store takes this policy through its
/// `on_store_error` setter. The decision the layer's span records is
/// [`Decision::fail_open`](crate::trace::Decision::fail_open) when it serves
/// anyway, and API_CONFIGURATION_ERROR (500) when it refuses.
///
/// ```
/// use portcullis_core::store::OnStoreError;
///
/// assert_eq!(OnStoreError::default(), OnStoreError::Allow);
/// let policy: OnStoreError = serde_json::from_str(r#""refuse""#).unwrap();
/// assert_eq!(policy, OnStoreError::Refuse);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Serve the request anyway, and log the failure: API Gateway's
    /// behaviour when its usage-plan check fails ("fail open").
    #[default]
    Allow,
    /// Refuse the request with API_CONFIGURATION_ERROR (500) ("fail closed").
    Refuse,
}

/// A store's answer: the value now, or a future that will produce it.
#[must_use = "an answer is the store's decision: resolve it or match on it"]
pub enum Answer<T, F> {
    /// Decided without waiting.
    Ready(T),
    /// Decided once the future completes.
    Pending(F),
}

impl<T, F> Answer<T, F> {
    /// The value, when it is known now.
    pub fn ready(&self) -> Option<&T> {
        match self {
            Self::Ready(value) => Some(value),
            Self::Pending(_) => None,
        }
    }

    /// Whether the value is known now.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready(_))
    }
}

impl<T, F: Future<Output = T>> Answer<T, F> {
    /// Waits for the value: at once when it is ready.
    pub async fn resolve(self) -> T {
        match self {
            Self::Ready(value) => value,
            Self::Pending(future) => future.await,
        }
    }
}

impl<T: fmt::Debug, F> fmt::Debug for Answer<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(value) => f.debug_tuple("Ready").field(value).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}
