//! [`ThrottleLayer`]: the configuration, shared by every clone.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use portcullis_core::clock::Clock;
use portcullis_core::plan::{MethodSelector, ThrottleSettings};
use portcullis_core::store::OnStoreError;

use crate::clock::{LayerClock, MonotonicClock};
use crate::gcra::Gcra;
use crate::headers::RateLimitHeaders;
use crate::key::KeyBy;
use crate::memory::InMemoryThrottleStore;
use crate::store::{Level, ThrottleStore};

/// The layer's settings. Immutable once the layer is built; run-time changes
/// go through [`ThrottleHandle`].
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) api_id: Arc<str>,
    pub(crate) stage: Arc<str>,
    pub(crate) key_by: KeyBy,
    /// Fixed limits keep their bucket parameters computed once.
    pub(crate) key_limit: Option<Gcra>,
    /// Most specific first.
    pub(crate) stage_limits: Vec<(MethodSelector, Gcra)>,
    pub(crate) account_limit: Option<Gcra>,
    /// No stage or account limit is set: only the key level can apply (kept
    /// in step by [`Config::update_key_only`], so the request path reads one
    /// flag instead of looking for the shared levels).
    pub(crate) key_only: bool,
    pub(crate) headers: RateLimitHeaders,
    pub(crate) headers_on_success: bool,
    pub(crate) on_store_error: OnStoreError,
    pub(crate) counters: Counters,
}

/// The layer's metrics, registered once when the layer is built (so the hot
/// path does not look them up in the recorder on every request). Install the
/// `metrics` recorder before building the layer.
#[derive(Clone)]
pub(crate) struct Counters {
    pub(crate) admitted: metrics::Counter,
    pub(crate) no_limit: metrics::Counter,
    pub(crate) refused: [metrics::Counter; 3],
    store_error_open: metrics::Counter,
    store_error_closed: metrics::Counter,
    /// `portcullis_throttle_decision_seconds`.
    pub(crate) seconds: metrics::Histogram,
    /// Whether the store's last answer was a failure: the layer logs once
    /// when the store starts failing and once when it answers again, not
    /// once per request (each failure is counted).
    failing: Arc<AtomicBool>,
}

impl Counters {
    fn register() -> Self {
        const NAME: &str = "portcullis_throttle_decisions_total";
        Self {
            admitted: metrics::counter!(NAME, "outcome" => "allowed", "reason" => "OK"),
            no_limit: metrics::counter!(NAME, "outcome" => "allowed", "reason" => "NO_LIMIT"),
            refused: [Level::Key, Level::Stage, Level::Account].map(|level| {
                metrics::counter!(NAME, "outcome" => "refused", "reason" => "THROTTLED", "level" => level.as_str())
            }),
            store_error_open: metrics::counter!(NAME, "outcome" => "allowed", "reason" => "STORE_ERROR"),
            store_error_closed: metrics::counter!(NAME, "outcome" => "refused", "reason" => "API_CONFIGURATION_ERROR"),
            seconds: metrics::histogram!("portcullis_throttle_decision_seconds"),
            failing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether this failure is the first since the store last answered
    /// (the one to log at `warn`; the others are traced at `debug`).
    pub(crate) fn store_started_failing(&self) -> bool {
        !self.failing.swap(true, Ordering::Relaxed)
    }

    /// Notes that the store answered: logs once if it was failing.
    #[inline(always)]
    pub(crate) fn store_answered(&self) {
        if self.failing.load(Ordering::Relaxed) {
            self.store_recovered();
        }
    }

    #[cold]
    #[inline(never)]
    fn store_recovered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(layer = "throttle", "throttle store answering again");
        }
    }

    pub(crate) fn refused(&self, level: Level) -> &metrics::Counter {
        match level {
            Level::Key => &self.refused[0],
            Level::Stage => &self.refused[1],
            Level::Account => &self.refused[2],
        }
    }

    /// A store failure's counter: admitted when the layer fails open.
    pub(crate) fn store_error(&self, policy: OnStoreError) -> &metrics::Counter {
        if policy == OnStoreError::Allow {
            &self.store_error_open
        } else {
            &self.store_error_closed
        }
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Counters")
    }
}

/// API Gateway's throttling as a Tower layer: token buckets per API key
/// under its usage plan, per method on the stage, and per account.
///
/// Built once; every clone of the layer and of the services it makes shares
/// the same buckets and the same [`ThrottleHandle`].
///
/// See the [crate docs](crate) for the levels, what a refused request costs,
/// and an example.
#[derive(Clone)]
#[must_use]
pub struct ThrottleLayer<St = InMemoryThrottleStore> {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Arc<St>,
    pub(crate) clock: LayerClock,
    pub(crate) handle: ThrottleHandle,
}

impl<St> fmt::Debug for ThrottleLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleLayer")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl ThrottleLayer<InMemoryThrottleStore> {
    /// A throttle for the stage `stage` of the API `api_id`, keyed by API key
    /// under each key's usage plan, with the in-memory store and the system
    /// [`MonotonicClock`]. No stage or account limit applies until set.
    pub fn new(api_id: impl Into<Arc<str>>, stage: impl Into<Arc<str>>) -> Self {
        Self {
            config: Arc::new(Config {
                api_id: api_id.into(),
                stage: stage.into(),
                key_by: KeyBy::default(),
                key_limit: None,
                stage_limits: Vec::new(),
                account_limit: None,
                key_only: true,
                headers: RateLimitHeaders::default(),
                headers_on_success: false,
                on_store_error: OnStoreError::Allow,
                counters: Counters::register(),
            }),
            store: Arc::new(InMemoryThrottleStore::new()),
            clock: LayerClock::Monotonic(MonotonicClock::new()),
            handle: ThrottleHandle::default(),
        }
    }
}

impl Config {
    fn update_key_only(&mut self) {
        self.key_only = self.stage_limits.is_empty() && self.account_limit.is_none();
    }
}

impl<St> ThrottleLayer<St> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Keeps the buckets in `store` (for example a Redis store shared by
    /// several gateways).
    pub fn with_store<St2: ThrottleStore>(self, store: St2) -> ThrottleLayer<St2> {
        ThrottleLayer {
            config: self.config,
            store: Arc::new(store),
            clock: self.clock,
            handle: self.handle,
        }
    }

    /// Reads time from `clock` (default [`MonotonicClock`]; a `ManualClock`
    /// in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = LayerClock::Shared(Arc::new(clock));
        self
    }

    /// How the caller's key is found (default [`KeyBy::api_key`]).
    pub fn key_by(mut self, key_by: KeyBy) -> Self {
        self.config_mut().key_by = key_by;
        self
    }

    /// The per-key limit for keys that get none from a usage plan: every key
    /// found by a source other than the API key, and API keys whose plan has
    /// no throttle. Without it such keys have no [`Level::Key`](crate::Level::Key)
    /// bucket.
    pub fn key_limit(mut self, limit: ThrottleSettings) -> Self {
        self.config_mut().key_limit = Some(Gcra::new(&limit));
        self
    }

    /// A per-method limit on the stage, shared by all callers, as API
    /// Gateway's `methodSettings` (`/pets/GET`, `//GET` for the root,
    /// `/*/*` for every method). For each request the most specific matching
    /// selector applies. Setting a selector again replaces its limit.
    pub fn stage_limit(mut self, selector: MethodSelector, limit: ThrottleSettings) -> Self {
        let limits = &mut self.config_mut().stage_limits;
        limits.retain(|(s, _)| *s != selector);
        limits.push((selector, Gcra::new(&limit)));
        // Most specific first; ties keep a stable order by the selector text.
        limits
            .sort_by(|(a, _), (b, _)| b.specificity().cmp(&a.specificity()).then_with(|| a.cmp(b)));
        self.config_mut().update_key_only();
        self
    }

    /// The account-level limit, one bucket shared by every request through
    /// every layer that uses the same store. API Gateway's default is 10,000
    /// requests per second with a burst of 5,000 per Region
    /// ([`aws_account_default`]); Portcullis applies none
    /// unless asked.
    pub fn account_limit(mut self, limit: ThrottleSettings) -> Self {
        let config = self.config_mut();
        config.account_limit = Some(Gcra::new(&limit));
        config.update_key_only();
        self
    }

    /// Which rate-limit headers to write (default
    /// [`RateLimitHeaders::Ietf`]: `RateLimit-Policy` and `RateLimit`): the
    /// same option as the quota layer's, so that a stack of both writes one
    /// convention. `Retry-After` is on every refusal whatever this says.
    pub fn rate_limit_headers(mut self, headers: RateLimitHeaders) -> Self {
        self.config_mut().headers = headers;
        self
    }

    /// Also write the rate-limit headers on the responses of admitted
    /// requests (default off, as in API Gateway: it costs a few allocations
    /// per request). They are merged with those a layer inside (the quota)
    /// wrote, into one set describing both; a quota's 429 then also carries
    /// this layer's policy.
    pub fn rate_limit_headers_on_success(mut self, on: bool) -> Self {
        self.config_mut().headers_on_success = on;
        self
    }

    /// The former name of [`rate_limit_headers`](Self::rate_limit_headers).
    #[deprecated(note = "renamed `rate_limit_headers`, the quota's and the facade's name")]
    pub fn headers(self, headers: RateLimitHeaders) -> Self {
        self.rate_limit_headers(headers)
    }

    /// The former name of
    /// [`rate_limit_headers_on_success`](Self::rate_limit_headers_on_success).
    #[deprecated(
        note = "renamed `rate_limit_headers_on_success`, the quota's and the facade's name"
    )]
    pub fn headers_on_success(self, on: bool) -> Self {
        self.rate_limit_headers_on_success(on)
    }

    /// What a request gets when the store fails (default
    /// [`OnStoreError::Allow`]: it is served, as API Gateway serves the
    /// request when its usage-plan check fails). With
    /// [`OnStoreError::Refuse`], a store failure is answered 500
    /// (`API_CONFIGURATION_ERROR`).
    pub fn on_store_error(mut self, policy: OnStoreError) -> Self {
        self.config_mut().on_store_error = policy;
        self
    }

    /// The handle for run-time rate changes. Every clone of the layer shares
    /// it.
    #[must_use]
    pub fn handle(&self) -> ThrottleHandle {
        self.handle.clone()
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &St {
        &self.store
    }
}

/// API Gateway's default account-level throttle: 10,000 requests per second,
/// burst 5,000 (per Region).
#[must_use]
pub fn aws_account_default() -> ThrottleSettings {
    ThrottleSettings::new(10_000.0, 5_000).expect("10,000 rps with a burst of 5,000 is valid")
}

#[derive(Debug, Default)]
struct OverrideMaps {
    keys: HashMap<Arc<str>, ThrottleSettings>,
    plans: HashMap<Arc<str>, ThrottleSettings>,
}

#[derive(Debug, Default)]
struct Overrides {
    /// Set while any override exists, so the common path reads one flag.
    active: AtomicBool,
    maps: ArcSwap<OverrideMaps>,
}

/// Run-time rate changes ("temporary rate extensions") for a key or a plan.
///
/// A change applies to the very next request: the limit is looked up on
/// every request, and the key's bucket keeps its state, read under the new
/// limit. A bucket keeps its debt measured in time (how long until it is
/// full), capped at the new bucket's size: raising a rate or a burst helps at
/// once, and a bucket that was empty is empty under a faster rate and refills
/// at that rate.
///
/// An override replaces the limit of the key's [`Level::Key`](crate::Level::Key)
/// bucket for every method, the plan's per-method overrides included. A key
/// override beats a plan override.
///
/// ```
/// use portcullis_core::plan::ThrottleSettings;
/// use portcullis_throttle::ThrottleLayer;
///
/// let layer = ThrottleLayer::new("a1b2c3", "prod");
/// let handle = layer.handle();
/// handle.set_key_limit("key-1", ThrottleSettings::new(100.0, 200).unwrap());
/// assert_eq!(handle.key_limit("key-1").unwrap().burst_limit().get(), 200);
/// handle.clear_key_limit("key-1");
/// assert!(handle.key_limit("key-1").is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ThrottleHandle {
    inner: Arc<Overrides>,
}

impl ThrottleHandle {
    fn update(&self, f: impl Fn(&mut OverrideMaps)) {
        self.inner.maps.rcu(|current| {
            let mut next = OverrideMaps {
                keys: current.keys.clone(),
                plans: current.plans.clone(),
            };
            f(&mut next);
            next
        });
        let maps = self.inner.maps.load();
        let active = !maps.keys.is_empty() || !maps.plans.is_empty();
        self.inner.active.store(active, Ordering::Release);
    }

    /// Sets the limit of the API key with id `key_id`.
    pub fn set_key_limit(&self, key_id: &str, limit: ThrottleSettings) {
        self.update(|maps| {
            maps.keys.insert(Arc::from(key_id), limit);
        });
    }

    /// Removes the key's override: its plan's limit applies again.
    pub fn clear_key_limit(&self, key_id: &str) {
        self.update(|maps| {
            maps.keys.remove(key_id);
        });
    }

    /// Sets the limit of every key of the usage plan with id `plan_id`.
    pub fn set_plan_limit(&self, plan_id: &str, limit: ThrottleSettings) {
        self.update(|maps| {
            maps.plans.insert(Arc::from(plan_id), limit);
        });
    }

    /// Removes the plan's override.
    pub fn clear_plan_limit(&self, plan_id: &str) {
        self.update(|maps| {
            maps.plans.remove(plan_id);
        });
    }

    /// The key's override, if any.
    #[must_use]
    pub fn key_limit(&self, key_id: &str) -> Option<ThrottleSettings> {
        self.inner.maps.load().keys.get(key_id).copied()
    }

    /// The plan's override, if any.
    #[must_use]
    pub fn plan_limit(&self, plan_id: &str) -> Option<ThrottleSettings> {
        self.inner.maps.load().plans.get(plan_id).copied()
    }

    /// The override for a key of a plan: the key's, else the plan's.
    pub(crate) fn lookup(&self, key_id: &str, plan_id: Option<&str>) -> Option<ThrottleSettings> {
        if !self.inner.active.load(Ordering::Acquire) {
            return None;
        }
        let maps = self.inner.maps.load();
        maps.keys
            .get(key_id)
            .or_else(|| plan_id.and_then(|p| maps.plans.get(p)))
            .copied()
    }
}
