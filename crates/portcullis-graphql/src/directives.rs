//! AppSync's authorization directives for code-first schemas, as
//! async-graphql type directives: put them on an `#[Object]`, a
//! `SimpleObject`, or a field with `#[graphql(directive = ...)]`, and they
//! appear in the schema's SDL, from which
//! [`AuthPolicy::from_sdl`](crate::AuthPolicy::from_sdl) reads them, exactly
//! as it reads an AppSync schema.
//!
//! ```
//! use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};
//! use portcullis_graphql::directives::{aws_api_key, aws_cognito_user_pools};
//! use portcullis_graphql::{AuthMode, AuthPolicy, RequestAuth};
//!
//! #[derive(SimpleObject)]
//! #[graphql(directive = aws_api_key::apply(), directive = aws_cognito_user_pools::apply(None))]
//! struct Flight { id: String }
//!
//! struct Query;
//! #[Object]
//! impl Query {
//!     #[graphql(directive = aws_api_key::apply())]
//!     async fn flights(&self) -> Vec<Flight> { vec![] }
//!     #[graphql(directive = aws_cognito_user_pools::apply(Some(vec!["Admin".into()])))]
//!     async fn bookings(&self) -> Vec<String> { vec![] }
//! }
//!
//! let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
//! let policy = AuthPolicy::from_sdl(AuthMode::AmazonCognitoUserPools, &schema.sdl()).unwrap();
//! let key = RequestAuth::new(AuthMode::ApiKey);
//! assert!(policy.allows("Query", "flights", &key));
//! assert!(policy.allows("Flight", "id", &key));
//! assert!(!policy.allows("Query", "bookings", &key));
//! assert!(schema.sdl().contains(r#"@aws_cognito_user_pools(cognito_groups: ["Admin"])"#));
//! ```
#![allow(non_camel_case_types, missing_docs, unreachable_pub)]

use async_graphql::TypeDirective;

/// `@aws_api_key`: API_KEY callers may read the type or field.
#[TypeDirective(location = "Object", location = "FieldDefinition")]
pub fn aws_api_key() {}

/// `@aws_iam`: AWS_IAM (SigV4) callers may read the type or field.
#[TypeDirective(location = "Object", location = "FieldDefinition")]
pub fn aws_iam() {}

/// `@aws_oidc`: OPENID_CONNECT callers may read the type or field.
#[TypeDirective(location = "Object", location = "FieldDefinition")]
pub fn aws_oidc() {}

/// `@aws_lambda`: AWS_LAMBDA callers may read the type or field.
#[TypeDirective(location = "Object", location = "FieldDefinition")]
pub fn aws_lambda() {}

/// `@aws_cognito_user_pools(cognito_groups: [...])`: Cognito user-pool
/// callers may read the type or field; with groups, only callers in one of
/// them.
#[TypeDirective(
    location = "Object",
    location = "FieldDefinition",
    rename_args = "snake_case"
)]
pub fn aws_cognito_user_pools(cognito_groups: Option<Vec<String>>) {}

/// `@aws_auth(cognito_groups: [...])`: the legacy form of
/// `@aws_cognito_user_pools(cognito_groups: [...])`, for top-level fields
/// of an API whose default mode is AMAZON_COGNITO_USER_POOLS.
#[TypeDirective(location = "FieldDefinition", rename_args = "snake_case")]
pub fn aws_auth(cognito_groups: Vec<String>) {}
