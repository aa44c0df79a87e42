#![doc = include_str!("../README.md")]

pub mod body;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod context;
pub mod future;
pub mod hash;
pub mod path;
pub mod plan;
pub mod ratelimit;
pub mod refusal;
pub mod request_span;
pub mod resource;
pub mod response;
pub mod store;
pub mod trace;

/// Writes `get_ref`, `get_mut` and `into_inner` for a service whose wrapped
/// service is its `inner` field, as tower-http's services have them.
///
/// ```
/// pub struct Logging<S> {
///     inner: S,
/// }
///
/// impl<S> Logging<S> {
///     portcullis_core::inner_service_accessors!();
/// }
///
/// let mut service = Logging { inner: 7 };
/// *service.get_mut() += 1;
/// assert_eq!(*service.get_ref(), 8);
/// assert_eq!(service.into_inner(), 8);
/// ```
#[macro_export]
macro_rules! inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes this service, returning the inner one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub use body::ResponseBody;
pub use response::{GatewayResponse, GatewayResponseType, GatewayResponses, GatewayResponsesLayer};
