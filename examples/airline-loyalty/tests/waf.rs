//! The demo web ACL (`config/waf/web-acl.json`) against the three payloads
//! that passed its first version, over real HTTP against the binary: a SQL
//! injection only HIGH sensitivity sees, an XSS payload hidden behind JSON
//! `\u` escapes, and a payload after the 16 KiB inspection limit. Each is
//! refused by the rule meant for it (the WAF logs the terminating rule); the
//! API's ordinary requests still pass.

mod support;

use http::{Method, StatusCode};
use serde_json::json;
use support::{API_KEY, Http, Server, Signer, mint_token, start};

const CLIENT: Signer<'static> = Signer {
    access_key_id: "AKIALOYALTYCLIENT001",
    secret_access_key: "loyaltyClientSecretKeyDemo0000000000001",
    session_token: None,
};
const ADMIN: Signer<'static> = Signer {
    access_key_id: "AKIALOYALTYADMIN0001",
    secret_access_key: "loyaltyAdminSecretKeyDemo00000000000001",
    session_token: None,
};

/// Sends `method path` with `body` (unsigned: the WAF runs before any
/// authentication) and checks the WAF refused it with `rule`.
async fn refused_by(
    server: &Server,
    http: &Http,
    method: Method,
    path: &str,
    body: &str,
    rule: &str,
) {
    let before = server.output_len();
    let mut request = http.request(method, path, body);
    request
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    let answer = http.send(request).await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "{path}: {}",
        answer.json
    );
    assert_eq!(answer.error_type, "WAFFilteredException", "{path}");
    server.wait_for_output(&format!("rule={rule} "), before);
}

#[tokio::test(flavor = "current_thread")]
async fn sqli_that_only_high_sensitivity_sees_is_refused() {
    let server = start();
    let http = Http::new(&server.base);
    // `x' OR '1`: LOW sensitivity lets it through.
    refused_by(
        &server,
        &http,
        Method::GET,
        "/loyalty/C-1001/get?q=x%27%20OR%20%271",
        "",
        "sqli-query-and-body",
    )
    .await;
    // In a raw body.
    refused_by(
        &server,
        &http,
        Method::POST,
        "/credentials",
        r#"{"q": "x' OR '1"}"#,
        "sqli-query-and-body",
    )
    .await;
    // Behind JSON escapes, where only the parsed JSON body shows the quotes.
    refused_by(
        &server,
        &http,
        Method::POST,
        "/credentials",
        r#"{"q": "x\u0027 OR \u00271"}"#,
        "sqli-json-body",
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn xss_behind_json_escapes_is_refused_by_the_json_body_rule() {
    let server = start();
    let http = Http::new(&server.base);
    // The raw body has no `<`: only the parsed (unescaped) JSON shows it.
    let body = r#"{"q":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#;
    assert!(!body.contains('<'));
    refused_by(
        &server,
        &http,
        Method::POST,
        "/credentials",
        body,
        "xss-json-body",
    )
    .await;
    // A key is inspected too (MatchScope ALL).
    let body = r#"{"\u003cscript\u003ealert(1)\u003c/script\u003e":"1"}"#;
    refused_by(
        &server,
        &http,
        Method::POST,
        "/credentials",
        body,
        "xss-json-body",
    )
    .await;
    // A body that is not JSON is refused by the JSON rules
    // (InvalidFallbackBehavior MATCH): a parser that is laxer than the WAF's
    // cannot be used to smuggle a payload past them.
    refused_by(
        &server,
        &http,
        Method::POST,
        "/credentials",
        r#"{"q":"\u003cscript\u003e", }"#,
        "sqli-json-body",
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_payload_after_the_first_16_kib_is_refused() {
    let server = start();
    let http = Http::new(&server.base);
    // 16 KiB of ordinary JSON text, then the payload.
    let padding = "a".repeat(16 * 1024);
    let body = json!({"padding": padding, "q": "<script>alert(1)</script>"}).to_string();
    assert!(body.find("<script>").expect("payload") > 16 * 1024);
    refused_by(
        &server,
        &http,
        Method::POST,
        "/credentials",
        &body,
        "body-over-inspection-limit",
    )
    .await;
    // Any body over the limit, payload or not: the demo API takes none.
    let body = json!({"padding": "a".repeat(16 * 1024)}).to_string();
    refused_by(
        &server,
        &http,
        Method::PATCH,
        "/admin/usageplans/loyalty-basic/keys/demo-key/usage",
        &body,
        "body-over-inspection-limit",
    )
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn ordinary_requests_still_pass() {
    let server = start();
    let http = Http::new(&server.base);

    // A signed GET with the key and an ordinary query string.
    let mut request = http.request(
        Method::GET,
        "/loyalty/C-1002/get?fields=points%2Ctier&locale=en-GB&note=O%27Brien",
        "",
    );
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("header"));
    let answer = http.send(http.sign(request, "", &CLIENT)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["customerId"], "C-1002");

    // The profile route with a bearer token.
    let token = mint_token("grace", &["frequent-flyers"]);
    let mut request = http.request(Method::GET, "/profile", "");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let answer = http.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // The JSON bodies the API takes: the identity pool exchange...
    let body = json!({"Logins": {
        "cognito-idp.us-east-1.amazonaws.com/us-east-1_Example": mint_token("grace", &[])
    }})
    .to_string();
    let answer = http
        .send(http.request(Method::POST, "/credentials", &body))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // ... and UpdateUsage, with a body just under the inspection limit.
    let today = time::OffsetDateTime::now_utc().date();
    let patch = json!({"patchOperations": [
        {"op": "replace", "path": "/remaining", "value": "5"}
    ]})
    .to_string();
    for body in [patch.clone(), format!("{patch:<16384}")] {
        assert!(body.len() <= 16 * 1024);
        let mut request = http.request(
            Method::PATCH,
            "/admin/usageplans/loyalty-basic/keys/demo-key/usage",
            &body,
        );
        request
            .headers_mut()
            .insert("content-type", "application/json".parse().expect("header"));
        let answer = http.send(http.sign(request, &body, &ADMIN)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let path = format!(
        "/admin/usageplans/loyalty-basic/usage?keyId=demo-key&startDate={today}&endDate={today}"
    );
    let answer = http
        .send(http.sign(http.request(Method::GET, &path, ""), "", &ADMIN))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    server.assert_output_has_no_secret(
        &http,
        &[
            "key_id=demo-key",
            "arn:aws:iam::123456789012:user/loyalty-client",
            "arn:aws:iam::123456789012:user/loyalty-admin",
        ],
    );
}
