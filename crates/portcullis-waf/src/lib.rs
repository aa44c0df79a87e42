#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`model`]: the web ACL JSON as serde types.
//! - [`transform`]: the text transformations.
//! - [`ipset`]: IP sets as sorted ranges.
//! - [`detect`]: SQL injection and XSS detection.
//! - [`managed`]: the AWS managed rule groups, as this crate's own rules.
//! - [`json`]: the keys and values a `JsonBody` rule inspects.

mod body;
mod compile;
pub mod detect;
mod engine;
mod error;
mod file_config;
mod geo;
pub mod ipset;
pub mod json;
mod layer;
pub mod managed;
#[rustfmt::skip]
mod libinjection;
pub mod model;
mod rate;
mod refusal;
mod service;
pub mod transform;
mod xss;

pub use body::WafBody;
pub use compile::{AclSources, DEFAULT_BODY_INSPECTION_LIMIT, DEFAULT_MAX_RATE_KEYS};
pub use engine::{CompiledAcl, CountryLookup, RuleGroupMatch, WafAction, WafOutcome};
pub use error::LoadError;
pub use file_config::WafFileConfig;
pub use geo::MaxMindCountries;
pub use layer::{WafLayer, WafReloader};
pub use refusal::WafRefusal;
pub use service::{ResponseFuture, Waf};
