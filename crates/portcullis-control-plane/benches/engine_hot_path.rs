//! A fixed workload for counting the instructions `QuotaEngine` spends per
//! request, a figure that does not move with the machine's load:
//!
//! ```text
//! export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind"
//! cargo bench -p portcullis-control-plane --bench engine_hot_path -- bare
//! cargo bench -p portcullis-control-plane --bench engine_hot_path -- block
//! cargo bench -p portcullis-control-plane --bench engine_hot_path -- keys
//! cargo bench -p portcullis-control-plane --bench engine_hot_path -- new 20000
//! cargo bench -p portcullis-control-plane --bench engine_hot_path -- in_place
//! cargo bench -p portcullis-control-plane --bench engine_hot_path -- in_place_new 20000
//! ```
//!
//! - `bare`: the loop and its requests, without the engine.
//! - `block`: one key holding a block of a million: every request but the
//!   first takes one from it on the fast path (a compare-and-swap, no lock,
//!   no allocation).
//! - `keys`: 1,024 keys in turn, each holding such a block: the same path
//!   with a populated map.
//! - `new`: a new key every request: the slow path (an entry made, a block
//!   reserved in the in-memory store, the boxed future).
//! - `in_place`: 1,024 keys in turn, counted on the in-memory store's
//!   counters ([`EngineConfig::count_in_place`]): the store's lock, a
//!   lookup and an in-place update, no entry.
//! - `in_place_new`: a new key every request, counted in place: a new
//!   counter in the store.
//!
//! (mode − bare) / count is the engine's cost per request. A second word
//! sets the count (200,000 by default); under `cargo test --benches` it runs
//! 100 requests.

use std::hint::black_box;

use portcullis_control_plane::{EngineConfig, MemoryStore, QuotaEngine};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{Answer, QuotaRequest, QuotaStore};
use portcullis_test_support::workload::Args;
use time::macros::date;

const REQUESTS: u32 = 200_000;
const KEYS: usize = 1024;

fn main() {
    let args = Args::from_env();
    let mode = args.word(0).unwrap_or("block").to_owned();
    let requests = args.requests(1, REQUESTS);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let big = mode != "new";
    let in_place = mode.starts_with("in_place");
    let engine = QuotaEngine::with_config(
        MemoryStore::memory(),
        EngineConfig {
            max_block: if big { 1 << 20 } else { 16 },
            initial_block: if big { 1 << 20 } else { 16 },
            count_in_place: in_place,
            ..EngineConfig::default()
        },
    );
    let key_count = match mode.as_str() {
        "keys" | "in_place" => KEYS,
        "new" | "in_place_new" => usize::try_from(requests).expect("a u32 fits a usize"),
        _ => 1,
    };
    let keys: Vec<String> = (0..key_count).map(|i| format!("key-{i:09}")).collect();
    let day = date!(2026 - 11 - 23);
    // Counted in place, a limit below `u32::MAX`, as usual quotas are: the
    // store keeps wider counts in a side map.
    let limit = if in_place { 1 << 30 } else { 1 << 46 };
    let quota = QuotaSettings::new(limit, QuotaPeriod::Day).expect("valid quota");
    let window = Calendar::new().window_of_date(QuotaPeriod::Day, day);
    let mut admitted = 0u64;
    let mut pending = 0u64;
    for i in 0..requests as usize {
        let request = QuotaRequest {
            plan_id: "bench-plan",
            key_id: &keys[i % key_count],
            quota,
            window,
            day,
            initial_window: None,
        };
        let request = black_box(&request);
        if mode == "bare" {
            admitted += u64::from(!request.key_id.is_empty());
            continue;
        }
        let decision = match engine.consume(request) {
            Answer::Ready(decision) => decision,
            Answer::Pending(future) => {
                pending += 1;
                runtime.block_on(future)
            }
        };
        admitted += u64::from(decision.expect("in memory").admitted);
    }
    assert_eq!(admitted, u64::from(requests), "every request admitted");
    let expected_pending = match mode.as_str() {
        "bare" => 0,
        "new" => u64::from(requests),
        // Counted in place: always answered at once.
        _ if in_place => 0,
        // The first request of each key reserves its block.
        _ => u64::try_from(key_count.min(requests as usize)).expect("a usize fits a u64"),
    };
    assert_eq!(pending, expected_pending, "slow paths taken");
    black_box((admitted, engine.tracked_keys()));
}
