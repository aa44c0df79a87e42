//! The verified claims, as the layer leaves them in the request extensions.

use std::collections::BTreeMap;

use portcullis_core::context::{AuthMethod, Caller, RequestContextExt};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde_json::Value;

/// The claims of the verified token: a view of the core
/// [`Caller`](portcullis_core::context::Caller) the layer leaves in the
/// request's [`RequestContext`](portcullis_core::context::RequestContext).
///
/// It shares its storage with the `Caller` (cloning is a few reference-count
/// increments). Read it in any handler, axum or tonic:
///
/// ```
/// # fn handler(request: http::Request<()>) {
/// use portcullis_jwt::JwtClaims;
///
/// if let Some(claims) = JwtClaims::from_extensions(request.extensions()) {
///     let email = claims.get("email").and_then(|v| v.as_str());
/// #   let _ = email;
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct JwtClaims(Caller);

impl JwtClaims {
    pub(crate) fn new(caller: Caller) -> Self {
        Self(caller)
    }

    /// The claims of the caller a JWT layer authenticated, from a request's
    /// extensions (its [`RequestContext`](portcullis_core::context::RequestContext));
    /// `None` when no JWT layer admitted the request.
    #[must_use]
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        extensions
            .caller()
            .filter(|caller| caller.method() == AuthMethod::Jwt)
            .cloned()
            .map(Self)
    }

    /// One claim.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.claim(name)
    }

    /// Every claim.
    #[must_use]
    pub fn as_map(&self) -> &BTreeMap<String, Value> {
        self.0.claims()
    }

    /// The `sub` claim.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.get("sub").and_then(Value::as_str)
    }

    /// The `iss` claim.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.get("iss").and_then(Value::as_str)
    }

    /// The Cognito `token_use` claim (`id` or `access`).
    #[must_use]
    pub fn token_use(&self) -> Option<&str> {
        self.get("token_use").and_then(Value::as_str)
    }

    /// The claims as a type of the application's own.
    ///
    /// # Errors
    ///
    /// When the claims do not have the shape of `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let entries = self
            .as_map()
            .iter()
            .map(|(k, v)| (k.as_str(), v.into_deserializer()));
        T::deserialize(serde::de::value::MapDeserializer::<_, serde_json::Error>::new(entries))
    }
}

#[cfg(feature = "axum")]
pub use self::extract::Claims;

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::FromRequestParts;
    use http::request::Parts;
    use portcullis_core::{GatewayResponse, GatewayResponseType};
    use serde::de::DeserializeOwned;

    use super::JwtClaims;

    /// An axum extractor for the verified claims as `T`.
    ///
    /// It needs a [`JwtLayer`](crate::JwtLayer) in front of the handler. With
    /// none, or when the claims do not deserialize into `T`, the handler is not
    /// called and the client gets UNAUTHORIZED (401).
    ///
    /// ```
    /// use portcullis_jwt::Claims;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct User {
    ///     sub: String,
    ///     email: Option<String>,
    /// }
    ///
    /// async fn me(Claims(user): Claims<User>) -> String {
    ///     user.sub
    /// }
    /// # let _ = axum::Router::<()>::new().route("/me", axum::routing::get(me));
    /// ```
    #[derive(Clone, Debug)]
    pub struct Claims<T>(pub T);

    impl<S, T> FromRequestParts<S> for Claims<T>
    where
        S: Send + Sync,
        T: DeserializeOwned,
    {
        type Rejection = axum::response::Response;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            let claims = JwtClaims::from_extensions(&parts.extensions)
                .and_then(|claims| claims.deserialize::<T>().ok());
            match claims {
                Some(claims) => Ok(Claims(claims)),
                None => {
                    tracing::debug!(
                        layer = "jwt",
                        outcome = portcullis_core::trace::REFUSED,
                        reason = GatewayResponseType::Unauthorized.as_str(),
                        detail = "claims_extractor",
                        "no verified claims of the requested shape"
                    );
                    Err(GatewayResponse::new(GatewayResponseType::Unauthorized)
                        .render_parts(parts)
                        .map(axum::body::Body::from))
                }
            }
        }
    }
}

/// What verifying a token found: the caller and the claims, and when the
/// token expires.
#[derive(Clone, Debug)]
pub struct Verified {
    pub(crate) caller: portcullis_core::context::Caller,
    pub(crate) claims: JwtClaims,
    pub(crate) exp: u64,
}

impl Verified {
    /// The caller, as the layer puts it in the request extensions.
    #[must_use]
    pub fn caller(&self) -> &portcullis_core::context::Caller {
        &self.caller
    }

    /// The claims.
    #[must_use]
    pub fn claims(&self) -> &JwtClaims {
        &self.claims
    }

    /// The token's `exp`, in Unix seconds.
    #[must_use]
    pub fn expires_at(&self) -> u64 {
        self.exp
    }
}
