//! The demo with a Deny on one customer refuses every spelling of that
//! customer's path: IAM reads the one canonical path, the same one axum's
//! `{customerId}` extractor decodes for the handler.

mod support;

use std::path::{Path, PathBuf};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API_KEY, Http, Signer, copy_dir, start_with};

const CLIENT: Signer<'static> = Signer {
    access_key_id: "AKIALOYALTYCLIENT001",
    secret_access_key: "loyaltyClientSecretKeyDemo0000000000001",
    session_token: None,
};

/// The demo's configuration folder, copied, with the client's policy
/// denying customer C-1004.
fn config_with_deny() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let target = std::env::temp_dir().join(format!("airline-loyalty-deny-{}", std::process::id()));
    copy_dir(&source, &target);
    let policy_file = target.join("policies/invoke-loyalty.json");
    let mut policy: Value =
        serde_json::from_str(&std::fs::read_to_string(&policy_file).expect("the policy reads"))
            .expect("the policy is JSON");
    policy["Statement"]
        .as_array_mut()
        .expect("a statement list")
        .push(json!({
            "Sid": "NotThisCustomer",
            "Effect": "Deny",
            "Action": "execute-api:Invoke",
            "Resource": "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/loyalty/C-1004/*"
        }));
    std::fs::write(&policy_file, policy.to_string()).expect("the policy writes");
    target.join("gateway.toml")
}

async fn get(http: &Http, path: &str) -> (StatusCode, Value) {
    let mut request = http.request(Method::GET, path, "");
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("a header value"));
    let answer = http.send(http.sign(request, "", &CLIENT)).await;
    (answer.status, answer.json)
}

#[tokio::test(flavor = "current_thread")]
async fn a_deny_holds_for_every_spelling_of_the_path() {
    let config = config_with_deny();
    let server = start_with(&["--config", config.to_str().expect("a UTF-8 path")]);
    let http = Http::new(&server.base);

    for spelling in [
        "/loyalty/C-1004/get",
        "/loyalty/C%2D1004/get",
        "/loyalty/%43-1004/get",
        "/loyalty/C-100%34/get",
        "/loyalty/%43%2d%31%30%30%34/get",
    ] {
        let (status, json) = get(&http, spelling).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{spelling}: {json}");
        let message = json["message"].as_str().unwrap_or_default();
        assert!(
            message.ends_with("/prod/GET/loyalty/C-1004/get with an explicit deny"),
            "{spelling}: {message}"
        );
    }
    // axum matches routes on the path as sent, so an encoded literal segment
    // reaches no route (the demo answers as API Gateway does for an unknown
    // route); paths that cannot name one resource are refused before IAM.
    for spelling in [
        "/loyalty/C-1004/%67et",
        "/loyalty/C-1004%2Fget",
        "/loyalty/x/%2E%2E/C-1004/get",
    ] {
        let (status, json) = get(&http, spelling).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{spelling}: {json}");
    }
    // Another customer, in any spelling, is served as before.
    let (status, json) = get(&http, "/loyalty/C%2D1001/get").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["customerId"], "C-1001");

    drop(server);
    let _ = std::fs::remove_dir_all(config.parent().expect("the config's folder"));
}
