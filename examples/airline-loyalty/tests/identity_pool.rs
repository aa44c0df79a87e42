//! The identity pool end to end in the demo: sign in (a demo Cognito ID
//! token), exchange it at `POST /credentials` for temporary credentials, and
//! call `/loyalty/...` signed with them (with the API key, as the route
//! requires), over real HTTP against the `airline-loyalty` binary. A group
//! mapped to the admin role reaches `/admin/*`, which members cannot.

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API_KEY, Http, Signer, mint_token, start};

const PROVIDER: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";

impl Http {
    async fn exchange(&self, body: Value) -> (StatusCode, Value) {
        let answer = self
            .send(self.request(Method::POST, "/credentials", &body.to_string()))
            .await;
        (answer.status, answer.json)
    }

    /// `GET path` with the API key, signed with temporary credentials.
    async fn signed_get(&self, path: &str, credentials: &Value) -> (StatusCode, String, Value) {
        let mut request = self.request(Method::GET, path, "");
        request
            .headers_mut()
            .insert("x-api-key", API_KEY.parse().expect("header"));
        let signer = Signer {
            access_key_id: credentials["AccessKeyId"].as_str().expect("AccessKeyId"),
            secret_access_key: credentials["SecretKey"].as_str().expect("SecretKey"),
            session_token: credentials["SessionToken"].as_str(),
        };
        let answer = self.send(self.sign(request, "", &signer)).await;
        (answer.status, answer.error_type, answer.json)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sign_in_exchange_and_call_loyalty_with_temporary_credentials() {
    let server = start();
    let http = Http::new(&server.base);

    // Sign in: a demo Cognito ID token, exchanged for credentials.
    let token = mint_token("alice", &["frequent-flyers"]);
    let (status, answer) = http.exchange(json!({"Logins": {PROVIDER: token}})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let identity = answer["IdentityId"].as_str().expect("IdentityId");
    assert!(identity.starts_with("us-east-1:"), "{identity}");
    let credentials = &answer["Credentials"];
    assert!(
        credentials["AccessKeyId"]
            .as_str()
            .expect("id")
            .starts_with("ASIA")
    );

    // The same user gets the same identity id again.
    let (_, again) = http
        .exchange(json!({"Logins": {PROVIDER: mint_token("alice", &[])}}))
        .await;
    assert_eq!(again["IdentityId"], answer["IdentityId"]);

    // Call the loyalty API, signed with the temporary credentials.
    let (status, error, json) = http.signed_get("/loyalty/C-1001/get", credentials).await;
    assert_eq!(status, StatusCode::OK, "{error}: {json}");
    assert_eq!(json["customerId"], "C-1001", "{json}");

    // The member role may not reach the usage admin service.
    let (status, error, json) = http.signed_get("/admin/usageplans", credentials).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_eq!(error, "AccessDeniedException");
    let message = json["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("assumed-role/LoyaltyMember/{identity}")),
        "{message}"
    );

    // The loyalty-admins group maps to the admin role, which may.
    let today = time::OffsetDateTime::now_utc().date();
    let admin_path = format!(
        "/admin/usageplans/loyalty-basic/usage?keyId=demo-key&startDate={today}&endDate={today}"
    );
    let (status, admin) = http
        .exchange(json!({"Logins": {PROVIDER: mint_token("root", &["loyalty-admins"])}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    let (status, error, json) = http.signed_get(&admin_path, &admin["Credentials"]).await;
    assert_eq!(status, StatusCode::OK, "{error}: {json}");
    assert_eq!(json["usagePlanId"], "loyalty-basic", "{json}");

    // A tampered session token is unrecognized.
    let mut tampered = credentials.clone();
    let token = tampered["SessionToken"].as_str().expect("token").to_owned();
    let flipped = format!(
        "{}{}",
        &token[..token.len() - 1],
        if token.ends_with('A') { 'B' } else { 'A' }
    );
    tampered["SessionToken"] = json!(flipped);
    let (status, error, json) = http.signed_get("/loyalty/C-1001/get", &tampered).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error, "UnrecognizedClientException");
    assert_eq!(
        json["message"],
        "The security token included in the request is invalid."
    );

    // A bad ID token is refused at the exchange.
    let (status, _) = http
        .exchange(json!({"Logins": {PROVIDER: "not-a-token"}}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The demo pool takes no guests.
    let (status, _) = http.exchange(json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // No ID token, secret key, session token or signature in the demo's
    // output (its logs at debug and trace), which names the identities.
    let admin_identity = admin["IdentityId"].as_str().expect("IdentityId").to_owned();
    server.assert_output_has_no_secret(
        &http,
        &[
            &format!("identity_id=\"{identity}\""),
            &format!("assumed-role/LoyaltyAdmin/{admin_identity}"),
        ],
    );
}
