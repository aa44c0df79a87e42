//! Redis failures as store errors.

use portcullis_control_plane::StoreError;

pub(super) fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    let any: &dyn std::any::Any = &error;
    if let Some(redis) = any.downcast_ref::<redis::RedisError>() {
        if crate::connection::is_circuit_open(redis) || redis.is_connection_refusal() {
            // Not sent: nothing changed on Redis.
            return StoreError::Unavailable(redis.to_string());
        }
        if redis.is_timeout() || crate::connection::unreachable(redis) {
            // Down or slow: the call may or may not have run.
            return StoreError::Unreachable(Box::new(error));
        }
    }
    StoreError::Backend(Box::new(error))
}

pub(super) fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}
