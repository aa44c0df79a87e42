#![doc = include_str!("../README.md")]

mod body;
pub mod directives;
mod extension;
mod iam;
mod layer;
mod mode;
mod realtime;
mod response;
mod rules;
mod service;

pub use body::{BodyError, BoxBody, BoxError};
pub use extension::{AppSyncDirectives, UNAUTHORIZED_FIELD};
pub use iam::{APPSYNC_GRAPHQL, FieldIam, GraphqlApiArn, PrincipalPolicies};
pub use layer::{AppSyncAuthLayer, HeaderAuthorizer, ModeLayer};
pub use mode::{
    AuthMode, AuthModes, MAX_AUTHORIZATION_BYTES, NoMode, UnknownAuthMode, select_mode,
};
pub use realtime::{AppSyncRealtime, CONNECT_PATH, REALTIME_SUBPROTOCOL, START_PATH};
pub use response::{
    AppSyncRefusal, AppSyncResponse, UNAUTHORIZED_EXCEPTION, UNAUTHORIZED_MESSAGE, execute,
    unauthorized_body, unauthorized_response,
};
pub use rules::{AuthPolicy, RequestAuth, Rules, Source};
pub use service::{AppSyncAuth, ModeTerminal};
