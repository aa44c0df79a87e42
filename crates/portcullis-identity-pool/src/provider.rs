//! The credential provider that lets `SigV4Layer` accept the pool's
//! temporary credentials.

use std::fmt;
use std::sync::Arc;

use portcullis_sigv4::{CredentialLookup, CredentialProvider};

use crate::pool::IdentityPool;
use crate::token::TOKEN_PREFIX;

/// A [`CredentialProvider`] for [`SigV4Layer`](portcullis_sigv4::SigV4Layer):
/// a request whose `X-Amz-Security-Token` is one of the pool's session
/// tokens gets the credential sealed in it (secret derived from the pool key
/// and the access key id, principal
/// `arn:aws:sts::{account}:assumed-role/{role}/{identity-id}`, the role's
/// policies, the token's expiry). Any other request goes to the fallback
/// provider, if any (the gateway's long-term IAM users), or is unknown.
///
/// The provider answers at once ([`CredentialLookup::Ready`]): it needs no
/// I/O and no shared state, so every replica holding the pool's keys accepts
/// the credentials any other replica issued.
#[derive(Clone)]
pub struct IdentityPoolProvider {
    pool: IdentityPool,
    fallback: Option<Arc<dyn CredentialProvider>>,
}

impl fmt::Debug for IdentityPoolProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityPoolProvider")
            .field("pool", &self.pool)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl IdentityPoolProvider {
    /// A provider for `pool`'s credentials only.
    #[must_use]
    pub fn new(pool: IdentityPool) -> Self {
        Self {
            pool,
            fallback: None,
        }
    }

    /// Sends requests that do not carry one of the pool's session tokens to
    /// `fallback`.
    #[must_use]
    pub fn with_fallback(mut self, fallback: impl CredentialProvider) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }
}

impl CredentialProvider for IdentityPoolProvider {
    fn lookup(&self, access_key_id: &str) -> CredentialLookup {
        match &self.fallback {
            Some(fallback) => fallback.lookup(access_key_id),
            None => CredentialLookup::Ready(Ok(None)),
        }
    }

    fn lookup_with_token(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> CredentialLookup {
        match (session_token, &self.fallback) {
            (Some(token), _) if token.starts_with(TOKEN_PREFIX) => {
                let credential = self.pool.open(access_key_id, token);
                if credential.is_none() {
                    tracing::info!(
                        layer = "identity_pool",
                        outcome = portcullis_core::trace::REFUSED,
                        // The SigV4 layer then refuses the unknown client.
                        reason = portcullis_core::GatewayResponseType::InvalidSignature.as_str(),
                        detail = "session_token_invalid",
                        "session token refused"
                    );
                    metrics::counter!("portcullis_identity_pool_session_tokens_refused_total")
                        .increment(1);
                }
                CredentialLookup::Ready(Ok(credential))
            }
            (_, Some(fallback)) => fallback.lookup_with_token(access_key_id, session_token),
            (_, None) => CredentialLookup::Ready(Ok(None)),
        }
    }
}

impl IdentityPool {
    /// The credential provider for `SigV4Layer` (see
    /// [`IdentityPoolProvider`]).
    #[must_use]
    pub fn provider(&self) -> IdentityPoolProvider {
        IdentityPoolProvider::new(self.clone())
    }
}
