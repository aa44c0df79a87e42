//! [`WafLayer`], the shared compiled ACL it enforces, and [`WafReloader`].

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderName, Request};
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::{Clock, SharedClock, SystemClock};

use crate::engine::{CompiledAcl, CountryLookup, Env, RequestView, WafOutcome};

/// A Tower layer that enforces an AWS WAFv2 web ACL.
///
/// Every clone of the layer, and every service it builds, shares one compiled
/// ACL (swapped atomically by a [`WafReloader`]) and one set of rate-based
/// counters.
#[derive(Clone, Debug)]
#[must_use]
pub struct WafLayer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) acl: ArcSwap<CompiledAcl>,
    pub(crate) env: Env,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("acl", &*self.acl.load())
            .field("env", &self.env)
            .finish()
    }
}

impl WafLayer {
    /// A layer enforcing `acl`, with the client IP taken from the peer address
    /// (no trusted proxies), the system clock, and no geolocation source.
    pub fn new(acl: CompiledAcl) -> Self {
        Self {
            shared: Arc::new(Shared {
                acl: ArcSwap::from_pointee(acl),
                env: Env {
                    resolver: ClientIpResolver::new(),
                    clock: Arc::new(SystemClock),
                    geo_header: None,
                    geo_lookup: None,
                },
            }),
        }
    }

    /// A layer enforcing a web ACL document that refers to no rule group or
    /// set.
    ///
    /// # Errors
    ///
    /// See [`AclSources::compile`](crate::AclSources::compile).
    pub fn from_json(json: &str) -> Result<Self, crate::LoadError> {
        Ok(Self::new(CompiledAcl::from_json(json)?))
    }

    fn with_env(self, change: impl FnOnce(&mut Env)) -> Self {
        let mut env = self.shared.env.clone();
        change(&mut env);
        Self {
            shared: Arc::new(Shared {
                acl: ArcSwap::new(self.shared.acl.load_full()),
                env,
            }),
        }
    }

    /// Resolves the client IP (for IP sets, geo lookups and rate-based rules
    /// keyed by IP) with this resolver, which says which proxies to trust.
    /// Call builder methods before [`reloader`](Self::reloader).
    pub fn client_ip_resolver(self, resolver: ClientIpResolver) -> Self {
        self.with_env(|env| env.resolver = resolver)
    }

    /// The clock rate-based rules count with.
    pub fn clock(self, clock: impl Clock) -> Self {
        let clock: SharedClock = Arc::new(clock);
        self.with_env(|env| env.clock = clock)
    }

    /// Reads the client's country from this header, set by a CDN in front
    /// (for example CloudFront's `CloudFront-Viewer-Country`).
    pub fn geo_header(self, header: HeaderName) -> Self {
        self.with_env(|env| env.geo_header = Some(header))
    }

    /// Looks countries up by IP address (for example from a MaxMind database
    /// the application opens). It wins over [`geo_header`](Self::geo_header).
    pub fn country_lookup(self, lookup: impl CountryLookup) -> Self {
        let lookup: Arc<dyn CountryLookup> = Arc::new(lookup);
        self.with_env(|env| env.geo_lookup = Some(lookup))
    }

    /// A handle that swaps in a new compiled ACL for this layer and every
    /// service built from it.
    #[must_use]
    pub fn reloader(&self) -> WafReloader {
        WafReloader {
            shared: self.shared.clone(),
        }
    }

    /// Evaluates a request with a buffered body against the current ACL,
    /// without a service: for tests, tools and benchmarks.
    pub fn evaluate<B: AsRef<[u8]>>(&self, request: &Request<B>) -> WafOutcome {
        let acl = self.shared.acl.load();
        let body = request.body().as_ref();
        let limit = acl.body_inspection_limit();
        let view = RequestView {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
            body: &body[..body.len().min(limit)],
            body_oversize: body.len() > limit,
        };
        acl.evaluate(view, &self.shared.env)
    }
}

/// Swaps a new compiled ACL into a running [`WafLayer`], atomically: requests
/// in flight finish with the ACL they started with, and none is dropped.
/// Rate-based rules with the same name and place keep their counters.
#[derive(Clone, Debug)]
pub struct WafReloader {
    shared: Arc<Shared>,
}

impl WafReloader {
    /// Replaces the ACL.
    pub fn reload(&self, mut acl: CompiledAcl) {
        let previous = self.shared.acl.load_full();
        acl.adopt_rate_state(&previous);
        let name = acl.name().to_owned();
        self.shared.acl.store(Arc::new(acl));
        tracing::info!(layer = "waf", outcome = "reloaded", acl = %name, "web ACL reloaded");
        metrics::counter!("portcullis_waf_reloads_total").increment(1);
    }

    /// The ACL in force.
    #[must_use]
    pub fn current(&self) -> Arc<CompiledAcl> {
        self.shared.acl.load_full()
    }
}
