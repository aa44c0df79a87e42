//! A fixed workload for counting the instructions the layer adds per request,
//! a figure that does not move with the machine's load (criterion's times
//! do, on a shared 2-core machine):
//!
//! ```text
//! export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind"
//! cargo bench -p portcullis-quota --bench quota_hot_path -- bare
//! cargo bench -p portcullis-quota --bench quota_hot_path -- layer day
//! cargo bench -p portcullis-quota --bench quota_hot_path -- layer month
//! cargo bench -p portcullis-quota --bench quota_hot_path -- rejected
//! ```
//!
//! (layer − bare) / 200,000 is the layer's cost per admitted request;
//! (rejected − bare) / 200,000 the cost of a refusal (the 429 rendered). A
//! third word sets the count; under `cargo test --benches` it runs 100
//! requests.

use std::hint::black_box;
use std::sync::Arc;

use http::Request;
use portcullis_core::clock::ManualClock;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_test_support::Bare;
use portcullis_test_support::workload::{Args, drive};
use tower::Layer;

const REQUESTS: u32 = 200_000;

fn main() {
    let args = Args::from_env();
    let mode = args.word(0).unwrap_or_default();
    let requests = args.requests(2, REQUESTS);
    let layered = mode == "layer" || mode == "rejected";
    let limit = if mode == "rejected" {
        1
    } else {
        u64::MAX >> 20
    };
    let period = match args.word(1) {
        Some("week") => QuotaPeriod::Week,
        Some("month") => QuotaPeriod::Month,
        _ => QuotaPeriod::Day,
    };
    let quota = QuotaSettings::new(limit, period).expect("valid quota");
    let plan = Arc::new(UsagePlan::new("bench").expect("valid id").with_quota(quota));
    let context = ApiKeyContext::new("key-1").with_usage_plan(plan);
    let mut service = QuotaLayer::new()
        .clock(ManualClock::at_unix(1_795_000_000))
        .layer(Bare);
    let request = || {
        let mut request = Request::new(());
        request.request_context_mut().set_api_key(context.clone());
        request
    };
    // `rejected` admits the first request (a quota of 1) and refuses the rest.
    let rejected = mode == "rejected";
    black_box(drive(&mut service, layered, rejected, requests, request));
}
