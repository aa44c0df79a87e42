//! The authorizer trait and its blanket impl for async closures.

use std::future::Future;
use std::sync::Arc;

use crate::error::AuthorizerError;
use crate::event::{AuthorizerEvent, AuthorizerResponse};

/// A custom authorizer: given API Gateway's event, it answers with a
/// principal and a policy, or refuses.
///
/// Async closures and functions taking an [`AuthorizerEvent`] implement it:
///
/// ```
/// use portcullis_authorizer::{Authorizer, AuthorizerError, AuthorizerEvent, AuthorizerResponse};
/// use portcullis_iam::PolicyDocument;
///
/// fn assert_authorizer<A: Authorizer>(_: &A) {}
///
/// let authorizer = |event: AuthorizerEvent| async move {
///     match event.token() {
///         Some("allow") => Ok(AuthorizerResponse::new(
///             "user",
///             PolicyDocument::from_json(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}}"#)
///                 .map_err(AuthorizerError::failed)?,
///         )),
///         _ => Err(AuthorizerError::Unauthorized),
///     }
/// };
/// assert_authorizer(&authorizer);
/// ```
pub trait Authorizer: Send + Sync + 'static {
    /// Decides on one event.
    fn authorize(
        &self,
        event: AuthorizerEvent,
    ) -> impl Future<Output = Result<AuthorizerResponse, AuthorizerError>> + Send;
}

impl<F, Fut> Authorizer for F
where
    F: Fn(AuthorizerEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AuthorizerResponse, AuthorizerError>> + Send,
{
    fn authorize(
        &self,
        event: AuthorizerEvent,
    ) -> impl Future<Output = Result<AuthorizerResponse, AuthorizerError>> + Send {
        self(event)
    }
}

impl<A: Authorizer + ?Sized> Authorizer for Arc<A>
where
    Arc<A>: Send + Sync,
{
    fn authorize(
        &self,
        event: AuthorizerEvent,
    ) -> impl Future<Output = Result<AuthorizerResponse, AuthorizerError>> + Send {
        (**self).authorize(event)
    }
}
