//! Checks of API keys, and of bad input changing nothing.

use std::collections::BTreeMap;

use portcullis_api_key::ApiKeyValue;
use portcullis_core::plan::UsagePlan;
use time::macros::date;

use crate::error::StoreError;
use crate::model::{ApiKeyFilter, ApiKeyUpdate, NewApiKey, PageRequest};
use crate::state::NewUsagePlan;
use crate::store::ControlPlaneStore;

use super::fixtures::{DAY, counter, expect, key, ok};

pub(super) async fn api_keys<S: ControlPlaneStore>(store: &S) {
    let created = ok(
        store.create_api_key(NewApiKey::default()).await,
        "create a key with nothing given",
    );
    expect(
        created.id.len() == 10 && !created.enabled,
        "a generated id has 10 characters and a new key is disabled by default",
    );
    expect(
        created.value.as_ref().map(|v| v.digest()) == Some(created.digest)
            || created.value.is_none(),
        "a generated value matches its digest",
    );
    let got = ok(store.get_api_key(&created.id).await, "get the key");
    expect(got == created, "get answers what create answered");
    let found = ok(store.find_api_key(&created.digest).await, "find by digest");
    expect(
        found.as_ref().map(|k| &k.id) == Some(&created.id),
        "the key is found by its digest",
    );

    let value = match ApiKeyValue::new("conformanceValue0123456789") {
        Ok(value) => value,
        Err(error) => panic!("conformance: {error}"),
    };
    let with_value = NewApiKey {
        value: Some(value.clone()),
        ..key("cf-a", "alpha")
    };
    ok(
        store.create_api_key(with_value).await,
        "create with a value",
    );
    let duplicate = NewApiKey {
        value: Some(value),
        ..key("cf-b", "beta")
    };
    expect(
        matches!(
            store.create_api_key(duplicate).await,
            Err(StoreError::Conflict(_))
        ),
        "a duplicate value is a conflict",
    );
    expect(
        matches!(
            store.get_api_key("cf-b").await,
            Err(StoreError::NotFound { .. })
        ),
        "a refused create writes nothing",
    );
    expect(
        matches!(
            store.create_api_key(key("cf-a", "again")).await,
            Err(StoreError::Conflict(_))
        ),
        "a duplicate id is a conflict",
    );

    // The same update, sent twice.
    let update = || {
        ApiKeyUpdate::new()
            .enabled(false)
            .description(Some("d".into()))
    };
    let updated = ok(store.update_api_key("cf-a", update()).await, "update");
    expect(
        !updated.enabled && updated.description.as_deref() == Some("d"),
        "update changes the fields named",
    );
    let again = ok(store.update_api_key("cf-a", update()).await, "update again");
    expect(
        again.enabled == updated.enabled && again.description == updated.description,
        "the same update twice gives the same key (idempotent)",
    );

    ok(store.delete_api_key("cf-a").await, "delete");
    expect(
        matches!(
            store.delete_api_key("cf-a").await,
            Err(StoreError::NotFound { .. })
        ),
        "deleting twice is not found",
    );
    expect(
        matches!(
            store.update_api_key("cf-a", ApiKeyUpdate::new()).await,
            Err(StoreError::NotFound { .. })
        ),
        "updating a deleted key is not found",
    );

    let imported = store
        .import_api_keys(vec![key("cf-i1", "i1"), key("cf-i1", "i1 twice")])
        .await;
    expect(
        imported.is_err(),
        "an import with a duplicate id is refused",
    );
    expect(
        store.get_api_key("cf-i1").await.is_err(),
        "a refused import writes nothing",
    );
    let imported = ok(
        store
            .import_api_keys(vec![key("cf-i1", "i1"), key("cf-i2", "i2")])
            .await,
        "import",
    );
    expect(imported.len() == 2, "an import creates every key");
}

pub(super) async fn bad_input_changes_nothing<S: ControlPlaneStore>(store: &S) {
    ok(store.create_api_key(key("cf-k", "kept")).await, "create");
    let before = ok(store.get_api_key("cf-k").await, "get");
    let long = "x".repeat(2000);
    let bad_updates = [
        ApiKeyUpdate::new().name(Some(String::new())),
        ApiKeyUpdate::new().enabled(false).name(Some(long.clone())),
        ApiKeyUpdate::new()
            .enabled(false)
            .customer_id(Some("bad\u{0}".into())),
    ];
    for update in bad_updates {
        expect(
            matches!(
                store.update_api_key("cf-k", update).await,
                Err(StoreError::BadRequest(_))
            ),
            "an invalid update is a bad request",
        );
    }
    expect(
        ok(store.get_api_key("cf-k").await, "get") == before,
        "an invalid update changes nothing",
    );
    let mut tags = BTreeMap::new();
    tags.insert("aws:reserved".to_owned(), "v".to_owned());
    let bad_keys = [
        NewApiKey {
            tags,
            ..key("cf-t", "t")
        },
        NewApiKey {
            stage_keys: vec!["no-slash".into()],
            ..key("cf-t", "t")
        },
        key("bad id!", "t"),
    ];
    for bad in bad_keys {
        expect(
            matches!(
                store.create_api_key(bad).await,
                Err(StoreError::BadRequest(_))
            ),
            "an invalid key is a bad request",
        );
    }
    let page = ok(
        store
            .get_api_keys(ApiKeyFilter::default(), PageRequest::default())
            .await,
        "list",
    );
    expect(page.items.len() == 1, "invalid creates write nothing");

    let nameless = NewUsagePlan {
        plan: match UsagePlan::new("p") {
            Ok(plan) => plan,
            Err(error) => panic!("conformance: {error}"),
        },
        id: Some("cf-p".into()),
        tags: BTreeMap::new(),
    };
    expect(
        matches!(
            store.create_usage_plan(nameless).await,
            Err(StoreError::BadRequest(_))
        ),
        "a plan without a name is a bad request",
    );
    expect(
        store.get_usage_plan("cf-p").await.is_err(),
        "a refused plan is not stored",
    );
    expect(
        matches!(
            store.reserve(counter("p", "k", 10), 0).await,
            Err(StoreError::BadRequest(_))
        ),
        "reserving 0 is a bad request",
    );
    expect(
        matches!(
            store.get_usage("p", "k", DAY, date!(2026 - 11 - 01)).await,
            Err(StoreError::BadRequest(_))
        ),
        "GetUsage with the start after the end is a bad request",
    );
}
