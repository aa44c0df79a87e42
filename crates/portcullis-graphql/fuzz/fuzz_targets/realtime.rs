//! AppSync's real-time protocol on untrusted input: the connection's query
//! string (its `header` parameter: percent-encoding, base64, JSON, header
//! names and values) and every client frame (JSON messages, `start`
//! payloads with their `data` and `extensions.authorization`, GraphQL
//! documents). The input's first line is the query string, each further
//! line a frame. Nothing may panic, and `serve` must return once the frames
//! end.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run realtime fuzz/corpus/realtime fuzz/seeds/realtime -- -max_total_time=60`
//! (the seeds: an authorized connection with a subscription, a query, an
//! unknown field and a stop; and a refused connection).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use async_graphql::{EmptyMutation, Object, Schema, Subscription};
use libfuzzer_sys::fuzz_target;
use portcullis_api_key::{ApiKeyValue, ApiKeys, NewApiKey};
use portcullis_graphql::{
    AppSyncAuthLayer, AppSyncDirectives, AppSyncRealtime, AuthMode, AuthPolicy,
};

struct Query;
#[Object]
impl Query {
    async fn ping(&self) -> bool {
        true
    }
}

struct Events;
#[Subscription]
impl Events {
    async fn ticks(&self) -> impl futures_util::Stream<Item = i32> {
        futures_util::stream::iter([1, 2, 3])
    }
}

type FuzzSchema = Schema<Query, EmptyMutation, Events>;

fn setup() -> &'static (tokio::runtime::Runtime, AppSyncRealtime<FuzzSchema>) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, AppSyncRealtime<FuzzSchema>)> =
        OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let keys = ApiKeys::new();
        runtime
            .block_on(
                keys.create(
                    NewApiKey::new()
                        .id("fuzz")
                        .value(ApiKeyValue::new("fuzzfuzzfuzzfuzzfuzzfuzz").expect("a key value")),
                ),
            )
            .expect("a key");
        let policy = AuthPolicy::from_sdl(
            AuthMode::ApiKey,
            "type Query { ping: Boolean } type Subscription { ticks: Int }",
        )
        .expect("a policy");
        let directives = AppSyncDirectives::new(policy);
        let schema = Schema::build(Query, EmptyMutation, Events)
            .extension(directives.clone())
            .finish();
        let auth = AppSyncAuthLayer::new(AuthMode::ApiKey, keys.layer("api", "graphql").require_usage_plan(false));
        let realtime = AppSyncRealtime::new(schema, &auth, directives)
            .refusal_wait(Duration::from_millis(1))
            .max_message_bytes(4096);
        (runtime, realtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let (runtime, realtime) = setup();
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let query = lines.next().map(str::to_owned);
    let frames: Vec<String> = lines.map(str::to_owned).collect();
    runtime.block_on(realtime.serve(
        query.as_deref(),
        futures_util::stream::iter(frames),
        futures_util::sink::drain(),
    ));
});
