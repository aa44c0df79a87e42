#![doc = include_str!("../README.md")]

pub mod access_log;
mod access_log_config;
mod builder;
mod chain;
mod cors;
pub mod definition;
mod layer;
mod refusal;
mod service;
mod validate;

pub use builder::OpenApiLayerBuilder;
pub use chain::{Route, RouteLayer};
pub use definition::{ApiDefinition, MethodSettings};
pub use layer::{DEFAULT_BODY_LIMIT, OpenApiLayer};
pub use refusal::{OpenApiRefusal, RefusalInfo};
pub use service::{OpenApi, ResourcePath};
