#![doc = include_str!("../README.md")]
//!
//! # API
//!
//! - [`SigV4Layer`] / [`SigV4`]: the layer and its service.
//! - [`CredentialProvider`], [`Credential`], [`StaticCredentialProvider`]:
//!   where the layer finds the secret, principal and policies of an access
//!   key id.
//! - [`SigV4Body`]: the request body the inner service receives, and its
//!   [`SigV4BodyError`] ([`ChunkedBodyError`] when a streaming chunk fails).
//! - [`SigV4Error`]: why a request was refused, and API Gateway's response.
//! - [`canonical`]: SigV4 canonicalisation (also used by the fuzz targets).
//! - [`VerifiedSignature`] and the core
//!   [`Caller`](portcullis_core::context::Caller): what the layer leaves in
//!   the request extensions.

mod body;
mod budget;
pub mod canonical;
#[doc(hidden)]
pub mod chunked;
mod credentials;
mod error;
mod file_config;
mod layer;
mod service;
mod shared;
mod verified;
mod verify;

pub use body::{SigV4Body, SigV4BodyError};
pub use chunked::ChunkedBodyError;
pub use credentials::{
    Credential, CredentialConfig, CredentialLookup, CredentialProvider, CredentialResult,
    CredentialsConfig, PendingCredential, ProviderError, Secret, StaticCredentialProvider,
};
pub use error::SigV4Error;
pub use file_config::{SigV4FileConfig, SigV4FileUser};
pub use layer::{
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BUFFERED_BODY_BYTES,
    DEFAULT_SIGNING_KEY_CACHE, SigV4Config, SigV4Layer,
};
pub use portcullis_core::future::ResponseFuture;
pub use service::SigV4;
pub use verified::{CredentialScope, VerifiedSignature};
pub use verify::{
    ALGORITHM, EMPTY_SHA256, MAX_EXPIRES_SECONDS, STREAMING_PAYLOAD, SignatureForm, SigningTexts,
    UNSIGNED_PAYLOAD,
};
