//! Arbitrary requests against a fixed ACL that uses every statement type and
//! field. Input: `METHOD\nURI\nname: value\n...\n\nbody`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_waf::{AclSources, WafLayer};

const ACL: &str = include_str!("../../tests/fixtures/fuzz_acl.json");

fn layer() -> &'static WafLayer {
    static LAYER: OnceLock<WafLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        let compiled = AclSources::from_json(ACL)
            .and_then(|s| s.with_ip_set_json(r#"{"IPSet":{"ARN":"arn:set","Addresses":["10.0.0.0/8","2001:db8::/32"]}}"#))
            .and_then(|s| s.with_regex_pattern_set_json(r#"{"RegexPatternSet":{"ARN":"arn:re","RegularExpressionList":[{"RegexString":"(?i)select.+from"},{"RegexString":"<script"}]}}"#))
            .and_then(|s| s.compile())
            .expect("the fuzz ACL compiles");
        WafLayer::new(compiled).geo_header(http::HeaderName::from_static("cloudfront-viewer-country"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let method = lines.next().unwrap_or(b"GET");
    let uri = lines.next().unwrap_or(b"/");
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method).unwrap_or(http::Method::GET))
        .uri(http::Uri::try_from(uri).unwrap_or_else(|_| http::Uri::from_static("/")));
    for line in lines {
        if let Some(i) = line.iter().position(|&b| b == b':') {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(&line[..i]),
                http::HeaderValue::from_bytes(line[i + 1..].trim_ascii()),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    if let Ok(request) = builder.body(bytes::Bytes::copy_from_slice(body)) {
        let _ = layer().evaluate(&request);
    }
});
