//! Script replies read as Rust values.

use portcullis_control_plane::StoreError;
use time::Date;

use super::error::backend;

pub(super) fn parse<T: redis::FromRedisValue>(value: redis::Value) -> Result<T, StoreError> {
    redis::from_redis_value(value).map_err(backend)
}

pub(super) fn date_of(julian: i64) -> Date {
    i32::try_from(julian)
        .ok()
        .and_then(|d| Date::from_julian_day(d).ok())
        .unwrap_or(Date::MIN)
}

pub(super) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
