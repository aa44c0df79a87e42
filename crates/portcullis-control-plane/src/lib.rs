#![doc = include_str!("docs.md")]

pub mod conformance;
mod embedded;
mod engine;
mod error;
mod journal;
mod keys;
pub mod management;
pub mod model;
mod packed;
pub mod record;
pub mod reservation;
mod state;
mod store;
pub mod validate;

pub use embedded::{DATABASE_FILE, EmbeddedStore};
pub use engine::{ConsumeFuture, EngineConfig, QuotaEngine};
pub use error::StoreError;
pub use keys::KeyCache;
pub use management::{ManagementApi, PolicyMap, PrincipalPolicies};
pub use model::{
    ApiKey, ApiKeyFilter, ApiKeyUpdate, NewApiKey, Page, PageRequest, UsagePlanKey,
    UsagePlanRecord, UsageRecord,
};
pub use record::{StoredKey, StoredPlan};
pub use reservation::{CounterChange, CounterRef, Grant, QuotaReservation, Report};
pub use state::{NewUsagePlan, StoreOptions};
pub use store::{ControlPlaneStore, LocalStore, MemoryStore, Snapshot};
