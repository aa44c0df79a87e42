//! The workload the criterion bench and the `api_key_hot_path` program
//! share: 100,000 keys in the in-memory store, plus one valid key with a
//! name, a customer id and a usage plan, polled through an identity service.

use portcullis_api_key::{ApiKeyRecord, ApiKeyValue, ApiKeys, InMemoryApiKeyStore, NewApiKey};
use portcullis_core::plan::{ApiStage, ThrottleSettings, UsagePlan};

/// How many keys the store holds besides the benchmark's own.
pub(crate) const KEYS: usize = 100_000;

/// The store with [`KEYS`] random keys and the valid key, whose value it returns.
pub(crate) fn setup() -> (ApiKeys, ApiKeyValue) {
    let now = time::OffsetDateTime::now_utc();
    let records = (0..KEYS).map(|i| {
        let value = ApiKeyValue::generate().expect("the OS CSPRNG is available");
        ApiKeyRecord::new(format!("key-{i}"), value.digest(), now)
    });
    let store = InMemoryApiKeyStore::from_records(records).expect("generated values are distinct");
    let keys = ApiKeys::with_store(store);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    let value = rt.block_on(async {
        let plan = UsagePlan::new("basic")
            .expect("a non-empty id")
            .with_throttle(ThrottleSettings::new(100.0, 200).expect("valid settings"))
            .with_api_stage(ApiStage {
                api_id: "a1b2c3d4e5".into(),
                stage: "prod".into(),
                throttle: Default::default(),
            });
        keys.put_usage_plan(plan).await.expect("a valid plan");
        keys.create(
            NewApiKey::new()
                .id("bench")
                .name("bench key")
                .customer_id("acme")
                .usage_plan("basic"),
        )
        .await
        .expect("a new key")
        .value
    });
    assert_eq!(keys.store().len(), KEYS + 1);
    (keys, value)
}
