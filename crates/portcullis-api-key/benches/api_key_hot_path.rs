//! A fixed workload for counting the instructions and the CPU time the layer
//! adds per accepted request, with 100,000 keys loaded: figures that do not
//! move with the machine's load as criterion's wall-clock medians do.
//!
//! ```text
//! export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind"
//! cargo bench -p portcullis-api-key --bench api_key_hot_path -- bare
//! cargo bench -p portcullis-api-key --bench api_key_hot_path -- layer
//! unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER
//! cargo bench -p portcullis-api-key --bench api_key_hot_path -- bare 5000000   # CPU time per request
//! cargo bench -p portcullis-api-key --bench api_key_hot_path -- layer 5000000
//! ```
//!
//! Both modes load the same 100,000 keys and build the same requests (with
//! `x-api-key`, as a client sends them, and no extension yet); `bare` calls
//! the identity service, `layer` the layer in front of it. Each prints the
//! thread's CPU time per request over the timed loop. The layer's cost is
//! (layer − bare) / 200,000 instructions (the default count), or the difference of the printed
//! CPU times. Under `cargo test --benches` it runs 100 requests.

#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::ready;
use std::hint::black_box;
use std::time::Instant;

use http::{Request, Response};
use tower::{Layer, Service, service_fn};

#[path = "support/workload.rs"]
mod workload;
use portcullis_test_support::cpu::thread_cpu_time;
use portcullis_test_support::poll_once;
use portcullis_test_support::workload::Args;
use workload::setup;

/// The default number of requests (a second argument overrides it: use a
/// few million for the CPU time, whose clock ticks every 10 ms).
const REQUESTS: u32 = 200_000;

fn main() {
    let args = Args::from_env();
    let mode = args.word(0).unwrap_or("layer");
    let requests = args.requests(1, REQUESTS);
    let (keys, value) = setup();
    let identity = service_fn(|_: Request<()>| ready(Ok::<_, Infallible>(Response::new(()))));
    let request = || {
        Request::builder()
            .uri("/loyalty/42")
            .header("accept", "application/json")
            .header("user-agent", "bench/1.0")
            .header("x-api-key", value.expose())
            .body(())
            .expect("a valid request")
    };
    let mut accepted = 0u32;
    let (cpu, wall) = match mode {
        "bare" => {
            let mut service = identity;
            let (cpu, wall) = (thread_cpu_time(), Instant::now());
            for _ in 0..requests {
                let response = poll_once(service.call(request())).expect("infallible");
                accepted += u32::from(black_box(response).status().is_success());
            }
            (cpu, wall)
        }
        "layer" => {
            let mut service = keys.layer("a1b2c3d4e5", "prod").layer(identity);
            let (cpu, wall) = (thread_cpu_time(), Instant::now());
            for _ in 0..requests {
                let response = poll_once(service.call(request())).expect("infallible");
                accepted += u32::from(black_box(response).status().is_success());
            }
            (cpu, wall)
        }
        other => {
            eprintln!("unknown mode `{other}`: bare or layer");
            std::process::exit(2);
        }
    };
    let elapsed = wall.elapsed();
    assert_eq!(accepted, requests, "every request is accepted");
    let cpu = thread_cpu_time().saturating_sub(cpu);
    println!(
        "{mode}: {requests} requests, wall {:.1} ns/request, thread CPU {:.1} ns/request",
        elapsed.as_nanos() as f64 / f64::from(requests),
        cpu.as_nanos() as f64 / f64::from(requests)
    );
}
