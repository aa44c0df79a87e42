#![doc = include_str!("../README.md")]

pub mod directives;
mod extension;
mod layer;
mod mode;
mod response;
mod rules;

pub use extension::{AppSyncDirectives, UNAUTHORIZED_FIELD};
pub use layer::{AppSyncAuth, AppSyncAuthLayer, BodyError, BoxBody, BoxError, ModeTerminal};
pub use mode::{
    AuthMode, AuthModes, MAX_AUTHORIZATION_BYTES, NoMode, UnknownAuthMode, select_mode,
};
pub use response::{
    AppSyncResponse, UNAUTHORIZED_EXCEPTION, UNAUTHORIZED_MESSAGE, execute, unauthorized_body,
    unauthorized_response,
};
pub use rules::{AuthPolicy, PolicyError, RequestAuth, Rules, Source};
