#![doc = include_str!("../README.md")]

pub mod access_log;
pub mod definition;
mod layer;

pub use definition::{ApiDefinition, DefinitionError, MethodSettings};
pub use layer::{
    DEFAULT_BODY_LIMIT, OpenApi, OpenApiLayer, OpenApiLayerBuilder, RefusalInfo, ResourcePath,
    Route,
};
