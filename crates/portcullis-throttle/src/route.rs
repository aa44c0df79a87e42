//! Which buckets a request takes a token from: the caller's key under its
//! plan (or a per-method override), the stage's per-method limit and the
//! account, matched against the request's resource.

use std::cell::OnceCell;

use portcullis_core::path::{CanonicalPath, PathRefusal};
use portcullis_core::plan::{MethodSelector, ThrottleSettings, UsagePlan};
use portcullis_core::resource::ApiResource;

use crate::gcra::Gcra;
use crate::key::{RequestHead, ResolvedKey};
use crate::layer::{Config, ThrottleHandle};
use crate::store::{BucketCheck, BucketKey, CallerKey, Level, StageId};

/// The request's [`CanonicalPath`], computed at most once per request and
/// only where a per-method limit may apply.
pub(crate) type PathSlot<'a> = OnceCell<Result<CanonicalPath<'a>, PathRefusal>>;

/// The buckets a request takes a token from, most specific first: the
/// caller's key (under its plan's per-method override, else the plan's
/// throttle, else the layer's key limit), the stage's per-method limit, and
/// the account. `None` where a level does not apply. The service and
/// [`ThrottleLayer::resolve`] both decide through this one function (the
/// service's key-only fast path through [`key_check`], the first of the
/// three), so a store that plans ahead sees exactly the buckets the layer
/// would take.
#[inline(always)]
pub(crate) fn bucket_checks<'a>(
    config: &'a Config,
    handle: &ThrottleHandle,
    key: Option<&'a ResolvedKey<'a>>,
    head: &RequestHead<'a>,
    path: &PathSlot<'a>,
) -> (
    Option<BucketCheck<'a>>,
    Option<BucketCheck<'a>>,
    Option<BucketCheck<'a>>,
) {
    let (stage_check, account_check) = shared_checks(config, head, path);
    (
        key_check(config, handle, key, head, path),
        stage_check,
        account_check,
    )
}

/// Level 1: the caller's key.
#[inline(always)]
pub(crate) fn key_check<'a>(
    config: &'a Config,
    handle: &ThrottleHandle,
    key: Option<&'a ResolvedKey<'a>>,
    head: &RequestHead<'a>,
    path: &PathSlot<'a>,
) -> Option<BucketCheck<'a>> {
    let key = key?;
    let stage = StageId {
        api_id: &config.api_id,
        stage: &config.stage,
    };
    let (selector, gcra) = match key.api_key {
        // Another source than the API key: the layer's key limit, no plan.
        None => (None, config.key_limit?),
        Some(ctx) => {
            let plan = ctx.usage_plan();
            let (selector, plan_limit) = match plan {
                Some(plan) => {
                    let method_throttle = plan.has_method_throttles().then(|| route(head, path));
                    match method_throttle
                        .flatten()
                        .and_then(|route| route.plan_throttle(plan, &config.api_id, &config.stage))
                    {
                        Some((selector, limit)) => (Some(selector), Some(*limit)),
                        None => (None, plan.throttle().copied()),
                    }
                }
                None => (None, None),
            };
            let overridden = handle.lookup(ctx.key_id(), plan.map(|p| p.id()));
            let gcra = match overridden.or(plan_limit) {
                Some(limit) => Gcra::new(&limit),
                None => config.key_limit?,
            };
            (selector, gcra)
        }
    };
    Some(BucketCheck {
        key: BucketKey {
            level: Level::Key,
            stage: selector.map(|_| stage),
            method: selector,
            caller: Some(CallerKey {
                source: key.source,
                value: key.bytes.as_slice(),
            }),
        },
        gcra,
    })
}

/// Levels 2 and 3: the stage's per-method limit and the account, shared by
/// all callers.
#[inline(always)]
pub(crate) fn shared_checks<'a>(
    config: &'a Config,
    head: &RequestHead<'a>,
    path: &PathSlot<'a>,
) -> (Option<BucketCheck<'a>>, Option<BucketCheck<'a>>) {
    let stage = StageId {
        api_id: &config.api_id,
        stage: &config.stage,
    };
    // Level 2: the stage's per-method limit.
    let limits = &config.stage_limits;
    let stage_check = (!limits.is_empty())
        .then(|| {
            let route = route(head, path)?;
            limits.iter().find(|(selector, _)| route.matches(selector))
        })
        .flatten()
        .map(|(selector, gcra)| BucketCheck {
            key: BucketKey {
                level: Level::Stage,
                stage: Some(stage),
                method: Some(selector),
                caller: None,
            },
            gcra: *gcra,
        });
    // Level 3: the account.
    let account_check = config.account_limit.map(|gcra| BucketCheck {
        key: BucketKey {
            level: Level::Account,
            stage: None,
            method: None,
            caller: None,
        },
        gcra,
    });
    (stage_check, account_check)
}

/// The method and the resource per-method limits are matched against, in
/// this order:
///
/// 1. the [`ApiResource`] a routing layer in front (portcullis-openapi)
///    matched the request to: a selector applies when it names that
///    resource itself (or `/*`), as API Gateway keys method settings, so the
///    limit of `/loyalty/{proxy+}/*` is not also the limit of a resource
///    `/loyalty/{id}/get` of its own;
/// 2. the route template when axum matched one, matched segment by segment;
/// 3. the request's [`CanonicalPath`], matched segment by segment, so that
///    no spelling of a path escapes its limit.
///
/// `None` when neither of the first two is there and the path has no
/// canonical form (the slot keeps the refusal, and the request is refused).
/// Read only where a per-method limit may apply.
pub(crate) fn route<'a, 's>(head: &RequestHead<'a>, path: &'s PathSlot<'a>) -> Option<Route<'s>> {
    let method = head.method.as_str();
    if let Some(resource) = head.extensions.get::<ApiResource>() {
        return Some(Route {
            method,
            resource: resource.resource_path(),
            routed: true,
        });
    }
    #[cfg(feature = "axum")]
    if let Some(matched) = head.extensions.get::<axum::extract::MatchedPath>() {
        return Some(Route {
            method,
            resource: matched.as_str(),
            routed: false,
        });
    }
    match path.get_or_init(|| CanonicalPath::of_uri(head.uri)) {
        Ok(canonical) => Some(Route {
            method,
            resource: canonical.as_str(),
            routed: false,
        }),
        Err(_) => None,
    }
}

/// What [`route`] found: a request's method and its resource.
#[derive(Clone, Copy)]
pub(crate) struct Route<'r> {
    method: &'r str,
    resource: &'r str,
    /// `resource` is the template of an [`ApiResource`]: selectors name it
    /// exactly. Otherwise it is a route template or a path, which selectors
    /// match segment by segment.
    routed: bool,
}

impl Route<'_> {
    /// Whether a stage's per-method `selector` applies.
    fn matches(&self, selector: &MethodSelector) -> bool {
        if self.routed {
            selector.matches_resource(self.method, self.resource)
        } else {
            selector.matches(self.method, self.resource)
        }
    }

    /// The most specific per-method override of a usage `plan` that applies.
    fn plan_throttle<'p>(
        &self,
        plan: &'p UsagePlan,
        api_id: &str,
        stage: &str,
    ) -> Option<(&'p MethodSelector, &'p ThrottleSettings)> {
        if self.routed {
            plan.resource_method_throttle(api_id, stage, self.method, self.resource)
        } else {
            plan.method_throttle(api_id, stage, self.method, self.resource)
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use portcullis_core::plan::ThrottleSettings;

    use super::*;
    use crate::layer::ThrottleLayer;
    use http::Request;

    /// The service skips [`shared_checks`] when `key_only` is set: the flag
    /// must be set exactly when no stage or account limit exists, and then
    /// `shared_checks` finds nothing for any request.
    #[test]
    fn key_only_is_set_exactly_when_no_shared_level_can_apply() {
        let limit = ThrottleSettings::new(10.0, 5).unwrap();
        let cases = [
            (ThrottleLayer::new("a", "prod"), true),
            (ThrottleLayer::new("a", "prod").key_limit(limit), true),
            (
                ThrottleLayer::new("a", "prod").stage_limit("/pets/GET".parse().unwrap(), limit),
                false,
            ),
            (ThrottleLayer::new("a", "prod").account_limit(limit), false),
            (
                ThrottleLayer::new("a", "prod")
                    .key_limit(limit)
                    .stage_limit("/*/*".parse().unwrap(), limit)
                    .account_limit(limit),
                false,
            ),
        ];
        for (layer, key_only) in cases {
            let config = &*layer.config;
            assert_eq!(config.key_only, key_only, "{config:?}");
            assert_eq!(
                config.key_only,
                config.stage_limits.is_empty() && config.account_limit.is_none()
            );
            for (method, path) in [
                (Method::GET, "/pets"),
                (Method::POST, "/"),
                (Method::PUT, "/x/y"),
            ] {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .body(())
                    .unwrap();
                let head = RequestHead {
                    method: request.method(),
                    uri: request.uri(),
                    headers: request.headers(),
                    extensions: request.extensions(),
                };
                let (stage, account) = shared_checks(config, &head, &PathSlot::new());
                if key_only {
                    assert!(stage.is_none() && account.is_none());
                } else {
                    assert!(stage.is_some() || account.is_some() || path != "/pets");
                }
            }
        }
    }
}
