//! The Portcullis demo: an airline's loyalty API behind IAM, an API key,
//! a usage plan, Cognito-style sign-in and a WAF.
//!
//! `cargo run -p airline-loyalty` serves on 127.0.0.1:3000 with the
//! configuration in `config/` (embedded in the binary, so it runs from any
//! folder) and the embedded store in `--data-dir` (default
//! `$XDG_DATA_HOME/airline-loyalty`, else `~/.local/share/airline-loyalty`),
//! so keys, plans and the day's usage survive a restart:
//!
//! The API's methods, and who may call them, come from the API's own
//! OpenAPI export, `config/openapi.json` (`[api] openapi` in
//! `config/gateway.toml`), as API Gateway would apply it:
//!
//! - `GET /loyalty/{customerId}/get`: IAM (SigV4) + API key + usage plan
//!   (rate 1, burst 2, 10 a day): the customer's points and tier progress.
//! - `POST /loyalty/{customerId}/redeem`: the same protection, and a body
//!   validated against the export's `Redemption` model (`points`, an integer
//!   of at least 1, and `reward`, 1 to 64 characters; else 400 `Invalid
//!   request body`): the new balance.
//! - `GET /profile`: a Cognito-style ID token (mint one with
//!   `airline-loyalty mint-token`): the token's claims.
//! - CORS for `https://app.airline.example`: the export's OPTIONS mocks answer
//!   preflights without credentials, and its gateway responses put the CORS
//!   headers on refusals.
//! - Every response carries `x-amzn-RequestId`; `[api.access_log]` writes
//!   API Gateway's access log.
//! - `/admin/...`: API Gateway's management API (usage plans, API keys,
//!   plan keys, usage): `aws apigateway ... --endpoint-url
//!   http://127.0.0.1:3000/admin`. Calls signed for `apigateway` are
//!   authorized by the users' `apigateway:*` policies; calls signed for
//!   `execute-api` (awscurl) by the execute-api policy, for the usage
//!   admin's operations (GetUsage, UpdateUsage, ...); unsigned ones get 403.
//! - The WAF web ACL in front of everything: an IP-set block, a rate-based
//!   rule, bodies over the 16 KiB inspection limit refused, SQL injection
//!   (HIGH sensitivity) and XSS rules on the query, the raw body and the
//!   parsed JSON body.
//! - `/console/`: the usage-plan console (`portcullis-console`), a page that
//!   signs its calls to `/admin` in the browser.
//! - Any other method or path: 403 `Missing Authentication Token`, as API
//!   Gateway.
//!
//! `--config FILE` uses another configuration; `--store memory` or
//! `--store redis://...` (with `--store-key-prefix P`) another store;
//! `--listen ADDR` another
//! address (`127.0.0.1:0` picks a free port; the first line printed is
//! `listening on http://ADDR`). Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`), with one `portcullis.request` span per request (its
//! request id, method, path, API key id, principal, outcome and status,
//! written when the request ends).
//!
//! Metrics: a Prometheus exporter (`metrics-exporter-prometheus`) records
//! every `portcullis_*` metric, served as `GET /metrics` on
//! `--metrics-addr` (default `127.0.0.1:9464`, a listener of its own and
//! without credentials, so keep it off public interfaces; `--metrics-addr
//! off` serves none). See `docs/observability.md`. The same listener serves
//! `GET /healthz` (liveness: the process answers) and `GET /readyz`
//! (readiness: 200 while the store is reachable or `[quota] on_store_error
//! = "allow"` serves without it, 503 otherwise).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use portcullis::config::{
    ApiSettings, Config, ConfigError, ConfigFileError, StoreKind, StoreSettings,
};
use portcullis::jwt::{Issuer, JwtClaims};
use portcullis::{
    Gateway, GatewayBuilder, GatewayResponse, GatewayResponseType, GatewayResponsesLayer,
    ReloadableGateway,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The embedded default configuration: (path relative to the config folder,
/// contents).
const DEFAULT_CONFIG: &[(&str, &str)] = &[
    ("gateway.toml", include_str!("../config/gateway.toml")),
    (
        "policies/invoke-loyalty.json",
        include_str!("../config/policies/invoke-loyalty.json"),
    ),
    (
        "policies/admin.json",
        include_str!("../config/policies/admin.json"),
    ),
    ("jwks.json", include_str!("../config/jwks.json")),
    ("openapi.json", include_str!("../config/openapi.json")),
    (
        "waf/web-acl.json",
        include_str!("../config/waf/web-acl.json"),
    ),
    (
        "waf/ip-sets.json",
        include_str!("../config/waf/ip-sets.json"),
    ),
];

/// The demo token-signing key, whose public half is `config/jwks.json`.
/// A demo secret, published on purpose: never trust it anywhere else.
const DEMO_SIGNING_KEY: &str = include_str!("../config/demo-signing-key.pem");
const DEMO_KID: &str = "airline-loyalty-demo-1";

#[derive(Clone, Debug, Parser)]
#[command(
    name = "airline-loyalty",
    about = "The Portcullis airline-loyalty demo"
)]
struct Args {
    /// A gateway configuration file (default: the embedded demo configuration).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Where keys, plans, usage and quota counters live, overriding the
    /// file's `[store]`: `memory`, `redis://HOST:PORT` (one Redis), or
    /// several comma-separated `redis://` URLs (the nodes of a Redis
    /// Cluster). Default: the embedded store in `--data-dir`.
    #[arg(long, value_name = "STORE")]
    store: Option<String>,
    /// The embedded store's folder (default: `$XDG_DATA_HOME/airline-loyalty`,
    /// else `~/.local/share/airline-loyalty`; a `[store] data_dir` in
    /// `--config` is used when this is not given).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The prefix of every Redis key (default `portcullis`), so that several
    /// demos can share one Redis.
    #[arg(long, value_name = "PREFIX")]
    store_key_prefix: Option<String>,
    /// Where `GET /metrics` (Prometheus text), `GET /healthz` (liveness)
    /// and `GET /readyz` (readiness) are served: a listener of its own,
    /// without credentials, so keep it on loopback or a private network.
    /// `off` serves none; `127.0.0.1:0` picks a free port (printed as
    /// `metrics on http://ADDR/metrics`).
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:9464")]
    metrics_addr: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Debug, Subcommand)]
enum Command {
    /// Prints a demo Cognito ID token for `GET /profile`, signed with the demo key.
    MintToken {
        /// `cognito:username`.
        #[arg(long, default_value = "alice")]
        username: String,
        /// `email` (default `<username>@example.com`).
        #[arg(long)]
        email: Option<String>,
        /// Lifetime in seconds (Cognito allows at most a day).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// `cognito:groups` (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

/// One member of the loyalty programme.
struct Member {
    id: &'static str,
    name: &'static str,
    points: u64,
    tier: &'static str,
}

const MEMBERS: &[Member] = &[
    Member {
        id: "C-1001",
        name: "Ada Lovelace",
        points: 12_400,
        tier: "SILVER",
    },
    Member {
        id: "C-1002",
        name: "Grace Hopper",
        points: 58_250,
        tier: "GOLD",
    },
    Member {
        id: "C-1003",
        name: "Alan Turing",
        points: 2_150,
        tier: "BLUE",
    },
    Member {
        id: "C-1004",
        name: "Katherine Johnson",
        points: 104_900,
        tier: "PLATINUM",
    },
];

/// Tier thresholds, lowest first.
const TIERS: &[(&str, u64)] = &[
    ("BLUE", 0),
    ("SILVER", 10_000),
    ("GOLD", 50_000),
    ("PLATINUM", 100_000),
];

/// The origin of the airline's web app, allowed by the export's CORS
/// settings.
const APP_ORIGIN: &str = "https://app.airline.example";

fn loyalty_answer(member: &Member, points: u64) -> Value {
    let index = TIERS
        .iter()
        .position(|(t, _)| *t == member.tier)
        .unwrap_or(0);
    let floor = TIERS[index].1;
    match TIERS.get(index + 1) {
        Some((next, threshold)) => {
            let span = threshold - floor;
            let progress = (points.saturating_sub(floor) * 100 / span).min(100);
            json!({
                "customerId": member.id, "name": member.name, "points": points,
                "tier": member.tier, "nextTier": next,
                "pointsToNextTier": threshold.saturating_sub(points),
                "tierProgressPercent": progress,
            })
        }
        None => json!({
            "customerId": member.id, "name": member.name, "points": points,
            "tier": member.tier, "nextTier": null, "pointsToNextTier": 0, "tierProgressPercent": 100,
        }),
    }
}

/// Each member's points, changed by redemptions (in memory: a restart
/// starts again from [`MEMBERS`]).
#[derive(Clone)]
struct Balances(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Balances {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(
            MEMBERS.iter().map(|m| (m.id, m.points)).collect(),
        )))
    }
}

fn no_member(customer_id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": format!("No loyalty member {customer_id}")})),
    )
        .into_response()
}

async fn loyalty(
    State(balances): State<Balances>,
    UrlPath(customer_id): UrlPath<String>,
) -> Response {
    let Some(member) = MEMBERS.iter().find(|m| m.id == customer_id) else {
        return no_member(&customer_id);
    };
    let points = balances
        .0
        .lock()
        .map_or(member.points, |b| b.get(member.id).copied().unwrap_or(0));
    Json(loyalty_answer(member, points)).into_response()
}

/// The body of `POST /loyalty/{customerId}/redeem`, already validated by the
/// gateway against the export's `Redemption` model.
#[derive(serde::Deserialize)]
struct Redemption {
    points: u64,
    reward: String,
}

async fn redeem(
    State(balances): State<Balances>,
    UrlPath(customer_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let Some(member) = MEMBERS.iter().find(|m| m.id == customer_id) else {
        return no_member(&customer_id);
    };
    let Ok(redemption) = serde_json::from_slice::<Redemption>(&body) else {
        // Only a body the model allows but this type cannot hold (a number
        // beyond u64) gets here.
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Invalid request body"})),
        )
            .into_response();
    };
    let Ok(mut balances) = balances.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let balance = balances.entry(member.id).or_insert(0);
    if redemption.points > *balance {
        return (
            StatusCode::CONFLICT,
            Json(json!({
                "message": format!("{} has {} points, fewer than {}", member.id, balance, redemption.points),
            })),
        )
            .into_response();
    }
    *balance -= redemption.points;
    let mut answer = loyalty_answer(member, *balance);
    answer["redeemed"] = json!(redemption.points);
    answer["reward"] = json!(redemption.reward);
    Json(answer).into_response()
}

/// What the export's integrations add to their answers: the web app's
/// origin (the gateway's OPTIONS mocks and gateway responses cover
/// preflights and refusals).
fn allow_app_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static(APP_ORIGIN),
    );
    response
}

async fn profile(request: Request<Body>) -> Json<Value> {
    let claims = JwtClaims::from_extensions(request.extensions());
    Json(json!(claims.as_ref().map(JwtClaims::as_map)))
}

/// API Gateway answers an unknown route with 403 Missing Authentication Token.
async fn unknown_route(request: Request<Body>) -> Response {
    GatewayResponse::new(GatewayResponseType::MissingAuthenticationToken)
        .render(&request)
        .map(Body::from)
}

/// Builds the app from a gateway (again on each reload; the balances stay).
fn app(gateway: &Gateway, balances: &Balances) -> Result<Router, String> {
    let sigv4 = gateway
        .sigv4_layer()
        .ok_or("the configuration needs an [iam] section")?;
    let definition = gateway
        .api_definition()
        .ok_or("the configuration needs an [api] section: the API's OpenAPI export")?;
    // The API's integrations. Which of them takes IAM, an API key, a token,
    // and which body model, is the export's business: the gateway's layer
    // routes each request to its method's chain (an undefined method or
    // path gets 403 Missing Authentication Token).
    let integrations = Router::new()
        .route("/loyalty/{customerId}/get", get(loyalty))
        .route("/loyalty/{customerId}/redeem", post(redeem))
        .route("/profile", get(profile))
        .with_state(balances.clone())
        .layer(tower::util::MapResponseLayer::new(allow_app_origin));
    let api = tower::Layer::layer(&gateway.layer().without_waf(), integrations);
    // API Gateway's management API under /admin, for both signing scopes
    // (the layers see the full /admin/... path):
    // - `apigateway` (the AWS CLI and SDKs): signatures checked, then the
    //   users' IAM policies over `apigateway:*` actions;
    // - `execute-api` (awscurl and existing scripts): the execute-api
    //   policies, and the usage admin's operations only.
    let management = Router::new()
        .nest_service(
            "/admin",
            gateway
                .management_api()
                .policies(gateway.management_policies()),
        )
        .layer(sigv4.clone().service("apigateway").authentication_only());
    let usage_admin = Router::new()
        .nest_service("/admin", gateway.usage_admin())
        .layer(sigv4);
    let admin = tower::service_fn(move |mut request: Request<Body>| {
        // The inner routers match the path again, from the start.
        request
            .extensions_mut()
            .remove::<axum::extract::MatchedPath>();
        let router = match signing_service(&request).as_deref() {
            Some("apigateway") => Some(management.clone()),
            Some(_) => Some(usage_admin.clone()),
            None => None,
        };
        async move {
            match router {
                Some(router) => router.oneshot(request).await,
                // Unsigned: API Gateway's 403 Missing Authentication Token.
                None => Ok(unknown_route(request).await),
            }
        }
    });
    let mut app = Router::new()
        .route_service("/admin", admin.clone())
        .route_service("/admin/{*rest}", admin)
        .fallback_service(api);
    // Cognito-style sign-in: `POST /credentials` exchanges an ID token for
    // temporary credentials, which the IAM layer above then accepts.
    if let Some(pool) = gateway.identity_pool() {
        app = app.route_service("/credentials", pool.credentials_service());
    }
    // The usage-plan console at /console/: a page whose script calls /admin
    // above, signed for `apigateway` in the browser, so it adds no authority.
    let settings = &gateway.config().gateway;
    let console = portcullis_console::Console::new()
        .api_path("/admin")
        .region(&settings.region)
        .api_stage(&settings.api_id, &settings.stage);
    app = app
        .route_service("/console", console.clone())
        .route_service("/console/", console.clone())
        .route_service("/console/{*asset}", console);
    // The WAF in front of everything, unknown routes and preflights
    // included.
    if let Some(waf) = gateway.waf_layer() {
        app = app.layer(waf);
    }
    // The export's gateway responses (CORS headers on refusals), for the
    // WAF's refusals too.
    if let Some(responses) = definition.gateway_responses() {
        app = app.layer(GatewayResponsesLayer::new(responses.clone()));
    }
    // Outermost: `x-amzn-RequestId` on every response, and the access log
    // of `[api.access_log]`.
    if let Some(access_log) = gateway.access_log_layer() {
        app = app.layer(access_log);
    }
    Ok(app)
}

/// The service of a request's SigV4 credential scope
/// (`AKID/date/region/SERVICE/aws4_request`), from the `Authorization`
/// header or the `X-Amz-Credential` query parameter; `None` when unsigned.
fn signing_service(request: &Request<Body>) -> Option<String> {
    let scope = |credential: &str| credential.split('/').nth(3).map(str::to_owned);
    if let Some(value) = request.headers().get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let credential = value
            .split(['\u{20}', ','])
            .find_map(|part| part.strip_prefix("Credential="))?;
        return scope(credential);
    }
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.eq_ignore_ascii_case("X-Amz-Credential") {
            return None;
        }
        let decoded = percent_decode(value);
        scope(&decoded)
    })
}

/// Decodes `%XX` escapes (a credential's `/` is sent as `%2F`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The embedded store's default folder: `$XDG_DATA_HOME/airline-loyalty`,
/// else `~/.local/share/airline-loyalty`.
fn default_data_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("airline-loyalty"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".local/share/airline-loyalty"))
        .ok_or_else(|| {
            "no $XDG_DATA_HOME or $HOME: give --data-dir DIR (or --store memory)".to_owned()
        })
}

/// Writes the embedded configuration to a folder named after its contents
/// (so runs share it and leave nothing new behind) and returns the path of
/// its `gateway.toml`. Files are written to a temporary name and renamed, so
/// concurrent runs never read a half-written file.
fn materialize_default_config() -> Result<PathBuf, String> {
    // FNV-1a over every file: a stable name for these contents.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, text) in DEFAULT_CONFIG {
        for byte in name.bytes().chain(text.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let dir = std::env::temp_dir().join(format!("airline-loyalty-config-{hash:016x}"));
    for (name, text) in DEFAULT_CONFIG {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|existing| existing == *text) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&partial, text).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(dir.join("gateway.toml"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An ID token for the demo user pool.
fn mint_token(
    config: &Config,
    username: &str,
    email: &str,
    ttl: u64,
    groups: &[String],
) -> Result<String, String> {
    let jwt = config
        .jwt
        .as_ref()
        .ok_or("the configuration has no [jwt] section")?;
    let issuer = match (&jwt.cognito_user_pool, &jwt.issuer) {
        (Some(pool), _) => Issuer::user_pool(pool).issuer().to_owned(),
        (None, Some(issuer)) => issuer.clone(),
        (None, None) => return Err("[jwt] names no issuer".to_owned()),
    };
    let client = jwt.client_ids.first().cloned().unwrap_or_default();
    let now = now();
    let mut claims = json!({
        "sub": format!("{username}-0000-4000-8000-demo"),
        "iss": issuer,
        "aud": client,
        "token_use": "id",
        "auth_time": now,
        "iat": now,
        "exp": now + ttl,
        "cognito:username": username,
        "email": email,
        "email_verified": true,
    });
    if !groups.is_empty() {
        claims["cognito:groups"] = json!(groups);
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(DEMO_KID.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(DEMO_SIGNING_KEY.as_bytes())
        .map_err(|e| format!("the demo signing key: {e}"))?;
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing the token: {e}"))
}

/// Prints the demo's credentials and commands to try. The credentials
/// (published demo values) are printed only to a terminal: when stdout is a
/// pipe or a file, such as a service's log, the commands name them as shell
/// variables instead, so that no secret lands in a log.
fn banner(config: &Config, addr: SocketAddr, config_path: &Path, token: Option<&str>) {
    use std::io::IsTerminal;
    let reveal = std::io::stdout().is_terminal();
    let shown = |secret: &str, variable: &str| {
        if reveal {
            secret.to_owned()
        } else {
            format!("${variable}")
        }
    };
    let base = format!("http://{addr}");
    println!("configuration: {}", config_path.display());
    if !reveal {
        println!(
            "demo credentials: not printed, as stdout is not a terminal (they are in the configuration)"
        );
    }
    let key = config.api_keys.iter().find_map(|k| {
        k.value
            .as_ref()
            .map(|v| (k.id.clone(), shown(v.expose(), "API_KEY")))
    });
    let users: BTreeMap<String, (String, String)> = config
        .iam
        .as_ref()
        .map(|iam| {
            iam.users
                .iter()
                .map(|u| {
                    let variable = if u.arn.ends_with("loyalty-admin") {
                        "ADMIN_SECRET_KEY"
                    } else {
                        "CLIENT_SECRET_KEY"
                    };
                    (
                        u.arn.clone(),
                        (
                            u.access_key_id.clone(),
                            shown(&u.secret_access_key, variable),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (key_id, key_value) =
        key.unwrap_or_else(|| ("(none)".to_owned(), "(given as value_sha256)".to_owned()));
    println!("demo API key ({key_id}): {key_value}");
    for (arn, (id, secret)) in &users {
        println!("IAM user {arn}\n  access key id:     {id}\n  secret access key: {secret}");
    }
    let client = users
        .iter()
        .find(|(arn, _)| arn.ends_with("loyalty-client"))
        .or_else(|| users.iter().next());
    let admin = users.iter().find(|(arn, _)| arn.ends_with("loyalty-admin"));
    let region = &config.gateway.region;
    println!("\nTry (awscurl: pip install awscurl):");
    println!(
        "  curl -i {base}/loyalty/C-1001/get                                   # 403 Missing Authentication Token"
    );
    if let Some((_, (id, secret))) = client {
        let sign = format!(
            "awscurl --service execute-api --region {region} --access_key {id} --secret_key {secret}"
        );
        println!("  {sign} {base}/loyalty/C-1001/get   # 403 Forbidden (no key)");
        println!(
            "  {sign} -H 'x-api-key: {key_value}' {base}/loyalty/C-1001/get   # 200, then 429s"
        );
        println!(
            "  {sign} -X POST -H 'x-api-key: {key_value}' -H 'content-type: application/json' -d '{{\"points\":500,\"reward\":\"lounge pass\"}}' {base}/loyalty/C-1001/redeem   # 200, the new balance"
        );
    }
    println!(
        "  curl -i -X OPTIONS -H 'Origin: {APP_ORIGIN}' -H 'Access-Control-Request-Method: POST' {base}/loyalty/C-1001/redeem   # 200, a CORS preflight (no credentials)"
    );
    if let Some((_, (id, secret))) = admin {
        let today = time::OffsetDateTime::now_utc().date();
        let sign = format!(
            "awscurl --service execute-api --region {region} --access_key {id} --secret_key {secret}"
        );
        println!(
            "  {sign} '{base}/admin/usageplans/loyalty-basic/usage?keyId={key_id}&startDate={today}&endDate={today}'"
        );
        println!(
            "  {sign} -X PATCH -d '{{\"patchOperations\":[{{\"op\":\"replace\",\"path\":\"/remaining\",\"value\":\"5\"}}]}}' {base}/admin/usageplans/loyalty-basic/keys/{key_id}/usage"
        );
    }
    if let Some(token) = token {
        let token = shown(token, "TOKEN");
        println!("  curl -H 'Authorization: Bearer {token}' {base}/profile");
    }
    println!(
        "  curl -i '{base}/loyalty/C-1001/get?id=1%27%20OR%20%271%27=%271'          # 403, the WAF's SQLi rule"
    );
    println!(
        "  curl -i -H 'X-Forwarded-For: 192.0.2.10' {base}/profile                 # 403, the WAF's IP set"
    );
}

/// `--store`: `memory`, one `redis://` URL, or a comma-separated list of a
/// cluster's nodes.
fn store_settings(store: &str, prefix: Option<String>) -> Result<StoreSettings, String> {
    if store == "memory" {
        return Ok(StoreSettings::memory());
    }
    let urls: Vec<&str> = store.split(',').map(str::trim).collect();
    if urls
        .iter()
        .any(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
    {
        return Err(format!(
            "--store: expected `memory` or redis:// URLs, got `{store}`"
        ));
    }
    let mut settings = match urls.as_slice() {
        [one] => StoreSettings::redis(*one),
        many => StoreSettings::redis_cluster(many.iter().copied()),
    };
    settings.key_prefix = prefix;
    Ok(settings)
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    // If a signal handler cannot be installed, wait for the other one.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The gateway's builder: the file, with the command line's overrides (read
/// again on each reload).
fn builder(config_path: &Path, args: &Args) -> Result<GatewayBuilder, String> {
    let mut builder = Gateway::builder_from_file(config_path).map_err(|e| e.to_string())?;
    if builder.config().api.is_none() {
        // A configuration written before the demo ran from its export names
        // no `[api]`: it keeps working with the demo's own export.
        let export = materialize_default_config()?.with_file_name("openapi.json");
        builder = builder.api(ApiSettings::new(export));
    }
    if let Some(store) = &args.store {
        builder = builder.store(store_settings(store, args.store_key_prefix.clone())?);
    }
    let store = &builder.config().store;
    if store.kind() == StoreKind::Embedded {
        match &args.data_dir {
            Some(dir) => builder = builder.data_dir(dir),
            None if store.data_dir.is_none() => builder = builder.data_dir(default_data_dir()?),
            None => {}
        }
    }
    Ok(builder)
}

async fn serve(args: Args) -> Result<(), String> {
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => materialize_default_config()?,
    };
    // The recorder goes in before the gateway is built: the layers register
    // their counters when they are built.
    let metrics = install_metrics(&args.metrics_addr).await?;
    // Opens the embedded store, or connects to Redis.
    let (path, loader_args) = (config_path.clone(), args.clone());
    let gateway = ReloadableGateway::with_loader(move || {
        builder(&path, &loader_args).map_err(|e| ConfigFileError::from(ConfigError::whole(e)))
    })
    .await
    .map_err(|e| e.to_string())?;
    // `kill -HUP <pid>` reloads the configuration; a bad file is logged and
    // refused, and the running one keeps serving.
    #[cfg(unix)]
    gateway
        .reload_on_sighup()
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let balances = Balances::new();
    let app = Router::new().fallback_service(gateway.try_service(move |g| app(g, &balances))?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    let current = gateway.current();
    let token = if args.config.is_none() {
        mint_token(current.config(), "alice", "alice@example.com", 3600, &[]).ok()
    } else {
        None
    };
    match current.database_path() {
        Some(path) => println!("store: embedded, {}", path.display()),
        None => println!("store: {:?}", current.store_kind()),
    }
    banner(current.config(), addr, &config_path, token.as_deref());
    drop(current);
    if let Some((metrics_addr, handle)) = metrics {
        // A `--metrics-addr` that cannot be bound is a warning, not a failed
        // demo (several demos on one machine share the default port).
        match tokio::net::TcpListener::bind(metrics_addr).await {
            Ok(listener) => {
                let local = listener.local_addr().map_err(|e| e.to_string())?;
                println!("metrics on http://{local}/metrics");
                println!("health on http://{local}/healthz and http://{local}/readyz");
                let router = ops_router(handle, gateway.clone());
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, router).await {
                        tracing::warn!(%error, "the metrics listener stopped");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, %metrics_addr, "cannot listen for /metrics; serving no metrics");
            }
        }
    }
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .map_err(|e| e.to_string());
    // Unspent quota blocks go back to the store, so the restart counts
    // only what was admitted.
    let shut = gateway
        .shutdown()
        .await
        .map_err(|e| format!("giving quota blocks back: {e}"));
    served.and(shut)
}

/// The ops listener's routes: `GET /metrics` (Prometheus text), `GET
/// /healthz` (liveness) and `GET /readyz` (readiness, see [`readiness`]).
fn ops_router(handle: PrometheusHandle, gateway: ReloadableGateway) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
        // Liveness: the process answers. Nothing else is checked, so a
        // Redis outage never gets the replica restarted.
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(move || {
                let (status, body) = readiness(&gateway.current());
                async move { (status, Json(body)) }
            }),
        )
}

/// Readiness: whether this replica should get traffic. The configuration
/// is loaded (the gateway exists), and either the store is reachable or
/// the quota's failure policy serves without it:
///
/// - store reachable: 200 `ready`;
/// - store unreachable, `[quota] on_store_error = "allow"` (the default,
///   API Gateway's behaviour): 200 `degraded`, since every request is
///   still served (quota blocks in hand exactly, the rest uncounted), and
///   taking every replica out of the load balancer together when their
///   shared Redis goes down would refuse what they can serve;
/// - store unreachable, `"refuse"`: 503 `unavailable`, since requests that
///   need the store would get 500, and a replica that can reach it serves
///   them better.
fn readiness(gateway: &Gateway) -> (StatusCode, Value) {
    let reachable = gateway.is_ready();
    let serves_without_store =
        gateway.config().quota.on_store_error == portcullis::quota::OnStoreError::Allow;
    let (status, state) = match (reachable, serves_without_store) {
        (true, _) => (StatusCode::OK, "ready"),
        (false, true) => (StatusCode::OK, "degraded"),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = json!({
        "status": state,
        "store": if reachable { "reachable" } else { "unreachable" },
        "onStoreError": if serves_without_store { "allow" } else { "refuse" },
    });
    (status, body)
}

/// Installs the Prometheus recorder (unless `addr` is `off`), with
/// histogram buckets for the `*_seconds` metrics and its upkeep every five
/// seconds; returns where to serve it.
async fn install_metrics(addr: &str) -> Result<Option<(SocketAddr, PrometheusHandle)>, String> {
    if addr == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            &[
                0.000_001, 0.000_005, 0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01,
                0.05, 0.1, 0.5, 1.0,
            ],
        )
        .map_err(|e| format!("metrics buckets: {e}"))?
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(Some((addr, handle)))
}

/// Logs to stderr, as `tracing-subscriber`'s `fmt` writes them, filtered by
/// `RUST_LOG` (default `info`; invalid directives are skipped), request spans
/// included. Stdout keeps
/// the banner, whose first line is `listening on http://ADDR`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // One line when each `portcullis.request` span ends, with every
        // field recorded on it (key id, principal, outcome, status).
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    let result = match &args.command {
        Some(Command::MintToken {
            username,
            email,
            ttl,
            groups,
        }) => {
            let config = match &args.config {
                Some(path) => Config::from_file(path).map_err(|e| e.to_string()),
                None => Config::from_toml(DEFAULT_CONFIG[0].1).map_err(|e| e.to_string()),
            };
            config
                .and_then(|c| {
                    let email = email
                        .clone()
                        .unwrap_or_else(|| format!("{username}@example.com"));
                    mint_token(&c, username, &email, (*ttl).min(86_400), groups)
                })
                .map(|token| println!("{token}"))
        }
        None => serve(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("airline-loyalty: {message}");
            std::process::ExitCode::from(2)
        }
    }
}
