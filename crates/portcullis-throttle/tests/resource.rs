//! Per-method limits keyed by the API resource a routing layer matched
//! (core's `ApiResource`, which portcullis-openapi leaves), as API Gateway
//! keys method settings: `/loyalty/{proxy+}/*` limits that resource, not a
//! more specific resource below it.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::Full;
use portcullis_core::plan::{ApiStage, MethodSelector};
use portcullis_core::resource::ApiResource;
use portcullis_throttle::ThrottleLayer;

const GREEDY: &str = "/loyalty/{proxy+}";
const SIBLING: &str = "/loyalty/{customerId}/get";

fn selector(s: &str) -> MethodSelector {
    s.parse().unwrap()
}

/// `request`, routed to `template` as a routing layer in front would.
fn routed(mut request: Request<Full<Bytes>>, template: &str) -> Request<Full<Bytes>> {
    request
        .extensions_mut()
        .insert(ApiResource::new(template, [("any", "value")]));
    request
}

#[tokio::test]
async fn a_stage_limit_on_a_greedy_resource_leaves_a_more_specific_resource_alone() {
    let clock = clock();
    let plan = Arc::new(plan("p", 100.0, 100));
    let layer = ThrottleLayer::new(API, STAGE)
        .stage_limit(selector("/loyalty/{proxy+}/*"), settings(0.01, 1));
    let svc = service(layer, &clock);
    // The resource of its own: no stage limit applies to it.
    let sibling = || {
        routed(
            keyed(Method::GET, "/loyalty/C-1001/get", "a", &plan),
            SIBLING,
        )
    };
    assert_eq!(statuses(&svc, 5, sibling).await, vec![200; 5]);
    // The greedy resource has its burst of 1, whatever the path below it.
    let greedy = |path: &str| routed(keyed(Method::POST, path, "a", &plan), GREEDY);
    assert_eq!(status(&svc, greedy("/loyalty/C-1002/redeem")).await, 200);
    assert_eq!(status(&svc, greedy("/loyalty/C-1003/redeem")).await, 429);
    // Without a routing layer, the path is matched segment by segment, as
    // before: the same GET falls under `{proxy+}`, whose bucket is empty.
    assert_eq!(
        status(&svc, keyed(Method::GET, "/loyalty/C-1001/get", "a", &plan)).await,
        429
    );
}

#[tokio::test]
async fn a_routed_resource_is_matched_by_equality_and_still_by_the_stage_wide_selectors() {
    let clock = clock();
    let plan = Arc::new(plan("p", 100.0, 100));
    let layer = ThrottleLayer::new(API, STAGE)
        .stage_limit(selector("/loyalty/{customerId}/get/GET"), settings(0.01, 2))
        .stage_limit(selector("/*/*"), settings(0.01, 3));
    let svc = service(layer, &clock);
    let request = |method: Method, template: &str| {
        routed(keyed(method, "/loyalty/C-1001/get", "a", &plan), template)
    };
    // GET on the resource: its own selector, burst 2.
    assert_eq!(
        statuses(&svc, 3, || request(Method::GET, SIBLING)).await,
        [200, 200, 429]
    );
    // Another method of it, and another resource, share `/*/*` (burst 3).
    assert_eq!(
        statuses(&svc, 2, || request(Method::DELETE, SIBLING)).await,
        [200, 200]
    );
    assert_eq!(
        statuses(&svc, 2, || request(Method::GET, GREEDY)).await,
        [200, 429]
    );
}

#[tokio::test]
async fn a_plan_override_on_a_greedy_resource_leaves_a_more_specific_resource_on_the_plan() {
    let clock = clock();
    let mut throttle = BTreeMap::new();
    throttle.insert(selector("/loyalty/{proxy+}/GET"), settings(0.01, 1));
    let plan = Arc::new(plan("p", 0.01, 3).with_api_stage(ApiStage {
        api_id: API.into(),
        stage: STAGE.into(),
        throttle,
    }));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);
    let request = |template: &str| {
        routed(
            keyed(Method::GET, "/loyalty/C-1001/get", "k", &plan),
            template,
        )
    };
    // The greedy resource: the override's burst of 1.
    assert_eq!(statuses(&svc, 2, || request(GREEDY)).await, [200, 429]);
    // The resource of its own: the plan's burst of 3, untouched.
    assert_eq!(
        statuses(&svc, 4, || request(SIBLING)).await,
        [200, 200, 200, 429]
    );
}
