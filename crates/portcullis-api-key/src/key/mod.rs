//! Key values, their SHA-256 digests, and the records the store keeps.

mod digest;
mod record;
mod value;

pub(crate) use digest::DigestKey;
pub use digest::{InvalidDigest, KeyDigest};
pub(crate) use record::check_one_plan_per_stage;
pub use record::{ApiKeyRecord, PlanConflict};
pub(crate) use value::random_alphanumeric;
pub use value::{
    ApiKeyValue, DEFAULT_KEY_LEN, GenerateError, InvalidKeyValue, MAX_KEY_LEN, MIN_KEY_LEN,
    validate_key_value,
};
