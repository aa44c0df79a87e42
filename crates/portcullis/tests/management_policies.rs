//! `Gateway::management_policies`: the management API authorizes the
//! gateway's own IAM users by their `apigateway:*` policies.
#![cfg(feature = "config")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use portcullis::Gateway;
use portcullis::control_plane::{LocalStore, ManagementApi, QuotaEngine};
use portcullis::core::context::RequestContextExt;
use portcullis::core::context::{AuthMethod, Caller};
use portcullis::quota::QuotaLayer;
use tower::ServiceExt;

const ADMIN: &str = "arn:aws:iam::123456789012:user/admin";
const CLIENT: &str = "arn:aws:iam::123456789012:user/client";

#[tokio::test]
async fn iam_users_policies_authorize_management_calls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/admin.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"apigateway:GET",
            "Resource":"arn:aws:apigateway:us-east-1::/usageplans*"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policies/client.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        format!(
            r#"
[gateway]
region = "us-east-1"
account_id = "123456789012"
api_id = "a1b2c3d4e5"
stage = "prod"

[[iam.users]]
arn = "{ADMIN}"
access_key_id = "AKIAADMIN00000000001"
secret_access_key = "admin-secret-0000000000000000000000000001"
policies = ["policies/admin.json"]

[[iam.users]]
arn = "{CLIENT}"
access_key_id = "AKIACLIENT0000000001"
secret_access_key = "client-secret-000000000000000000000000001"
policies = ["policies/client.json"]

[store]
kind = "memory"
"#
        ),
    )
    .unwrap();
    let gateway = Gateway::builder_from_file(dir.path().join("gateway.toml"))
        .unwrap()
        .build()
        .unwrap();
    let quota = QuotaLayer::with_store(QuotaEngine::new(LocalStore::memory()));
    let api = ManagementApi::new(quota.usage_api()).policies(gateway.management_policies());
    let call = |method: &str, path: &str, who: &str| {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::new()))
            .unwrap();
        request
            .request_context_mut()
            .set_caller(Caller::new(who.to_owned(), AuthMethod::Iam));
        api.clone().oneshot(request)
    };
    assert_eq!(
        call("GET", "/usageplans", ADMIN).await.unwrap().status(),
        StatusCode::OK
    );
    let refused = call("DELETE", "/usageplans/p1", ADMIN).await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "only GET is allowed"
    );
    let refused = call("GET", "/usageplans", CLIENT).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.headers()["x-amzn-errortype"],
        "AccessDeniedException"
    );
}
