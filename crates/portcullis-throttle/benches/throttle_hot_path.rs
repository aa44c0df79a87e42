//! A fixed workload for counting the instructions the layer adds per request,
//! a figure that does not move with the machine's load (criterion's times
//! do, on a shared 2-core machine), as `quota_hot_path` does for the quota:
//!
//! ```text
//! export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind"
//! cargo bench -p portcullis-throttle --bench throttle_hot_path -- bare
//! cargo bench -p portcullis-throttle --bench throttle_hot_path -- layer
//! cargo bench -p portcullis-throttle --bench throttle_hot_path -- rejected
//! ```
//!
//! (layer − bare) / 200,000 is the layer's cost per admitted request (one
//! key, a burst nothing exhausts); (rejected − bare) / 200,000 the cost of a
//! refusal (the 429 rendered: a burst of 1 at one request a day, on a
//! stopped clock). A second word sets the count; under `cargo test
//! --benches` it runs 100 requests.

use std::hint::black_box;

use http::{HeaderName, HeaderValue, Request};
use portcullis_core::clock::ManualClock;
use portcullis_core::plan::ThrottleSettings;
use portcullis_test_support::Bare;
use portcullis_test_support::workload::{Args, drive};
use portcullis_throttle::{KeyBy, ThrottleLayer};
use tower::Layer;

const REQUESTS: u32 = 200_000;

fn main() {
    let args = Args::from_env();
    let mode = args.word(0).unwrap_or_default();
    let requests = args.requests(1, REQUESTS);
    let layered = mode == "layer" || mode == "rejected";
    let limit = if mode == "rejected" {
        ThrottleSettings::new(1.0 / 86_400.0, 1)
    } else {
        ThrottleSettings::new(1e9, 1_000_000)
    }
    .expect("valid limit");
    let header = HeaderName::from_static("x-api-key");
    let key = HeaderValue::from_static("key-00001-abcdefghijklmnop");
    let mut service = ThrottleLayer::new("bench", "prod")
        .clock(ManualClock::at_unix(1_795_000_000))
        .key_by(KeyBy::header(header.clone()))
        .key_limit(limit)
        .layer(Bare);
    let request = || {
        let mut request = Request::new(());
        request.headers_mut().insert(header.clone(), key.clone());
        request
    };
    // `rejected` admits the first request (a burst of 1) and refuses the rest.
    let rejected = mode == "rejected";
    black_box(drive(&mut service, layered, rejected, requests, request));
}
