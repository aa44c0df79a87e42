//! The pool: identity ids, role mapping, issuing and opening credentials.

mod builder;
mod credentials;
mod exchange;
mod ids;
mod request;
mod rules;
mod shared;

pub use builder::IdentityPoolBuilder;
pub use credentials::IssuedCredentials;
pub use exchange::IdentityPool;
pub use request::CredentialsRequest;
