//! A fixed workload for the cost of a verified-token cache hit: the thread's
//! CPU time and (under callgrind) the instructions per request, figures that
//! move less with the machine's load than criterion's wall-clock medians.
//!
//! ```text
//! cargo build --release -p portcullis-jwt --example jwt_hot_path
//! target/release/examples/jwt_hot_path bare 2000000   # CPU time per request
//! target/release/examples/jwt_hot_path hit 2000000
//! valgrind --tool=callgrind target/release/examples/jwt_hot_path hit 20000
//! ```
//!
//! Both modes build the same request (`Authorization: Bearer` and a
//! Cognito-shaped RS256 access token of about 900 bytes) per call; `bare`
//! calls the inner `service_fn` alone, `hit` the layer in front of it with
//! the token already cached. The layer's cost is the difference. Valgrind's
//! CPU has no SHA extensions: SHA-256 counts for more instructions there
//! than it takes time on the machine.

#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::ready;
use std::hint::black_box;

use http::{HeaderValue, Request, Response};
use portcullis_jwt::TokenCacheConfig;
use tower::{Layer, Service, service_fn};

#[path = "../benches/support/fixture.rs"]
mod fixture;

use fixture::{fixture, layer};
use portcullis_test_support::poll_once;

const REQUESTS: u32 = 200_000;

/// The calling thread's CPU time so far, in nanoseconds.
fn thread_cpu_nanos() -> Option<u64> {
    u64::try_from(portcullis_test_support::cpu::thread_cpu_time().as_nanos()).ok()
}

fn run<S>(mut service: S, value: &HeaderValue, requests: u32) -> (Option<u64>, Option<u64>)
where
    S: Service<Request<()>, Error = Infallible>,
    S::Response: IsOk,
{
    let request = || {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.clone());
        request
    };
    // Warm up (and fill the cache).
    for _ in 0..1_000 {
        assert!(poll_once(service.call(request())).expect("infallible").ok());
    }
    let start = thread_cpu_nanos();
    for _ in 0..requests {
        let response = poll_once(service.call(request())).expect("infallible");
        assert!(black_box(response).ok());
    }
    (start, thread_cpu_nanos())
}

trait IsOk {
    fn ok(&self) -> bool;
}

impl<B> IsOk for Response<B> {
    fn ok(&self) -> bool {
        self.status().is_success()
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "hit".into());
    let requests: u32 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS);
    let fixture = fixture();
    let token = &fixture.token;
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    let inner = service_fn(|_: Request<()>| ready(Ok::<_, Infallible>(Response::new(()))));
    let (start, end) = match mode.as_str() {
        "bare" => run(inner, &value, requests),
        "hit" => run(
            layer(&fixture, TokenCacheConfig::default()).layer(inner),
            &value,
            requests,
        ),
        other => {
            eprintln!("unknown mode `{other}`: bare or hit");
            std::process::exit(2);
        }
    };
    let cpu = start
        .zip(end)
        .map(|(start, end)| (end - start) as f64 / f64::from(requests));
    println!(
        "{mode}: {requests} requests ({} token bytes), thread CPU {} ns/request",
        token.len(),
        cpu.map_or("n/a".into(), |c| format!("{c:.1}"))
    );
}
