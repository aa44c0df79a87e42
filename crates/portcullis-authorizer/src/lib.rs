#![doc = include_str!("../README.md")]

mod authorizer;
mod cache;
mod config;
mod decision;
mod error;
mod event;
mod http;
mod identity;
mod layer;
mod request;
mod service;

pub use crate::authorizer::Authorizer;
pub use crate::config::{
    AUTHORIZER_DENIED_EXPLICIT, AuthorizerConfig, AuthorizerType, DEFAULT_MAX_CACHE_ENTRIES,
    DEFAULT_MAX_IDENTITY_BYTES, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS,
};
pub use crate::decision::AuthorizerRefusal;
pub use crate::error::AuthorizerError;
pub use crate::event::{
    AuthorizerEvent, AuthorizerResponse, IdentityEvent, RequestContextEvent, RequestEvent,
    TokenEvent,
};
pub use crate::http::{DEFAULT_HTTP_TIMEOUT, HttpAuthorizer, MAX_HTTP_ANSWER_BYTES};
pub use crate::identity::{ContextSource, IdentitySource, IdentitySourceError};
pub use crate::layer::AuthorizerLayer;
pub use crate::service::{CustomAuthorizer, ResponseFuture};
