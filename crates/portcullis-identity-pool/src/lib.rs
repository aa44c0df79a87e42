#![doc = include_str!("../README.md")]
//!
//! # Example
//!
//! A guest signs in with an empty body, and the SigV4 layer's provider reads
//! the credential back out of the session token:
//!
//! ```
//! use http::{Request, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use portcullis_identity_pool::{IdentityPool, IdentityPoolConfig};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = IdentityPoolConfig::from_json(r#"{
//!     "region": "us-east-1",
//!     "account_id": "123456789012",
//!     "keys": [{"id": "k1", "secret": "0123456789abcdef0123456789abcdef"}],
//!     "allow_unauthenticated": true,
//!     "roles": {"User": {}, "Guest": {"policies": [{"Version": "2012-10-17",
//!         "Statement": {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}}]}},
//!     "authenticated_role": "User",
//!     "unauthenticated_role": "Guest"
//! }"#).unwrap();
//! let pool = IdentityPool::from_config(config).unwrap();
//!
//! let request = Request::post("/credentials").body(Full::new(Bytes::from("{}"))).unwrap();
//! let response = pool.credentials_service().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! let identity = json["IdentityId"].as_str().unwrap();
//! assert!(identity.starts_with("us-east-1:"));
//!
//! // What SigV4Layer's provider sees for a request signed with them.
//! let credentials = &json["Credentials"];
//! let credential = pool
//!     .open(
//!         credentials["AccessKeyId"].as_str().unwrap(),
//!         credentials["SessionToken"].as_str().unwrap(),
//!     )
//!     .unwrap();
//! assert_eq!(
//!     credential.principal_arn(),
//!     format!("arn:aws:sts::123456789012:assumed-role/Guest/{identity}")
//! );
//! assert_eq!(credential.secret_access_key().expose(), credentials["SecretKey"]);
//! # }
//! ```
//!
//! # API
//!
//! - [`IdentityPool`], built from [`IdentityPoolConfig`] with
//!   [`IdentityPool::builder`]: identity ids, role mapping, issuing and
//!   opening credentials.
//! - [`CredentialsService`]: the tower `Service` an application mounts.
//! - [`IdentityPoolProvider`]: the `CredentialProvider` for `SigV4Layer`.
//! - [`ExchangeError`]: why an exchange was refused, and the response.

mod config;
mod error;
mod pool;
mod provider;
mod service;
mod token;

pub use config::{
    AmbiguousRoleResolution, DEFAULT_LIFETIME_SECONDS, IdentityPoolConfig, MAX_LIFETIME_SECONDS,
    MIN_LIFETIME_SECONDS, MatchType, PoolKeyConfig, RoleConfig, RoleMappingRule,
};
pub use error::ExchangeError;
pub use pool::{CredentialsRequest, IdentityPool, IdentityPoolBuilder, IssuedCredentials};
pub use provider::IdentityPoolProvider;
pub use service::{CredentialsFuture, CredentialsService};
pub use token::{MAX_TOKEN_BYTES, MIN_KEY_BYTES, SessionClaims, TOKEN_PREFIX, open_with};
