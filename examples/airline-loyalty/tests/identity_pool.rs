//! The identity pool end to end in the demo: sign in (a demo Cognito ID
//! token), exchange it at `POST /credentials` for temporary credentials, and
//! call `/loyalty/...` signed with them (with the API key, as the route
//! requires), over real HTTP against the `airline-loyalty` binary. A group
//! mapped to the admin role reaches `/admin/*`, which members cannot.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const API_KEY: &str = "LoyaltyDemoKey0123456789abcdef";
const PROVIDER: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";

/// The server process, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airline-loyalty"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("a first line")
        .expect("readable stdout");
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, base }
}

fn mint_token(username: &str, groups: &[&str]) -> String {
    let mut args = vec!["mint-token", "--username", username];
    for group in groups {
        args.extend(["--group", group]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_airline-loyalty"))
        .args(&args)
        .output()
        .expect("mint-token runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn request(&self, method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("host", self.base.trim_start_matches("http://"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a valid request")
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> (StatusCode, String, Value) {
        let response = self.client.request(request).await.expect("an answer");
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .unwrap_or_default();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            error_type,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    async fn exchange(&self, body: Value) -> (StatusCode, Value) {
        let (status, _, json) = self
            .send(self.request(Method::POST, "/credentials", &body.to_string()))
            .await;
        (status, json)
    }

    /// `GET path` with the API key, signed with temporary credentials.
    async fn signed_get(&self, path: &str, credentials: &Value) -> (StatusCode, String, Value) {
        let mut request = self.request(Method::GET, path, "");
        request
            .headers_mut()
            .insert("x-api-key", API_KEY.parse().expect("header"));
        let identity = Credentials::new(
            credentials["AccessKeyId"].as_str().expect("AccessKeyId"),
            credentials["SecretKey"].as_str().expect("SecretKey"),
            credentials["SessionToken"].as_str().map(str::to_owned),
            None,
            "identity-pool-test",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.session_token_mode = SessionTokenMode::Include;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("execute-api")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .expect("signing parameters")
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("ASCII").to_owned()))
            .collect();
        let signable = SignableRequest::new(
            "GET",
            request.uri().to_string(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(b""),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
        instructions.apply_to_request_http1x(&mut request);
        self.send(request).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sign_in_exchange_and_call_loyalty_with_temporary_credentials() {
    let server = start();
    let http = Http {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: server.base.clone(),
    };

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
}
