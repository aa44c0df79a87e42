//! The console service at its public surface: what it serves, with which
//! headers, and what it refuses.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_console::{CONTENT_SECURITY_POLICY_VALUE, Console};
use tower::ServiceExt;

async fn get(console: &Console, method: Method, path: &str) -> (Response<()>, String) {
    let response: Response<Full<Bytes>> = console
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("a request"),
        )
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a full body").to_bytes();
    (
        Response::from_parts(parts, ()),
        String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    )
}

fn header<'a>(response: &'a Response<()>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII"))
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Every answer, found or not, carries the security headers.
fn assert_secured(response: &Response<()>) {
    assert_eq!(
        header(response, "content-security-policy"),
        CONTENT_SECURITY_POLICY_VALUE
    );
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "x-frame-options"), "DENY");
    assert_eq!(header(response, "referrer-policy"), "no-referrer");
    assert_eq!(
        header(response, "cross-origin-opener-policy"),
        "same-origin"
    );
}

#[tokio::test]
async fn the_page_and_assets_are_served_with_their_content_types() {
    let console = Console::new();
    for (path, content_type, marker) in [
        ("/console/", "text/html; charset=utf-8", "<!doctype html>"),
        (
            "/console/index.html",
            "text/html; charset=utf-8",
            "<!doctype html>",
        ),
        (
            "/console/assets/app.js",
            "text/javascript; charset=utf-8",
            "import { sign",
        ),
        (
            "/console/assets/sigv4.js",
            "text/javascript; charset=utf-8",
            "AWS4-HMAC-SHA256",
        ),
        (
            "/console/assets/console.css",
            "text/css; charset=utf-8",
            ".chart rect.used",
        ),
    ] {
        let (response, body) = get(&console, Method::GET, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert!(body.contains(marker), "{path} does not hold {marker:?}");
        assert_secured(&response);
    }
}

#[tokio::test]
async fn the_policy_allows_no_inline_script_and_no_other_origin() {
    let policy: Vec<&str> = CONTENT_SECURITY_POLICY_VALUE
        .split(';')
        .map(str::trim)
        .collect();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(policy.contains(&directive), "the policy lacks {directive}");
    }
    for loose in [
        "unsafe-inline",
        "unsafe-eval",
        "http:",
        "https:",
        "*",
        "data:",
    ] {
        assert!(
            !CONTENT_SECURITY_POLICY_VALUE.contains(loose),
            "the policy allows {loose}"
        );
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script_style_or_handler() {
    let (_, page) = get(&Console::new(), Method::GET, "/console/").await;
    let lower = page.to_ascii_lowercase();
    // Every <script> has a src and no body.
    let mut scripts = 0;
    for (at, _) in lower.match_indices("<script") {
        scripts += 1;
        let tag_end = at + lower[at..].find('>').expect("a closed tag");
        assert!(
            lower[at..tag_end].contains(" src="),
            "inline <script> at {at}"
        );
        assert!(
            lower[tag_end + 1..].starts_with("</script>"),
            "a <script> with a body at {at}"
        );
    }
    assert!(scripts >= 1, "the page loads no script");
    assert!(!lower.contains("<style"), "an inline <style>");
    assert!(!lower.contains(" style="), "an inline style attribute");
    assert!(!lower.contains("=\"javascript:"), "a javascript: URL");
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onerror=",
        " onchange=",
    ] {
        assert!(!lower.contains(handler), "an inline handler {handler}");
    }
    // Nothing from another origin.
    assert!(!lower.contains("http://") && !lower.contains("https://") && !lower.contains("//cdn"));
}

#[tokio::test]
async fn the_scripts_never_write_html_from_strings() {
    let console = Console::new();
    for path in ["/console/assets/app.js", "/console/assets/sigv4.js"] {
        let (_, script) = get(&console, Method::GET, path).await;
        for sink in [
            ".innerHTML",
            ".outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "localStorage",
            "sessionStorage",
            "document.cookie",
        ] {
            assert!(!script.contains(sink), "{path} uses {sink}");
        }
    }
}

#[tokio::test]
async fn unknown_assets_and_paths_get_404() {
    let console = Console::new();
    for path in [
        "/console/assets/nope.js",
        "/console/assets/",
        "/console/../Cargo.toml",
        "/console/assets/app.js/",
        "/consolex/",
        "/admin/usageplans",
        "/",
    ] {
        let (response, body) = get(&console, Method::GET, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(body, "Not Found");
        assert_secured(&response);
    }
}

#[tokio::test]
async fn the_mount_path_redirects_to_its_folder() {
    let (response, _) = get(&Console::new(), Method::GET, "/console").await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&response, "location"), "/console/");
    assert_secured(&response);

    let moved = Console::new().mount_path("ops/console/");
    assert_eq!(moved.mount(), "/ops/console");
    let (response, _) = get(&moved, Method::GET, "/ops/console/assets/app.js").await;
    assert_eq!(response.status(), StatusCode::OK);
    let (response, _) = get(&moved, Method::GET, "/console/").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_get_and_head_are_answered() {
    let console = Console::new();
    let (head, body) = get(&console, Method::HEAD, "/console/").await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert!(body.is_empty());
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let (response, _) = get(&console, method.clone(), "/console/").await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(header(&response, "allow"), "GET, HEAD");
        assert_secured(&response);
    }
}

#[tokio::test]
async fn the_settings_reach_the_page_escaped() {
    let console = Console::new()
        .api_path("/management/")
        .region("eu-west-1")
        .api_stage("abc123", "prod\"<x>");
    let (_, page) = get(&console, Method::GET, "/console/").await;
    assert!(page.contains(r#"<meta name="portcullis-api-path" content="/management">"#));
    assert!(page.contains(r#"<meta name="portcullis-region" content="eu-west-1">"#));
    assert!(page.contains("abc123:prod&quot;&lt;x&gt;"));
    assert!(!page.contains("prod\"<x>"));
    assert!(!page.contains("{{"), "a setting was left unfilled");
}

#[tokio::test]
async fn every_form_control_has_a_label() {
    let (_, page) = get(&Console::new(), Method::GET, "/console/").await;
    let ids: Vec<&str> = ["<input", "<select"]
        .iter()
        .flat_map(|tag| page.match_indices(tag).map(|(at, _)| at))
        .map(|at| {
            let tag = &page[at..at + page[at..].find('>').expect("a closed tag")];
            let id_at = tag.find(" id=\"").unwrap_or_else(|| panic!("no id: {tag}")) + 5;
            &tag[id_at..id_at + tag[id_at..].find('"').expect("a closed id")]
        })
        .collect();
    assert!(ids.len() >= 15, "only {} controls found", ids.len());
    for id in ids {
        assert!(
            page.contains(&format!("<label for=\"{id}\"")),
            "the control {id} has no <label for>"
        );
    }
}
