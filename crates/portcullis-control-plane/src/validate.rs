//! The input checks the local stores run before they write anything, for
//! other backends (the Redis store of `portcullis-redis`) to run the same
//! checks and build the same records. Each answers
//! [`StoreError::BadRequest`] for invalid input; the checks that depend on
//! stored state (duplicates, limits, stage clashes) stay with the backend.
//!
//! ```
//! use portcullis_control_plane::{NewApiKey, StoreError, validate};
//! use time::OffsetDateTime;
//!
//! let bad = NewApiKey { id: Some("bad id!".into()), ..NewApiKey::default() };
//! let refused = validate::build_api_key(bad, OffsetDateTime::UNIX_EPOCH, true);
//! assert!(matches!(refused, Err(StoreError::BadRequest(_))));
//! let key = validate::build_api_key(NewApiKey::default(), OffsetDateTime::UNIX_EPOCH, true)
//!     .expect("a generated key");
//! assert_eq!(key.id.len(), 10);
//! assert_eq!(key.value.map(|v| v.digest()), Some(key.digest));
//! ```

use portcullis_core::plan::UsagePlan;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{
    ApiKey, ApiKeyUpdate, MAX_DESCRIPTION_LEN, MAX_NAME_LEN, NewApiKey, PageRequest,
    UsagePlanRecord, check_id, check_optional, check_stage_keys, check_tags, generate_id,
};
use crate::state::{NewUsagePlan, State, StoreOptions};

/// CreateApiKey's record for `input`: checked, with a generated id and value
/// where none is given; the value is dropped unless `retain_values`.
///
/// # Errors
///
/// [`StoreError::BadRequest`] for invalid input.
pub fn build_api_key(
    input: NewApiKey,
    now: OffsetDateTime,
    retain_values: bool,
) -> Result<ApiKey, StoreError> {
    let state = State::new(StoreOptions {
        retain_values,
        ..StoreOptions::default()
    });
    state.build_key(input, now)
}

/// The checks of `put_api_key` that need no stored state (fields, tags,
/// stage keys, and a value that matches the digest).
///
/// # Errors
///
/// [`StoreError::BadRequest`] for an invalid record.
pub fn check_api_key(key: &ApiKey) -> Result<(), StoreError> {
    check_id("id", &key.id)?;
    check_optional("name", key.name.as_deref(), MAX_NAME_LEN)?;
    check_optional("customerId", key.customer_id.as_deref(), MAX_NAME_LEN)?;
    check_optional(
        "description",
        key.description.as_deref(),
        MAX_DESCRIPTION_LEN,
    )?;
    check_stage_keys(&key.stage_keys)?;
    check_tags(&key.tags)?;
    if let Some(value) = &key.value
        && value.digest() != key.digest
    {
        return Err(StoreError::bad("the value does not match the digest"));
    }
    Ok(())
}

/// UpdateApiKey: `key` with `update` applied and checked, last updated `now`.
///
/// # Errors
///
/// [`StoreError::BadRequest`] for an invalid field.
pub fn apply_api_key_update(
    mut key: ApiKey,
    update: ApiKeyUpdate,
    now: OffsetDateTime,
) -> Result<ApiKey, StoreError> {
    if let Some(name) = update.name {
        check_optional("name", name.as_deref(), MAX_NAME_LEN)?;
        key.name = name;
    }
    if let Some(description) = update.description {
        check_optional("description", description.as_deref(), MAX_DESCRIPTION_LEN)?;
        key.description = description;
    }
    if let Some(customer_id) = update.customer_id {
        check_optional("customerId", customer_id.as_deref(), MAX_NAME_LEN)?;
        key.customer_id = customer_id;
    }
    if let Some(enabled) = update.enabled {
        key.enabled = enabled;
    }
    key.last_updated_date = now;
    Ok(key)
}

/// CreateUsagePlan's record for `input`: its id chosen (generated when none
/// is given) and the plan checked.
///
/// # Errors
///
/// [`StoreError::BadRequest`] for an invalid plan (no name, a bad id, a
/// stage listed twice, invalid tags).
pub fn build_usage_plan(input: NewUsagePlan) -> Result<UsagePlanRecord, StoreError> {
    let id = match input.id {
        Some(id) => id,
        None => generate_id(6)?,
    };
    check_id("id", &id)?;
    let plan = crate::state::rebuild_with_id(&input.plan, &id)?;
    State::check_plan(&plan, &input.tags)?;
    Ok(UsagePlanRecord {
        plan,
        tags: input.tags,
    })
}

/// The checks of UpdateUsagePlan that need no stored state.
///
/// # Errors
///
/// [`StoreError::BadRequest`] for an invalid plan.
pub fn check_usage_plan(record: &UsagePlanRecord) -> Result<(), StoreError> {
    State::check_plan(&record.plan, &record.tags)
}

/// Where two plans apply to a common stage (a plan with no stages applies to
/// every stage), named for a conflict message; `None` when they do not.
#[must_use]
pub fn stages_overlap(a: &UsagePlan, b: &UsagePlan) -> Option<String> {
    crate::state::stages_overlap(a, b)
}

/// A list request's page size: 25 by default, 1 to 500.
///
/// # Errors
///
/// [`StoreError::BadRequest`] for a limit outside 1 to 500.
pub fn page_limit(request: &PageRequest) -> Result<usize, StoreError> {
    request.checked_limit()
}
