//! The usage-plan console at `/console/`, in a real browser: Debian's
//! Chromium, driven through chromedriver (WebDriver) by `thirtyfour`.
//!
//! The seed's console steps, by clicking: sign in with IAM access keys (the
//! page signs with SigV4 through WebCrypto), create a usage plan, create an
//! API key in it (its value shown once), call the loyalty API with that key,
//! watch the usage chart and table change, export them, grant an extension,
//! disable the key. Each page is saved as a PNG under
//! `$CARGO_TARGET_TMPDIR/console-screenshots/`. Keyboard access and labels
//! are checked on every page.
//!
//! Needs `CHROMEDRIVER` (and `CHROMIUM`), from
//! `scripts/services.d/40-chromium.sh`; without it the test prints one line
//! and skips, except under CI, where it fails. The whole run is bounded by a
//! two-minute timeout.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use support::{ADMIN, CLIENT, Http, required_env, today, try_loyalty};
use thirtyfour::prelude::*;

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free loopback port and waits (up to 10 s) until
/// it accepts connections.
fn start_chromedriver(path: &str) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(path)
        .args([
            format!("--port={port}"),
            "--allowed-ips=127.0.0.1".to_owned(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

/// The screenshots' folder, inside the target dir.
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    dir
}

/// Runs `script` (a function body returning a value) until it returns
/// something truthy, for at most 10 s; returns that value.
async fn wait_for(driver: &WebDriver, script: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = eval(driver, script).await;
        let truthy = match &value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        if Instant::now() > deadline {
            let error = driver
                .execute(
                    "return document.getElementById('error').textContent",
                    Vec::<Value>::new(),
                )
                .await
                .map(|r| r.json().clone())
                .unwrap_or_default();
            panic!("timed out waiting for {what}; the page's error line: {error}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `script` (a function body) with `args` and returns its value.
async fn eval_with(driver: &WebDriver, script: &str, args: Vec<Value>) -> Value {
    driver
        .execute(script, args)
        .await
        .expect("the script runs")
        .json()
        .clone()
}

async fn eval(driver: &WebDriver, script: &str) -> Value {
    eval_with(driver, script, Vec::new()).await
}

async fn type_into(driver: &WebDriver, id: &str, text: &str) {
    let input = driver.find(By::Id(id)).await.expect("the input");
    input.clear().await.expect("cleared");
    input.send_keys(text).await.expect("typed");
}

async fn click_on(driver: &WebDriver, control: By) {
    driver
        .find(control)
        .await
        .expect("the control")
        .click()
        .await
        .expect("clicked");
}

async fn click(driver: &WebDriver, id: &str) {
    click_on(driver, By::Id(id)).await;
}

async fn select(driver: &WebDriver, id: &str, value: &str) {
    driver
        .find(By::Css(format!("#{id} option[value='{value}']")))
        .await
        .unwrap_or_else(|_| panic!("#{id} has no option {value}"))
        .click()
        .await
        .expect("selected");
}

/// Follows the navigation link to `page` and waits until the page shows its
/// fresh data (its section visible and no longer `aria-busy`).
async fn open_page(driver: &WebDriver, page: &str) {
    click(driver, &format!("nav-{page}")).await;
    wait_for(
        driver,
        &format!(
            "const section = document.getElementById('page-{page}');
             return !section.hidden && section.getAttribute('aria-busy') !== 'true'"
        ),
        &format!("the {page} page"),
    )
    .await;
}

async fn screenshot(driver: &WebDriver, name: &str) {
    let path = screenshot_dir().join(name);
    driver.screenshot(&path).await.expect("a screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Every visible input and select of the page has a label (a `<label for>`
/// or an `aria-label`), and every button a name.
async fn assert_labelled(driver: &WebDriver, page: &str) {
    let unlabelled = eval(
        driver,
        "return Array.from(document.querySelectorAll('input, select'))
            .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
            .filter(e => !(e.labels && e.labels.length && e.labels[0].textContent.trim()) && !e.getAttribute('aria-label'))
            .map(e => e.id || e.outerHTML.slice(0, 60))
            .concat(Array.from(document.querySelectorAll('button'))
              .filter(b => b.offsetParent !== null && !b.textContent.trim() && !b.getAttribute('aria-label'))
              .map(b => b.id || 'a button'))",
    )
    .await;
    assert_eq!(unlabelled, json!([]), "unlabelled controls on {page}");
}

/// Presses Tab from the top of the page (the skip link) until each of `ids`
/// has had focus, in this order (at most 40 presses).
async fn assert_tab_order(driver: &WebDriver, ids: &[&str]) {
    eval(
        driver,
        "document.querySelector('a.skip').focus(); return true",
    )
    .await;
    let mut reached = Vec::new();
    let mut next = 0;
    for _ in 0..40 {
        driver
            .action_chain()
            .send_keys(Key::Tab)
            .perform()
            .await
            .expect("Tab");
        let focused = eval(driver, "return document.activeElement.id").await;
        let focused = focused.as_str().unwrap_or_default().to_owned();
        reached.push(focused.clone());
        if focused == ids[next] {
            next += 1;
            if next == ids.len() {
                eval(
                    driver,
                    "document.activeElement.blur(); window.scrollTo(0, 0); return true",
                )
                .await;
                return;
            }
        }
    }
    eval(
        driver,
        "document.activeElement.blur(); window.scrollTo(0, 0); return true",
    )
    .await;
    panic!(
        "Tab never reached {:?} in order; it went through {reached:?}",
        &ids[next..]
    );
}

/// The usage table's `(used, remaining)` for `day`.
async fn usage_row(driver: &WebDriver, day: &str) -> Option<(u64, u64)> {
    let row = eval(
        driver,
        &format!(
            "const r = document.querySelector('#usage-table tr[data-day=\"{day}\"]');
             return r ? [Number(r.querySelector('.used').textContent), Number(r.querySelector('.remaining').textContent)] : null"
        ),
    )
    .await;
    Some((row[0].as_u64()?, row[1].as_u64()?))
}

/// Clicks "Show usage" and waits until the table shows `expected` for today,
/// then checks the chart's bar and quota line say the same.
async fn expect_usage(driver: &WebDriver, expected: (u64, u64), quota: u64) {
    let day = today();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        click(driver, "usage-show").await;
        wait_for(
            driver,
            "return !document.getElementById('usage-show').disabled",
            "the usage to load",
        )
        .await;
        let row = usage_row(driver, &day).await;
        if row == Some(expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the usage table shows {row:?} for {day}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bar = eval(
        driver,
        &format!(
            "const g = document.querySelector('#usage-svg g.day[data-day=\"{day}\"]');
             const line = document.getElementById('quota-line');
             return g && line ? {{used: Number(g.dataset.used), remaining: Number(g.dataset.remaining),
               usedHeight: Number(g.querySelector('rect.used').getAttribute('height')),
               quota: Number(line.dataset.quota), title: g.querySelector('title').textContent}} : null"
        ),
    )
    .await;
    assert_eq!(bar["used"], json!(expected.0), "chart: {bar}");
    assert_eq!(bar["remaining"], json!(expected.1), "chart: {bar}");
    assert_eq!(bar["quota"], json!(quota), "chart: {bar}");
    assert_eq!(
        bar["usedHeight"].as_f64().is_some_and(|h| h > 0.0),
        expected.0 > 0,
        "the used bar's height follows the count: {bar}"
    );
    assert_eq!(
        bar["title"],
        json!(format!(
            "{day}: {} used, {} remaining",
            expected.0, expected.1
        ))
    );
}

/// Clicks an export button and returns the text of the file it offers.
async fn export(driver: &WebDriver, button: &str) -> (String, String) {
    eval(
        driver,
        "window.__exported = null;
         const create = URL.createObjectURL.bind(URL);
         URL.createObjectURL = (blob) => { window.__exported = blob; return create(blob); };
         HTMLAnchorElement.prototype.click = function () { window.__download = this.download; };
         return true",
    )
    .await;
    click(driver, button).await;
    let text = driver
        .execute_async(
            "const done = arguments[arguments.length - 1];
             window.__exported.text().then(t => done([window.__download, t]));",
            Vec::<Value>::new(),
        )
        .await
        .expect("the export is read")
        .json()
        .clone();
    (
        text[0].as_str().unwrap_or_default().to_owned(),
        text[1].as_str().unwrap_or_default().to_owned(),
    )
}

/// The page's SigV4 signer (`assets/sigv4.js`, run in the browser through
/// WebCrypto) and the AWS SDK's (`aws-sigv4`) give the same `Authorization`
/// for a request with an encoded path, a query needing RFC 3986 escapes, a
/// body and a content type.
async fn assert_signer_agrees_with_aws_sigv4(driver: &WebDriver) {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
    };
    use aws_sigv4::sign::v4;

    const PATH: &str = "/admin/usageplans/a%20b/keys/k%C3%A9y";
    const BODY: &str = r#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"7"}]}"#;
    let browser = driver
        .execute_async(
            "const [path, body, id, secret, done] = arguments;
             import('./assets/sigv4.js').then(async (m) => {
               const signingKey = await m.signingKeyFor(secret, '20261207', 'us-east-1', 'apigateway');
               const headers = await m.sign({
                 method: 'PATCH', host: 'console.example:8443', path, body,
                 query: m.canonicalQuery({ b: 'x y', a: \"it's(*)!\", limit: 25 }),
                 contentType: 'application/json',
                 credentials: { accessKeyId: id, region: 'us-east-1', service: 'apigateway', date: '20261207', signingKey },
                 now: new Date('2026-12-07T01:02:03Z'),
               });
               done(headers.authorization);
             }, (e) => done('error: ' + e));",
            vec![json!(PATH), json!(BODY), json!(ADMIN.0), json!(ADMIN.1)],
        )
        .await
        .expect("the page's signer runs")
        .json()
        .clone();

    let identity = Credentials::new(ADMIN.0, ADMIN.1, None, None, "console-test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("apigateway")
        .time(std::time::UNIX_EPOCH + Duration::from_secs(1_796_605_323))
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let uri = format!("https://console.example:8443{PATH}?b=x%20y&a=it%27s%28%2A%29%21&limit=25");
    let headers = [
        ("host", "console.example:8443"),
        ("content-type", "application/json"),
    ];
    let signable = SignableRequest::new(
        "PATCH",
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(BODY.as_bytes()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    let sdk = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_owned())
        .expect("an Authorization header");
    assert!(
        sdk.contains("Credential=AKIALOYALTYADMIN0001/20261207/us-east-1/apigateway/aws4_request")
    );
    assert_eq!(
        browser,
        json!(sdk),
        "the browser's SigV4 differs from aws-sigv4's"
    );
}

async fn loyalty_status(http: &Http, key: &str) -> StatusCode {
    try_loyalty(http, key)
        .await
        .expect("the demo answers")
        .status
}

/// Without a browser: the demo serves `/console/` with the console's
/// Content-Security-Policy, behind the WAF like every route, and needs no
/// credential to load (every call the page makes is signed).
#[tokio::test]
async fn the_demo_serves_the_console_with_its_policy() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let server = support::start();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let get = |path: &str, forwarded_for: Option<&str>| {
        let mut request = http::Request::get(format!("{}{path}", server.base));
        if let Some(ip) = forwarded_for {
            request = request.header("x-forwarded-for", ip);
        }
        client.request(request.body(Empty::new()).expect("a request"))
    };
    let page = get("/console/", None).await.expect("an answer");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["content-security-policy"],
        portcullis_console::CONTENT_SECURITY_POLICY_VALUE
    );
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let body = page.into_body().collect().await.expect("a body").to_bytes();
    let body = String::from_utf8_lossy(&body);
    for setting in [
        r#"content="/admin""#,
        r#"content="us-east-1""#,
        r#"content="a1b2c3d4e5:prod""#,
    ] {
        assert!(body.contains(setting), "the page lacks {setting}");
    }
    let script = get("/console/assets/app.js", None)
        .await
        .expect("an answer");
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let redirect = get("/console", None).await.expect("an answer");
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/console/");
    assert_eq!(
        get("/console/nope.js", None)
            .await
            .expect("an answer")
            .status(),
        StatusCode::NOT_FOUND
    );
    // The WAF is in front: the IP-set client is refused the console too.
    assert_eq!(
        get("/console/", Some("192.0.2.10"))
            .await
            .expect("an answer")
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_console_steps_by_clicking() {
    let Some(chromedriver) = required_env(
        "CHROMEDRIVER",
        "`source scripts/services.d/40-chromium.sh` (Debian's chromium and chromium-driver)",
    ) else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(120), run(&chromedriver))
        .await
        .expect("the browser test finished within two minutes");
}

async fn run(chromedriver: &str) {
    let server = support::start();
    let http = Http::new(&server.base);
    let chromedriver = start_chromedriver(chromedriver);
    let profile = tempfile::tempdir().expect("a browser profile folder");
    let mut caps = DesiredCapabilities::chrome();
    if let Ok(binary) = std::env::var("CHROMIUM")
        && !binary.is_empty()
    {
        caps.set_binary(&binary).expect("binary");
    }
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--no-pings",
        // Nothing but loopback: `console.test` is 127.0.0.1 (a name that is
        // not a secure context, unlike `localhost`), every other host name
        // fails to resolve, so the browser cannot reach outside the machine.
        "--host-resolver-rules=MAP console.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        &format!("--user-data-dir={}", profile.path().display()),
    ] {
        caps.add_arg(arg).expect("an argument");
    }
    let driver = WebDriver::new(&chromedriver.url, caps)
        .await
        .expect("a browser session");
    let outcome = steps(&driver, &server.base, &http).await;
    let _ = driver.quit().await;
    drop(chromedriver);
    let key_id = outcome;
    // Nothing the test sent (the new key's value, the client's signatures)
    // reached the demo's logs; the key's id did.
    server.assert_output_has_no_secret(&http, &[&key_id, "AKIALOYALTYADMIN0001"]);
}

/// The steps; returns the new key's id.
async fn steps(driver: &WebDriver, base: &str, http: &Http) -> String {
    // Any Content-Security-Policy violation is recorded from the first page.
    driver
        .goto(format!("{base}/console/"))
        .await
        .expect("the console loads");
    wait_for(
        driver,
        "return document.documentElement.dataset.ready === 'true'",
        "the console's script",
    )
    .await;
    eval(
        driver,
        "window.__violations = [];
         document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
         window.__errors = [];
         window.addEventListener('error', e => window.__errors.push(String(e.message)));
         window.addEventListener('unhandledrejection', e => window.__errors.push(String(e.reason)));
         return true",
    )
    .await;

    assert_signer_agrees_with_aws_sigv4(driver).await;

    // 1. Sign in. The labels and the keyboard first: Tab reaches every
    // field and the button, in order.
    assert_labelled(driver, "sign-in").await;
    assert_tab_order(
        driver,
        &[
            "access-key-id",
            "secret-access-key",
            "session-token",
            "region",
            "sign-in",
        ],
    )
    .await;
    screenshot(driver, "1-sign-in.png").await;
    // The partner's IAM user may not manage the gateway: the management API
    // refuses it, and the console shows why.
    type_into(driver, "access-key-id", CLIENT.access_key_id).await;
    type_into(driver, "secret-access-key", CLIENT.secret_access_key).await;
    click(driver, "sign-in").await;
    let refusal = wait_for(
        driver,
        "return document.getElementById('error').textContent",
        "the refusal",
    )
    .await;
    assert!(
        refusal
            .as_str()
            .is_some_and(|m| m.contains("AccessDeniedException") && m.contains("not authorized")),
        "{refusal}"
    );
    assert_eq!(
        eval(driver, "return document.getElementById('nav').hidden").await,
        json!(true)
    );
    assert_eq!(
        eval(
            driver,
            "return document.getElementById('secret-access-key').value"
        )
        .await,
        json!(""),
        "the secret stays in no field"
    );
    // Temporary credentials: an identity-pool member of the admin group
    // signs in with its session token, which the page signs and sends; the
    // management API authenticates the role's session, and IAM refuses it,
    // as the demo's roles are allowed execute-api:Invoke only.
    let token = support::mint_token("carol", &["loyalty-admins"]);
    let exchange = http
        .send(http.request(
            http::Method::POST,
            "/credentials",
            &json!({"Logins": {"cognito-idp.us-east-1.amazonaws.com/us-east-1_Example": token}})
                .to_string(),
        ))
        .await;
    let temporary = &exchange.json["Credentials"];
    type_into(
        driver,
        "access-key-id",
        temporary["AccessKeyId"].as_str().expect("an id"),
    )
    .await;
    type_into(
        driver,
        "secret-access-key",
        temporary["SecretKey"].as_str().expect("a secret"),
    )
    .await;
    type_into(
        driver,
        "session-token",
        temporary["SessionToken"].as_str().expect("a token"),
    )
    .await;
    click(driver, "sign-in").await;
    wait_for(
        driver,
        "return !document.getElementById('sign-in').disabled",
        "the temporary credentials' sign-in",
    )
    .await;
    let session = eval(
        driver,
        "return [document.getElementById('error').textContent, document.getElementById('nav').hidden]",
    )
    .await;
    let message = session[0].as_str().unwrap_or_default();
    assert!(
        message.contains("assumed-role/LoyaltyAdmin/us-east-1:")
            && message.contains("not authorized to perform: apigateway:GET")
            && message.contains("AccessDeniedException"),
        "the role's session is authenticated, then refused by IAM (the demo's roles have no apigateway:* policy): {session}"
    );
    assert_eq!(session[1], json!(true), "not signed in");
    // The admin signs in with the keyboard only: type, then Enter.
    type_into(driver, "access-key-id", ADMIN.0).await;
    type_into(driver, "secret-access-key", ADMIN.1).await;
    driver
        .find(By::Id("secret-access-key"))
        .await
        .expect("the field")
        .send_keys(Key::Enter)
        .await
        .expect("Enter");
    wait_for(
        driver,
        "return location.hash === '#plans' && document.querySelector('#plans-table tr[data-plan-id=\"loyalty-basic\"]')",
        "the plans page",
    )
    .await;
    let stored = eval(
        driver,
        "return [localStorage.length, sessionStorage.length, document.cookie]",
    )
    .await;
    assert_eq!(
        stored,
        json!([0, 0, ""]),
        "nothing is stored in the browser"
    );

    // 2. Usage plans: the demo's plan, then a new one.
    assert_labelled(driver, "usage plans").await;
    let demo_plan = eval(
        driver,
        "return document.querySelector('#plans-table tr[data-plan-id=\"loyalty-basic\"]').textContent",
    )
    .await;
    let demo_plan = demo_plan.as_str().unwrap_or_default();
    for shown in [
        "Loyalty basic",
        "1 requests/s, burst 2",
        "10 per day",
        "Airline partner demo key",
    ] {
        assert!(demo_plan.contains(shown), "{shown:?} not in {demo_plan:?}");
    }
    assert_tab_order(
        driver,
        &[
            "nav-plans",
            "nav-keys",
            "nav-usage",
            "sign-out",
            "plan-name",
        ],
    )
    .await;
    type_into(driver, "plan-name", "Partners").await;
    type_into(
        driver,
        "plan-description",
        "Partners of the loyalty programme",
    )
    .await;
    type_into(driver, "plan-rate", "100").await;
    type_into(driver, "plan-burst", "10").await;
    type_into(driver, "plan-quota", "5").await;
    select(driver, "plan-period", "DAY").await;
    assert_eq!(
        driver
            .find(By::Id("plan-stage"))
            .await
            .expect("stage")
            .value()
            .await
            .expect("value"),
        Some("a1b2c3d4e5:prod".to_owned()),
        "the form proposes the demo's stage"
    );
    click(driver, "plan-create").await;
    let plan_id = wait_for(
        driver,
        "const rows = Array.from(document.querySelectorAll('#plans-table tbody tr'));
         const row = rows.find(r => r.querySelector('th').textContent === 'Partners');
         return row ? row.dataset.planId : null",
        "the new plan in the table",
    )
    .await;
    let plan_id = plan_id.as_str().expect("a plan id").to_owned();
    let row = eval(
        driver,
        &format!("return document.querySelector('#plans-table tr[data-plan-id=\"{plan_id}\"]').textContent"),
    )
    .await;
    assert!(
        row.as_str()
            .is_some_and(|r| r.contains("100 requests/s, burst 10") && r.contains("5 per day")),
        "{row}"
    );
    screenshot(driver, "2-usage-plans.png").await;

    // 3. API keys: create one in the new plan; its value is shown once.
    open_page(driver, "keys").await;
    assert_labelled(driver, "API keys").await;
    assert_tab_order(
        driver,
        &[
            "nav-keys",
            "key-name",
            "key-description",
            "key-customer",
            "key-enabled",
            "key-plan",
            "key-create",
        ],
    )
    .await;
    type_into(driver, "key-name", "partner-7").await;
    type_into(driver, "key-customer", "partner-7-ltd").await;
    select(driver, "key-plan", &plan_id).await;
    click(driver, "key-create").await;
    let value = wait_for(
        driver,
        "return !document.getElementById('new-key').hidden && document.getElementById('new-key-value').value",
        "the new key's value",
    )
    .await;
    let value = value.as_str().expect("a key value").to_owned();
    assert!(value.len() >= 20, "a generated value: {value}");
    let key_id = wait_for(
        driver,
        "const rows = Array.from(document.querySelectorAll('#keys-table tbody tr'));
         const row = rows.find(r => r.querySelector('th').textContent === 'partner-7');
         return row && row.textContent.includes('Partners') ? row.dataset.keyId : null",
        "the new key in the table, in its plan",
    )
    .await;
    let key_id = key_id.as_str().expect("a key id").to_owned();
    assert_labelled(driver, "API keys with the new key").await;
    screenshot(driver, "3-api-key-created.png").await;
    // The value is shown once: "Done" hides it, and the list never holds it.
    click(driver, "new-key-done").await;
    assert_eq!(
        eval(driver, "return [document.getElementById('new-key').hidden, document.getElementById('new-key-value').value]").await,
        json!([true, ""])
    );
    let shown = eval_with(
        driver,
        "return document.body.textContent.includes(arguments[0])",
        vec![json!(value)],
    )
    .await;
    assert_eq!(shown, json!(false), "the value is not on the page any more");

    // 4. Usage before any call: nothing used, the quota remaining.
    open_page(driver, "usage").await;
    select(driver, "usage-plan", &plan_id).await;
    select(driver, "usage-key", &key_id).await;
    assert_labelled(driver, "usage").await;
    expect_usage(driver, (0, 5), 5).await;

    // The API with the new key: three calls; the chart and table follow.
    for _ in 0..3 {
        assert_eq!(loyalty_status(http, &value).await, StatusCode::OK);
    }
    expect_usage(driver, (3, 2), 5).await;
    assert_labelled(driver, "usage with its chart").await;
    assert_tab_order(
        driver,
        &[
            "usage-plan",
            "usage-key",
            "usage-from",
            "usage-to",
            "usage-show",
            "export-csv",
            "export-json",
            "extension-remaining",
            "extension-grant",
        ],
    )
    .await;
    screenshot(driver, "4-usage.png").await;
    let (name, csv) = export(driver, "export-csv").await;
    assert!(name.ends_with(".csv"), "{name}");
    let day = today();
    assert!(
        csv.starts_with("usagePlanId,keyId,date,used,remaining\r\n")
            && csv.contains(&format!("{plan_id},{key_id},{day},3,2\r\n")),
        "{csv}"
    );
    let (name, exported) = export(driver, "export-json").await;
    assert!(name.ends_with(".json"), "{name}");
    let exported: Value = serde_json::from_str(&exported).expect("JSON");
    assert_eq!(exported["usagePlanId"], json!(plan_id));
    assert_eq!(
        exported["values"][&key_id]
            .as_array()
            .and_then(|d| d.last()),
        Some(&json!([3, 2]))
    );

    // Two more, then the quota: 429 Limit Exceeded.
    for _ in 0..2 {
        assert_eq!(loyalty_status(http, &value).await, StatusCode::OK);
    }
    let refused = try_loyalty(http, &value).await.expect("the demo answers");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json["message"], "Limit Exceeded");
    expect_usage(driver, (5, 0), 5).await;

    // 5. A temporary extension: four more requests today.
    type_into(driver, "extension-remaining", "4").await;
    click(driver, "extension-grant").await;
    wait_for(
        driver,
        "return document.getElementById('status').textContent.startsWith('Granted')",
        "the extension",
    )
    .await;
    expect_usage(driver, (5, 4), 5).await;
    screenshot(driver, "5-extension.png").await;
    assert_eq!(loyalty_status(http, &value).await, StatusCode::OK);
    expect_usage(driver, (6, 3), 5).await;

    // 6. Disable the key: the API refuses it at once.
    open_page(driver, "keys").await;
    let disable =
        format!("#keys-table tr[data-key-id=\"{key_id}\"] button[data-action=\"disable\"]");
    wait_for(
        driver,
        &format!("return document.querySelector('{disable}')"),
        "the key's Disable button",
    )
    .await;
    click_on(driver, By::Css(disable)).await;
    wait_for(
        driver,
        &format!("return document.querySelector('#keys-table tr[data-key-id=\"{key_id}\"]').dataset.enabled === 'false'"),
        "the key disabled",
    )
    .await;
    screenshot(driver, "6-api-key-disabled.png").await;
    let refused = try_loyalty(http, &value).await.expect("the demo answers");
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json["message"], "Forbidden");

    // No Content-Security-Policy violation on any page.
    assert_eq!(eval(driver, "return window.__violations").await, json!([]));
    // No script error, thrown or unhandled, on any page.
    assert_eq!(eval(driver, "return window.__errors").await, json!([]));
    // Signing out forgets the credentials: every page needs a new sign-in.
    click(driver, "sign-out").await;
    wait_for(
        driver,
        "location.hash = '#keys';
         return !document.getElementById('page-sign-in').hidden && document.getElementById('page-keys').hidden
           && document.getElementById('nav').hidden",
        "the sign-in page after signing out",
    )
    .await;
    // So does a reload: the credentials were in the page's memory only.
    type_into(driver, "access-key-id", ADMIN.0).await;
    type_into(driver, "secret-access-key", ADMIN.1).await;
    click(driver, "sign-in").await;
    wait_for(
        driver,
        "return !document.getElementById('nav').hidden",
        "signed in again",
    )
    .await;
    driver.refresh().await.expect("reloaded");
    wait_for(
        driver,
        "return document.documentElement.dataset.ready === 'true'
           && !document.getElementById('page-sign-in').hidden && document.getElementById('nav').hidden",
        "the sign-in page after a reload",
    )
    .await;

    // Over plain HTTP on a name that is not loopback the browser offers no
    // WebCrypto: the page says so and offers no sign-in.
    let insecure = base.replace("127.0.0.1", "console.test");
    driver
        .goto(format!("{insecure}/console/"))
        .await
        .expect("the console loads by name");
    let refused = wait_for(
        driver,
        "return document.getElementById('error').textContent",
        "the insecure-context message",
    )
    .await;
    assert!(
        refused
            .as_str()
            .is_some_and(|m| m.contains("not a secure context")),
        "{refused}"
    );
    assert_eq!(
        eval(
            driver,
            "return [window.isSecureContext, document.getElementById('sign-in').disabled]"
        )
        .await,
        json!([false, true])
    );
    key_id
}
