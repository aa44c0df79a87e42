//! Checks of usage plans, their keys, and paging.

use std::collections::BTreeMap;

use portcullis_core::plan::ApiStage;

use crate::error::StoreError;
use crate::model::{ApiKeyFilter, NewApiKey, PageRequest, UsagePlanRecord};
use crate::store::ControlPlaneStore;

use super::fixtures::{expect, key, ok, plan};

pub(super) async fn usage_plans_and_keys<S: ControlPlaneStore>(store: &S) {
    ok(
        store
            .create_usage_plan(plan("cf-gold", &[("api1", "prod")]))
            .await,
        "create plan gold",
    );
    ok(
        store
            .create_usage_plan(plan("cf-silver", &[("api1", "prod")]))
            .await,
        "create plan silver",
    );
    ok(
        store
            .create_usage_plan(plan("cf-beta", &[("api1", "beta")]))
            .await,
        "create plan beta",
    );
    expect(
        matches!(
            store
                .create_usage_plan(plan("cf-gold", &[("api1", "x")]))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a duplicate plan id is a conflict",
    );
    ok(
        store.create_api_key(key("cf-k1", "one")).await,
        "create key",
    );

    let added = ok(
        store
            .create_usage_plan_key("cf-gold", "cf-k1", "API_KEY")
            .await,
        "add the key to a plan",
    );
    expect(
        added.id == "cf-k1" && added.key_type == "API_KEY",
        "CreateUsagePlanKey answers the key",
    );
    expect(
        matches!(
            store
                .create_usage_plan_key("cf-gold", "cf-k1", "API_KEY")
                .await,
            Err(StoreError::Conflict(_))
        ),
        "adding a key to a plan twice is a conflict",
    );
    expect(
        matches!(
            store
                .create_usage_plan_key("cf-silver", "cf-k1", "API_KEY")
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a key in two plans on one stage is a conflict",
    );
    expect(
        matches!(
            store
                .create_usage_plan_key("cf-beta", "cf-k1", "SECRET")
                .await,
            Err(StoreError::BadRequest(_))
        ),
        "a keyType other than API_KEY is a bad request",
    );
    ok(
        store
            .create_usage_plan_key("cf-beta", "cf-k1", "API_KEY")
            .await,
        "a key may be in plans on different stages",
    );

    // A stage change that would clash is refused and changes nothing.
    let mut beta = ok(store.get_usage_plan("cf-beta").await, "get beta");
    let before = beta.clone();
    beta.plan = beta.plan.clone().with_api_stage(ApiStage {
        api_id: "api1".into(),
        stage: "prod".into(),
        throttle: BTreeMap::new(),
    });
    expect(
        matches!(
            store.update_usage_plan(beta).await,
            Err(StoreError::Conflict(_))
        ),
        "a stage change that puts a key in two plans on a stage is a conflict",
    );
    expect(
        ok(store.get_usage_plan("cf-beta").await, "get beta") == before,
        "a refused plan update changes nothing",
    );
    let renamed = UsagePlanRecord {
        plan: before.plan.clone().with_description("renamed"),
        tags: before.tags.clone(),
    };
    ok(store.update_usage_plan(renamed).await, "update beta");
    expect(
        ok(store.get_usage_plan("cf-beta").await, "get")
            .plan
            .description()
            == Some("renamed"),
        "a valid plan update is stored",
    );

    let of_key = ok(
        store
            .get_usage_plans(Some("cf-k1"), PageRequest::default())
            .await,
        "plans of the key",
    );
    let ids: Vec<&str> = of_key.items.iter().map(UsagePlanRecord::id).collect();
    expect(
        ids == ["cf-beta", "cf-gold"],
        "GetUsagePlans with keyId answers the key's plans",
    );
    ok(
        store.get_usage_plan_key("cf-gold", "cf-k1").await,
        "GetUsagePlanKey",
    );
    let keys = ok(
        store
            .get_usage_plan_keys("cf-gold", None, PageRequest::default())
            .await,
        "GetUsagePlanKeys",
    );
    expect(keys.items.len() == 1, "the plan lists its key");
    let none = ok(
        store
            .get_usage_plan_keys("cf-gold", Some("zzz"), PageRequest::default())
            .await,
        "GetUsagePlanKeys with a name query",
    );
    expect(none.items.is_empty(), "nameQuery filters by name prefix");

    ok(
        store.delete_usage_plan_key("cf-gold", "cf-k1").await,
        "DeleteUsagePlanKey",
    );
    expect(
        matches!(
            store.delete_usage_plan_key("cf-gold", "cf-k1").await,
            Err(StoreError::NotFound { .. })
        ),
        "deleting an association twice is not found",
    );
    ok(
        store
            .create_usage_plan_key("cf-silver", "cf-k1", "API_KEY")
            .await,
        "after leaving gold the key may join silver",
    );
    ok(store.delete_usage_plan("cf-silver").await, "delete plan");
    expect(
        ok(
            store
                .get_usage_plans(Some("cf-k1"), PageRequest::default())
                .await,
            "plans",
        )
        .items
        .len()
            == 1,
        "deleting a plan removes its associations",
    );
    ok(store.delete_api_key("cf-k1").await, "delete key");
    expect(
        ok(
            store
                .get_usage_plan_keys("cf-beta", None, PageRequest::default())
                .await,
            "keys",
        )
        .items
        .is_empty(),
        "deleting a key removes it from its plans",
    );
}

pub(super) async fn pagination<S: ControlPlaneStore>(store: &S) {
    let keys: Vec<NewApiKey> = (0..7)
        .map(|i| key(&format!("cf-page-{i}"), &format!("n{i}")))
        .collect();
    ok(store.import_api_keys(keys).await, "import");
    let mut request = PageRequest::first(3);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = ok(
            store
                .get_api_keys(ApiKeyFilter::default(), request.clone())
                .await,
            "page",
        );
        pages += 1;
        expect(page.items.len() <= 3, "a page holds at most `limit` items");
        seen.extend(page.items.iter().map(|k| k.id.clone()));
        match request.next(&page) {
            Some(next) => request = next,
            None => break,
        }
        expect(pages < 10, "pagination ends");
    }
    let expected: Vec<String> = (0..7).map(|i| format!("cf-page-{i}")).collect();
    expect(
        seen == expected && pages == 3,
        "pages of 3 list 7 keys once each, in id order, in 3 pages",
    );
    for limit in [0, 501] {
        expect(
            matches!(
                store
                    .get_api_keys(ApiKeyFilter::default(), PageRequest::first(limit))
                    .await,
                Err(StoreError::BadRequest(_))
            ),
            "a limit outside 1..=500 is a bad request",
        );
    }
    let filtered = ok(
        store
            .get_api_keys(
                ApiKeyFilter {
                    name_query: Some("n3".into()),
                    customer_id: None,
                },
                PageRequest::default(),
            )
            .await,
        "nameQuery",
    );
    expect(
        filtered.items.len() == 1 && filtered.position.is_none(),
        "nameQuery filters",
    );
}
