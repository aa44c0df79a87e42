//! A fixed workload for the cost of a verified-token cache hit: the thread's
//! CPU time and (under callgrind) the instructions per request, figures that
//! move less with the machine's load than criterion's wall-clock medians.
//!
//! ```text
//! cargo bench -p portcullis-jwt --bench jwt_hot_path -- bare 2000000   # CPU time per request
//! cargo bench -p portcullis-jwt --bench jwt_hot_path -- hit 2000000
//! CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind" \
//!     cargo bench -p portcullis-jwt --bench jwt_hot_path -- hit 20000
//! ```
//!
//! Both modes build the same request (`Authorization: Bearer` and a
//! Cognito-shaped RS256 access token of about 900 bytes) per call; `bare`
//! calls the inner `service_fn` alone, `hit` the layer in front of it with
//! the token already cached. The layer's cost is the difference. Valgrind's
//! CPU has no SHA extensions: SHA-256 counts for more instructions there
//! than it takes time on the machine. Under `cargo test --benches` it runs 100
//! requests.

#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::ready;
use std::hint::black_box;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use portcullis_jwt::TokenCacheConfig;
use tower::{Layer, Service, service_fn};

#[path = "support/fixture.rs"]
mod fixture;

use fixture::{fixture, layer};
use portcullis_test_support::cpu::thread_cpu_time;
use portcullis_test_support::poll_once;
use portcullis_test_support::workload::Args;

const REQUESTS: u32 = 200_000;

/// Runs `requests` calls after a warm-up, and returns the thread's CPU time
/// they took.
fn run<S>(mut service: S, value: &HeaderValue, requests: u32) -> Duration
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
    let start = thread_cpu_time();
    for _ in 0..requests {
        let response = poll_once(service.call(request())).expect("infallible");
        assert!(black_box(response).ok());
    }
    thread_cpu_time().saturating_sub(start)
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
    let args = Args::from_env();
    let mode = args.word(0).unwrap_or("hit");
    let requests = args.requests(1, REQUESTS);
    let fixture = fixture();
    let token = &fixture.token;
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    let inner = service_fn(|_: Request<()>| ready(Ok::<_, Infallible>(Response::new(()))));
    let cpu = match mode {
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
    println!(
        "{mode}: {requests} requests ({} token bytes), thread CPU {:.1} ns/request",
        token.len(),
        cpu.as_nanos() as f64 / f64::from(requests)
    );
}
