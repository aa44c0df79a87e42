//! A configuration written before the demo ran from its OpenAPI export (no
//! `[api]` section, no `openapi.json` beside it) keeps working: the demo
//! routes with its own export, so `--config` files users kept still serve.

mod support;

use std::path::Path;

use http::{Method, StatusCode};
use support::{API_KEY, CLIENT, Http, copy_dir, start_with};

#[tokio::test(flavor = "current_thread")]
async fn a_configuration_without_an_api_section_still_serves() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let target =
        std::env::temp_dir().join(format!("airline-loyalty-old-config-{}", std::process::id()));
    copy_dir(&source, &target);
    std::fs::remove_file(target.join("openapi.json")).expect("the copy has the export");
    let file = target.join("gateway.toml");
    let text = std::fs::read_to_string(&file).expect("the configuration reads");
    let old: String = text
        .lines()
        .filter(|line| line.trim() != "[api]" && !line.trim_start().starts_with("openapi ="))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(old, text, "the [api] section was removed");
    std::fs::write(&file, old).expect("the configuration writes");

    let server = start_with(&["--config", file.to_str().expect("a UTF-8 path")]);
    let http = Http::new(&server.base);
    let mut request = http.request(Method::GET, "/loyalty/C-1001/get", "");
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("a header value"));
    let answer = http.send(http.sign(request, "", &CLIENT)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // Routes the export defines behave as with it: an undefined one is API
    // Gateway's 403 Missing Authentication Token.
    let answer = http.send(http.request(Method::GET, "/nowhere", "")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json["message"], "Missing Authentication Token");
    std::fs::remove_dir_all(&target).ok();
}
