//! One issuer's key set: read lock-free on every request, replaced whole by
//! fetches.
//!
//! - Requests read the current [`KeySet`] through `arc-swap`: no lock.
//! - A fetch runs as its own tokio task and stores a new set when it succeeds;
//!   when it fails the last good set keeps serving.
//! - An unknown `kid` (or keys never loaded) joins the fetch in flight, or
//!   starts one if the last attempt is at least `min_refetch` old (10 s by
//!   default, as awslabs/aws-jwt-verify): single-flight, rate-limited. The
//!   std mutex that guards the in-flight handle is held only to clone or
//!   replace it, never across network I/O.
//! - A background task refreshes on an interval, for as long as the store
//!   lives.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use futures_util::FutureExt as _;
use futures_util::future::Shared;
use http::Uri;
use portcullis_core::clock::SharedClock;

use crate::fetch::{Fetcher, key_url};
use crate::keys::{KeySet, VerifyKey};

pub(crate) type SharedFetch = Shared<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>;

pub(crate) struct KeyStore {
    keys: ArcSwap<KeySet>,
    extra: Vec<VerifyKey>,
    remote: Option<Remote>,
}

struct Remote {
    issuer: String,
    fetcher: Fetcher,
    jwks_url: ArcSwapOption<Uri>,
    discovery_url: Option<Uri>,
    allow_insecure: bool,
    refresh: Duration,
    min_refetch_nanos: u64,
    clock: SharedClock,
    attempted: AtomicBool,
    last_attempt_nanos: AtomicU64,
    loaded: AtomicBool,
    fetches: AtomicU64,
    inflight: Mutex<Option<SharedFetch>>,
    refresher_started: AtomicBool,
}

/// How a remote store finds its JWKS.
pub(crate) enum RemoteSource {
    Jwks(Uri),
    Discovery(Uri),
}

pub(crate) struct RemoteOptions {
    pub(crate) issuer: String,
    pub(crate) source: RemoteSource,
    pub(crate) allow_insecure: bool,
    pub(crate) refresh: Duration,
    pub(crate) min_refetch: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) clock: SharedClock,
}

impl KeyStore {
    /// A fixed key set.
    pub(crate) fn fixed(keys: KeySet) -> Self {
        Self {
            keys: ArcSwap::from_pointee(keys),
            extra: Vec::new(),
            remote: None,
        }
    }

    /// A key set fetched from the network, plus `extra` keys (explicit HMAC
    /// secrets) that every fetched set keeps.
    pub(crate) fn remote(options: RemoteOptions, extra: Vec<VerifyKey>) -> Result<Self, String> {
        let (jwks_url, discovery_url) = match options.source {
            RemoteSource::Jwks(uri) => (Some(Arc::new(uri)), None),
            RemoteSource::Discovery(uri) => (None, Some(uri)),
        };
        Ok(Self {
            keys: ArcSwap::from_pointee(KeySet::new(extra.clone())),
            extra,
            remote: Some(Remote {
                issuer: options.issuer,
                fetcher: Fetcher::new(options.fetch_timeout)?,
                jwks_url: ArcSwapOption::new(jwks_url),
                discovery_url,
                allow_insecure: options.allow_insecure,
                refresh: options.refresh,
                min_refetch_nanos: u64::try_from(options.min_refetch.as_nanos())
                    .unwrap_or(u64::MAX),
                clock: options.clock,
                attempted: AtomicBool::new(false),
                last_attempt_nanos: AtomicU64::new(0),
                loaded: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
                inflight: Mutex::new(None),
                refresher_started: AtomicBool::new(false),
            }),
        })
    }

    /// The current keys: a lock-free read.
    pub(crate) fn current(&self) -> Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Whether a key set was ever loaded (always, for a fixed set).
    pub(crate) fn loaded(&self) -> bool {
        self.remote
            .as_ref()
            .is_none_or(|r| r.loaded.load(Ordering::Acquire))
    }

    /// How many fetches were started (for tests and metrics).
    pub(crate) fn fetch_count(&self) -> u64 {
        self.remote
            .as_ref()
            .map_or(0, |r| r.fetches.load(Ordering::Relaxed))
    }

    /// A fetch to wait for because a `kid` is unknown: the one in flight, or a
    /// new one when the rate limit allows. `None` means: answer with the keys
    /// there are.
    pub(crate) fn refetch(self: &Arc<Self>) -> Option<SharedFetch> {
        self.start_fetch(false)
    }

    /// Starts the first fetch and the background refresh, if the store is
    /// remote and a tokio runtime is running.
    pub(crate) fn prefetch(self: &Arc<Self>) {
        if self.remote.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            let _ = self.start_fetch(false);
        }
    }

    fn start_fetch(self: &Arc<Self>, force: bool) -> Option<SharedFetch> {
        let remote = self.remote.as_ref()?;
        self.ensure_refresher(remote);
        let mut inflight = remote.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fetch) = inflight.as_ref()
            && fetch.peek().is_none()
        {
            return Some(fetch.clone());
        }
        let now = remote.clock.now_unix_nanos();
        if !force && remote.attempted.load(Ordering::Acquire) {
            let last = remote.last_attempt_nanos.load(Ordering::Acquire);
            if now.saturating_sub(last) < remote.min_refetch_nanos {
                return None;
            }
        }
        remote.attempted.store(true, Ordering::Release);
        remote.last_attempt_nanos.store(now, Ordering::Release);
        remote.fetches.fetch_add(1, Ordering::Relaxed);
        let store = Arc::clone(self);
        let task = async move { store.fetch_once().await };
        let fetch: Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let join = handle.spawn(task);
                    Box::pin(async move {
                        let _ = join.await;
                    })
                }
                Err(_) => Box::pin(task),
            };
        let fetch = fetch.shared();
        *inflight = Some(fetch.clone());
        Some(fetch)
    }

    fn ensure_refresher(self: &Arc<Self>, remote: &Remote) {
        if remote.refresher_started.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if remote.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = remote.refresh;
        handle.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(store) = weak.upgrade() else { break };
                let fetch = store.start_fetch(true);
                drop(store);
                if let Some(fetch) = fetch {
                    fetch.await;
                }
            }
        });
    }

    async fn fetch_once(&self) {
        let Some(remote) = self.remote.as_ref() else {
            return;
        };
        match self.fetch_keys(remote).await {
            Ok(set) => {
                tracing::info!(
                    layer = "jwt",
                    issuer = %remote.issuer,
                    keys = set.len(),
                    kids = ?set.kids().collect::<Vec<_>>(),
                    "key set loaded"
                );
                metrics::counter!("portcullis_jwt_key_fetches_total", "outcome" => "ok")
                    .increment(1);
                self.keys.store(Arc::new(set.with_extra(&self.extra)));
                remote.loaded.store(true, Ordering::Release);
            }
            Err(error) => {
                tracing::warn!(
                    layer = "jwt",
                    issuer = %remote.issuer,
                    %error,
                    "key fetch failed; the last good keys keep serving"
                );
                metrics::counter!("portcullis_jwt_key_fetches_total", "outcome" => "error")
                    .increment(1);
            }
        }
    }

    async fn fetch_keys(&self, remote: &Remote) -> Result<KeySet, String> {
        let jwks_url = match remote.jwks_url.load_full() {
            Some(url) => url,
            None => {
                let discovery = remote
                    .discovery_url
                    .as_ref()
                    .ok_or("no JWKS URL and no discovery URL")?;
                let body = remote
                    .fetcher
                    .get(discovery)
                    .await
                    .map_err(|e| format!("discovery {discovery}: {e}"))?;
                let url = Arc::new(discovered_jwks_uri(
                    &body,
                    &remote.issuer,
                    remote.allow_insecure,
                )?);
                remote.jwks_url.store(Some(Arc::clone(&url)));
                url
            }
        };
        let body = remote
            .fetcher
            .get(&jwks_url)
            .await
            .map_err(|e| format!("JWKS {jwks_url}: {e}"))?;
        KeySet::from_jwks(&body).map_err(|e| format!("JWKS {jwks_url}: {e}"))
    }
}

/// Reads `jwks_uri` from a discovery document whose `issuer` must be ours.
fn discovered_jwks_uri(body: &[u8], issuer: &str, allow_insecure: bool) -> Result<Uri, String> {
    #[derive(serde::Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let doc: Discovery =
        serde_json::from_slice(body).map_err(|e| format!("discovery document: {e}"))?;
    if doc.issuer != issuer {
        return Err(format!(
            "discovery document names issuer {:?}, not {issuer:?}",
            doc.issuer
        ));
    }
    key_url(&doc.jwks_uri, allow_insecure).map_err(|e| format!("jwks_uri {}: {e}", doc.jwks_uri))
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.keys.load().len())
            .field("remote", &self.remote.as_ref().map(|r| &r.issuer))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_must_name_our_issuer() {
        let doc = br#"{"issuer":"http://127.0.0.1:1/x","jwks_uri":"http://127.0.0.1:1/x/jwks"}"#;
        assert!(discovered_jwks_uri(doc, "http://127.0.0.1:1/x", false).is_ok());
        assert!(discovered_jwks_uri(doc, "http://127.0.0.1:1/y", false).is_err());
        let remote = br#"{"issuer":"i","jwks_uri":"http://example.com/jwks"}"#;
        assert!(discovered_jwks_uri(remote, "i", false).is_err());
    }
}
