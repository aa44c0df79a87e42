//! [`Shared`]: everything a layer's services share, built once with the
//! layer.

use std::sync::Arc;

use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::SharedClock;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};

use crate::budget::BodyBudget;
use crate::credentials::CredentialProvider;
use crate::verify::{Settings, SigningKeys};

/// Everything the layer's services share: built once, with the layer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) provider: Arc<dyn CredentialProvider>,
    pub(crate) clock: SharedClock,
    pub(crate) keys: SigningKeys,
    pub(crate) key_cache_size: usize,
    pub(crate) max_body_bytes: u64,
    pub(crate) budget: BodyBudget,
    pub(crate) api: ExecuteApiArn,
    pub(crate) authorize: bool,
    pub(crate) resource_policy: Option<Arc<PolicyDocument>>,
    pub(crate) client_ip: ClientIpResolver,
    pub(crate) secure_transport: Option<bool>,
}

impl Shared {
    pub(crate) fn fresh_copy(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            provider: self.provider.clone(),
            clock: self.clock.clone(),
            keys: SigningKeys::new(self.key_cache_size),
            key_cache_size: self.key_cache_size,
            max_body_bytes: self.max_body_bytes,
            budget: self.budget.clone(),
            api: self.api.clone(),
            authorize: self.authorize,
            resource_policy: self.resource_policy.clone(),
            client_ip: self.client_ip.clone(),
            secure_transport: self.secure_transport,
        }
    }
}
