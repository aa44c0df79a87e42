#![doc = include_str!("docs.md")]

mod config;
pub mod conformance;
mod decision;
mod future;
mod key;
mod keys;
mod layer;
mod refusal;
mod service;
mod store;

pub use config::X_API_KEY;
pub use config::{ApiKeyConfig, ApiKeyLayerConfig, ApiKeysConfig, ConfigError};
pub use future::ResponseFuture;
pub use key::{
    ApiKeyRecord, ApiKeyValue, DEFAULT_KEY_LEN, GenerateError, InvalidDigest, InvalidKeyValue,
    KeyDigest, MAX_KEY_LEN, MIN_KEY_LEN, PlanConflict, validate_key_value,
};
pub use keys::{ApiKeyError, ApiKeys, CreatedApiKey, NewApiKey};
pub use layer::{ApiKeyLayer, ApiKeySource};
pub use refusal::ApiKeyRefusal;
pub use service::ApiKey;
pub use store::{ApiKeyLookupResult, ApiKeyStore, ApiKeyStoreError, InMemoryApiKeyStore};
