//! A fixed workload for counting the instructions a cache hit costs, a
//! figure that does not move with the machine's load (criterion's times do,
//! on a shared 2-core machine):
//!
//! ```text
//! export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind"
//! cargo bench -p portcullis-authorizer --bench authorizer_hot_path -- bare
//! cargo bench -p portcullis-authorizer --bench authorizer_hot_path -- hit
//! ```
//!
//! (hit − bare) / 200,000 is the layer's cost per cached request (a second
//! word sets the count): the same TOKEN request and two-statement policy as
//! `benches/cache_hit.rs`. Under `cargo test --benches` it runs 100 requests.

use std::hint::black_box;

use portcullis_test_support::workload::Args;
use portcullis_test_support::{Bare, status_now};
use tower::{Layer, Service};

#[path = "support/workload.rs"]
mod workload;

use workload::{layer, request};

const REQUESTS: u32 = 200_000;

fn main() {
    let args = Args::from_env();
    let mode = args.word(0).unwrap_or("hit").to_owned();
    let requests = args.requests(1, REQUESTS);
    let mut layered = layer().layer(Bare);
    // The first call runs the authorizer (ready at once: the closure never
    // waits); every later call is a cache hit.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let first = runtime
        .block_on(layered.call(request()))
        .expect("infallible");
    assert_eq!(first.status(), 200);
    let mut bare = Bare;
    let mut ok = 0u32;
    for _ in 0..requests {
        let request = black_box(request());
        let status = match mode.as_str() {
            "bare" => status_now(&mut bare, request),
            _ => status_now(&mut layered, request),
        };
        ok += u32::from(status == 200);
    }
    assert_eq!(ok, requests, "every request is admitted");
    println!("{mode}: {ok} requests");
}
