//! The `@aws_*` directives as rules, and AppSync's way of deciding whether a
//! request may read a field.
//!
//! `request_auth` holds who made the request, `rule_set` the rules of one
//! type or field, `policy` an API's rules and the decision, and `sdl` the
//! reading of a schema's directives.

mod policy;
mod request_auth;
mod rule_set;
mod sdl;
#[cfg(test)]
mod tests;

pub(crate) use policy::SharedPolicy;
pub use policy::{AuthPolicy, Source};
pub use request_auth::RequestAuth;
pub use rule_set::Rules;
