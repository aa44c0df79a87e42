//! [`IdentityPool`]: identity ids, role mapping, issuing and opening
//! credentials.

use std::sync::Arc;

use aws_lc_rs::{hmac, rand};
use portcullis_jwt::JwtClaims;
use portcullis_sigv4::{Credential, Secret};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::config::AmbiguousRoleResolution;
use crate::error::ExchangeError;
use crate::token::SessionClaims;

use super::credentials::IssuedCredentials;
use super::ids::{new_access_key_id, parse_uuid, uuid};
use super::request::{CredentialsRequest, MAX_LOGINS};
use super::rules::claim_matches;
use super::shared::{Role, Shared};

/// A Cognito-style identity pool: it exchanges a user-pool ID token (or
/// nothing, for a guest) for temporary credentials that
/// [`SigV4Layer`](portcullis_sigv4::SigV4Layer) accepts through
/// [`IdentityPool::provider`].
///
/// Cloning is cheap; every clone shares the same state.
#[derive(Clone, Debug)]
pub struct IdentityPool {
    pub(crate) shared: Arc<Shared>,
}

impl IdentityPool {
    /// The region.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.shared.region
    }

    /// The stable identity id of (`issuer`, `subject`): the region and a UUID
    /// from HMAC-SHA256 under the pool's identity key.
    #[must_use]
    pub fn identity_id_for(&self, issuer: &str, subject: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.shared.identity_key);
        ctx.update(b"authenticated\0");
        ctx.update(issuer.as_bytes());
        ctx.update(b"\0");
        ctx.update(subject.as_bytes());
        let tag = ctx.sign();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag.as_ref()[..16]);
        format!("{}:{}", self.shared.region, uuid(bytes))
    }

    /// The MAC half of a guest identity id, from its random half.
    fn guest_mac(&self, random: &[u8]) -> [u8; 8] {
        let mut ctx = hmac::Context::with_key(&self.shared.identity_key);
        ctx.update(b"guest\0");
        ctx.update(random);
        let tag = ctx.sign();
        let mut mac = [0u8; 8];
        mac.copy_from_slice(&tag.as_ref()[..8]);
        mac[0] = (mac[0] & 0x3f) | 0x80;
        mac
    }

    /// A new guest identity id: 64 random bits and a MAC over them, so that
    /// any replica can tell its pool issued it, without storing it.
    fn new_guest_id(&self) -> Option<String> {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes[..8]).ok()?;
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        let mac = self.guest_mac(&bytes[..8]);
        bytes[8..].copy_from_slice(&mac);
        Some(format!("{}:{}", self.shared.region, uuid(bytes)))
    }

    /// Whether `identity_id` is a guest id this pool issued.
    fn is_guest_id(&self, identity_id: &str) -> bool {
        let Some((region, id)) = identity_id.split_once(':') else {
            return false;
        };
        let Some(bytes) = parse_uuid(id).filter(|_| region == self.shared.region) else {
            return false;
        };
        let mac = self.guest_mac(&bytes[..8]);
        bool::from(mac.ct_eq(&bytes[8..]))
    }

    /// The role a verified token maps to, by the rules in order.
    fn role_for(&self, claims: &JwtClaims) -> Result<Arc<Role>, ExchangeError> {
        let shared = &self.shared;
        for rule in &shared.rules {
            if claims
                .get(&rule.claim)
                .is_some_and(|value| claim_matches(value, rule.match_type, &rule.value))
            {
                // Validated at build time: every rule names a declared role.
                return shared
                    .roles
                    .get(&rule.role)
                    .cloned()
                    .ok_or(ExchangeError::NoRole);
            }
        }
        match shared.ambiguous {
            AmbiguousRoleResolution::AuthenticatedRole => Ok(shared.authenticated_role.clone()),
            AmbiguousRoleResolution::Deny => Err(ExchangeError::NoRole),
        }
    }

    fn principal_arn(&self, role: &str, identity_id: &str) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{role}/{identity_id}",
            self.shared.account_id
        )
    }

    fn issue(
        &self,
        identity_id: String,
        role: &Role,
        authenticated: bool,
    ) -> Result<IssuedCredentials, ExchangeError> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let expiration = (now + shared.lifetime).replace_nanosecond(0).unwrap_or(now);
        let access_key_id = new_access_key_id().ok_or(ExchangeError::Internal)?;
        let key = shared.keys.active();
        let claims = SessionClaims {
            access_key_id: access_key_id.clone(),
            identity_id,
            role: role.name.to_string(),
            expires_at: expiration.unix_timestamp(),
            authenticated,
        };
        let token = key.seal(&claims).ok_or(ExchangeError::Internal)?;
        let secret = key.secret_for(&access_key_id);
        Ok(IssuedCredentials {
            principal_arn: self.principal_arn(&role.name, &claims.identity_id),
            identity_id: claims.identity_id,
            access_key_id,
            secret_key: Secret::new(secret),
            session_token: Secret::new(token),
            expiration,
            role: role.name.clone(),
        })
    }

    /// Exchanges a request for credentials: the ID token of its one login
    /// for the mapped role, or nothing for the unauthenticated role.
    ///
    /// # Errors
    ///
    /// Why the exchange is refused (see [`ExchangeError`]).
    pub async fn get_credentials(
        &self,
        request: &CredentialsRequest,
    ) -> Result<IssuedCredentials, ExchangeError> {
        let shared = &self.shared;
        if let (Some(expected), Some(given)) = (&shared.pool_id, &request.identity_pool_id)
            && expected != given
        {
            return Err(ExchangeError::WrongPool);
        }
        if request.logins.len() > MAX_LOGINS {
            return Err(ExchangeError::TooManyLogins);
        }
        let Some((provider, token)) = request.logins.iter().next() else {
            return self.guest(request.identity_id.as_deref());
        };
        let jwt = shared.jwt.as_ref().ok_or(ExchangeError::Token(
            portcullis_jwt::JwtRefusal::UnknownIssuer,
        ))?;
        let verified = jwt.verify(token).await.map_err(ExchangeError::Token)?;
        let claims = verified.claims();
        let issuer = claims.issuer().unwrap_or_default();
        let bare = issuer
            .strip_prefix("https://")
            .or_else(|| issuer.strip_prefix("http://"))
            .unwrap_or(issuer);
        if provider != issuer && provider != bare {
            return Err(ExchangeError::ProviderMismatch);
        }
        let subject = claims
            .subject()
            .filter(|s| !s.is_empty())
            .ok_or(ExchangeError::NoSubject)?;
        let identity_id = self.identity_id_for(issuer, subject);
        if request
            .identity_id
            .as_deref()
            .is_some_and(|given| given != identity_id)
        {
            return Err(ExchangeError::IdentityMismatch);
        }
        let role = self.role_for(claims)?;
        self.issue(identity_id, &role, true)
    }

    fn guest(&self, identity_id: Option<&str>) -> Result<IssuedCredentials, ExchangeError> {
        let shared = &self.shared;
        let role = match (&shared.unauthenticated_role, shared.allow_unauthenticated) {
            (Some(role), true) => role.clone(),
            _ => return Err(ExchangeError::GuestsNotAllowed),
        };
        let identity_id = match identity_id {
            Some(id) if self.is_guest_id(id) => id.to_owned(),
            Some(_) => return Err(ExchangeError::IdentityMismatch),
            None => self.new_guest_id().ok_or(ExchangeError::Internal)?,
        };
        self.issue(identity_id, &role, false)
    }

    /// The credential behind `access_key_id` and `session_token`, opened from
    /// the token: `None` when the token does not open under a key of the
    /// pool, belongs to another access key id, or names a role the pool no
    /// longer has. Expiry is left to the SigV4 layer, which answers
    /// EXPIRED_TOKEN from the credential's `expires_at`.
    ///
    /// Opened tokens are cached by access key id (bounded); a hit costs a
    /// hash lookup and a constant-time comparison of the token.
    #[must_use]
    pub fn open(&self, access_key_id: &str, session_token: &str) -> Option<Arc<Credential>> {
        let shared = &self.shared;
        if shared.cache_entries > 0
            && let Some(hit) = shared.cache.get(access_key_id)
            && hit.session_token().is_some_and(|token| {
                // CRYPTO_memcmp: constant time, a word at a time.
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    token.expose().as_bytes(),
                    session_token.as_bytes(),
                )
                .is_ok()
            })
        {
            return Some(hit.clone());
        }
        let (key, claims) = shared.keys.open(session_token)?;
        if claims.access_key_id != access_key_id {
            return None;
        }
        let role = shared.roles.get(&claims.role)?;
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.expires_at).ok()?;
        let credential = Arc::new(
            Credential::new(
                claims.access_key_id.as_str(),
                key.secret_for(&claims.access_key_id),
                self.principal_arn(&role.name, &claims.identity_id),
            )
            .with_policies(role.policies.clone())
            .with_session_token(session_token, Some(expires_at)),
        );
        if shared.cache_entries > 0 {
            if shared.cache.len() >= shared.cache_entries {
                let now = shared.clock.now();
                shared
                    .cache
                    .retain(|_, c| c.expires_at().is_some_and(|e| e > now));
                if shared.cache.len() >= shared.cache_entries {
                    shared.cache.clear();
                }
            }
            shared
                .cache
                .insert(claims.access_key_id.into_boxed_str(), credential.clone());
        }
        Some(credential)
    }

    /// How many opened tokens the provider's cache holds now.
    #[must_use]
    pub fn cached_credentials(&self) -> usize {
        self.shared.cache.len()
    }
}
