#![doc = include_str!("../README.md")]
//!
//! # API
//!
//! - [`PolicyDocument`]: a policy loaded once ([`PolicyDocument::from_json`],
//!   or serde), validated, with its wildcard patterns compiled.
//! - [`ExecuteApiArn`]: the resource ARN of a request.
//! - [`RequestContext`]: principal, action, resource and condition keys.
//! - [`evaluate`] (identity policies plus an optional resource policy, same
//!   account), [`evaluate_cross_account`], [`PolicyDocument::evaluate`].
//! - [`Decision`], and [`Decision::into_gateway_response`] for API Gateway's
//!   ACCESS_DENIED refusal.

mod arn;
mod condition;
mod context;
mod error;
mod eval;
mod json;
mod keys;
mod pattern;
mod policy;

pub use arn::ExecuteApiArn;
pub use context::{EXECUTE_API_INVOKE, RequestContext};
pub use error::PolicyDocumentError;
pub use eval::{Decision, evaluate, evaluate_cross_account};
pub use pattern::Pattern;
pub use policy::{Effect, MAX_POLICY_BYTES, PolicyDocument, Statement};
