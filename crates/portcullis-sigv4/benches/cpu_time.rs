//! CPU time per request through the layer, read from the kernel's per-thread
//! accounting rather than the wall clock: on a machine shared with other work,
//! the wall clock also counts the time this thread waited for a core.
//!
//! Run: `cargo bench -p portcullis-sigv4 --bench cpu_time` (Linux).
//!
//! 400,000 requests signed by `aws-sigv4` are built first; then each variant
//! sends them one by one, polling each future once. The figure is
//! (CPU time of the variant − CPU time of the bare service) / requests.

#![allow(missing_docs)]

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::{Fixture, handler, layer, signed_get};
use http::{Request, Response};
use http_body_util::Full;
use portcullis_test_support::cpu::thread_cpu_time;
use portcullis_test_support::poll_once;
use tower::{Service, ServiceBuilder};

const REQUESTS: usize = 400_000;

/// User + system CPU seconds of this thread, from `/proc/thread-self/stat`.
fn run<S>(mut service: S, fixture: &Fixture) -> Option<f64>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = Response<portcullis_core::ResponseBody<Full<Bytes>>>,
            Error = Infallible,
        >,
{
    let requests: Vec<_> = (0..REQUESTS)
        .map(|_| fixture.request(Full::new(Bytes::new())))
        .collect();
    let start = thread_cpu_time();
    for request in requests {
        let response = poll_once(service.call(request)).expect("infallible");
        assert_eq!(response.status(), 200);
    }
    Some((thread_cpu_time() - start).as_secs_f64())
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let get = signed_get();
    let bare = tower::service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(portcullis_core::ResponseBody::inner(
            Full::new(Bytes::new()),
        )))
    });
    let Some(bare) = run(bare, &get) else {
        println!("cpu_time: /proc/thread-self/stat is not readable here; skipped");
        return;
    };
    let verify = run(
        ServiceBuilder::new()
            .layer(layer(false))
            .service_fn(handler),
        &get,
    )
    .unwrap_or(f64::NAN);
    let policy = run(
        ServiceBuilder::new().layer(layer(true)).service_fn(handler),
        &get,
    )
    .unwrap_or(f64::NAN);
    let per = |total: f64| (total - bare) * 1e6 / REQUESTS as f64;
    println!(
        "cpu_time: {REQUESTS} signed GETs; bare service {:.3} us/request",
        bare * 1e6 / REQUESTS as f64
    );
    println!(
        "cpu_time: SigV4Layer verify only: {:.2} us/request over the bare service",
        per(verify)
    );
    println!(
        "cpu_time: SigV4Layer verify + 20-statement policy: {:.2} us/request over the bare service",
        per(policy)
    );
}
