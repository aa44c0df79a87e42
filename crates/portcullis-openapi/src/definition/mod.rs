//! Loading an API definition: OpenAPI 3.0 or Swagger 2.0, JSON or YAML, with
//! API Gateway's `x-amazon-apigateway-*` extensions.

mod api;
mod chain;
mod cors;
mod error;
mod extensions;
mod gateway_responses;
mod loader;
mod method;
mod resource;
mod values;

pub use api::{ApiDefinition, MAX_DEFINITION_BYTES};
pub(crate) use chain::AuthKind;
pub use cors::CorsConfig;
pub use extensions::{IGNORED_ON_PURPOSE, supported_extensions};
pub use method::{ApiKeySource, Authorization, CustomAuthorizerKind, MethodSettings, Parameter};
