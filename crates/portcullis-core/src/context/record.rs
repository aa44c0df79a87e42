//! [`RequestRecord`]: what the layers inside the request's span learned,
//! for the layer that opened it.

use std::sync::{Arc, Mutex};

use super::{ApiKeyContext, Caller};

/// What the layers inside the request's span learned, shared with the
/// layer that opened it: the caller, the API key, whether a WAF saw the
/// request. Filled by
/// [`record_context`](crate::request_span::record_context).
#[derive(Clone, Debug, Default)]
pub struct RequestRecord(pub(crate) Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) caller: Option<Caller>,
    pub(crate) api_key: Option<ApiKeyContext>,
    pub(crate) waf_seen: bool,
}

impl RequestRecord {
    /// The caller a layer authenticated, if any.
    #[must_use]
    pub fn caller(&self) -> Option<Caller> {
        self.0.lock().ok().and_then(|r| r.caller.clone())
    }

    /// The API key the request presented, if a layer found one.
    #[must_use]
    pub fn api_key(&self) -> Option<ApiKeyContext> {
        self.0.lock().ok().and_then(|r| r.api_key.clone())
    }

    /// Whether a WAF inspected the request (it left its labels).
    #[must_use]
    pub fn waf_seen(&self) -> bool {
        self.0.lock().is_ok_and(|r| r.waf_seen)
    }
}
