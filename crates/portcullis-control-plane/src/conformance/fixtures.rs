//! What the checks share: the day they run on, plans, keys, counters, and
//! the assertions that name the failed check.

use std::collections::BTreeMap;

use portcullis_core::plan::{ApiStage, QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::Calendar;
use time::Date;
use time::macros::date;

use crate::error::StoreError;
use crate::model::NewApiKey;
use crate::reservation::CounterRef;
use crate::state::NewUsagePlan;

pub(super) const DAY: Date = date!(2026 - 11 - 23);

pub(super) fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("conformance: {what}: unexpected error: {error}"),
    }
}

pub(super) fn expect(ok: bool, what: &str) {
    assert!(ok, "conformance: {what}");
}

pub(super) fn plan(id: &str, stages: &[(&str, &str)]) -> NewUsagePlan {
    let mut plan = match UsagePlan::new(id) {
        Ok(plan) => plan.with_name(format!("plan {id}")),
        Err(error) => panic!("conformance: {error}"),
    };
    for (api, stage) in stages {
        plan = plan.with_api_stage(ApiStage {
            api_id: (*api).to_owned(),
            stage: (*stage).to_owned(),
            throttle: BTreeMap::new(),
        });
    }
    NewUsagePlan {
        id: Some(id.to_owned()),
        plan,
        tags: BTreeMap::new(),
    }
}

pub(super) fn key(id: &str, name: &str) -> NewApiKey {
    NewApiKey {
        id: Some(id.to_owned()),
        name: Some(name.to_owned()),
        enabled: true,
        ..NewApiKey::default()
    }
}

pub(super) fn counter(plan: &str, key: &str, limit: u64) -> CounterRef {
    let quota = match QuotaSettings::new(limit, QuotaPeriod::Day) {
        Ok(quota) => quota,
        Err(error) => panic!("conformance: {error}"),
    };
    CounterRef {
        plan_id: plan.to_owned(),
        key_id: key.to_owned(),
        quota,
        window: Calendar::new().window_of_date(QuotaPeriod::Day, DAY),
        day: DAY,
        initial_window: None,
    }
}
