//! Helpers shared by the Portcullis crates' tests and benches, so that each
//! is written once:
//!
//! - [`sigv4`]: signing a request with the `aws-sigv4` crate, as an AWS SDK
//!   would;
//! - [`serve`]: serving a Tower service over HTTP/1 on a free loopback port;
//! - `grpc` (feature `grpc`): a tonic health server behind a layer, and its
//!   client;
//! - [`poll_once`]: driving a future that a synchronous decision makes ready
//!   at once, and [`Bare`], a service that answers at once;
//! - [`cpu`]: the calling thread's CPU time, and a criterion measurement of
//!   it;
//! - [`metrics`]: a recorder that keeps what the code under test records;
//! - [`workload`]: the command line of a fixed-workload bench program.
//!
//! It depends on no Portcullis crate, so a crate's tests see one copy of
//! that crate's types. It is not published; a failed setup here panics,
//! which fails the test that asked for it.
//!
//! ```
//! use std::future::ready;
//!
//! assert_eq!(portcullis_test_support::poll_once(ready(7)), 7);
//! ```

pub mod cpu;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod metrics;
pub mod serve;
pub mod sigv4;
pub mod workload;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower_service::Service;

/// Polls `future` once and returns its output.
///
/// # Panics
///
/// If the future is not ready after one poll: the callers measure or test a
/// path that decides synchronously, and a pending future means it did not.
pub fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future did not finish in one poll"),
    }
}

/// Calls `service` with `request`, polls the answer once, and returns its
/// status.
///
/// # Panics
///
/// As [`poll_once`], if the answer is not ready after one poll.
pub fn status_now<S, R, B>(service: &mut S, request: R) -> http::StatusCode
where
    S: Service<R, Response = http::Response<B>, Error = Infallible>,
{
    match poll_once(service.call(request)) {
        Ok(response) => response.status(),
        Err(never) => match never {},
    }
}

/// A service that answers `200 OK` with an empty body at once: the bare
/// service the benches measure a layer's cost against.
///
/// ```
/// use portcullis_test_support::{Bare, poll_once};
/// use tower_service::Service;
///
/// let response = poll_once(Bare.call(http::Request::new(()))).expect("infallible");
/// assert_eq!(response.status(), 200);
/// assert_eq!(
///     portcullis_test_support::status_now(&mut Bare, http::Request::new(())),
///     200
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct Bare;

impl<B> Service<http::Request<B>> for Bare {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<http::Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        ready(Ok(http::Response::new(String::new())))
    }
}
