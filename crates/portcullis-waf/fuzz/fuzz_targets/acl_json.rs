//! Web ACL JSON loading and compiling: any input is an error or an ACL, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_waf::AclSources;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sources) = AclSources::from_json(text) {
        let sources = sources
            .with_ip_set_json(r#"{"IPSet":{"ARN":"arn:set","Addresses":["10.0.0.0/8"]}}"#)
            .and_then(|s| s.with_regex_pattern_set_json(r#"{"RegexPatternSet":{"ARN":"arn:re","RegularExpressionList":[{"RegexString":"a+b"}]}}"#));
        if let Ok(sources) = sources {
            let _ = sources.compile();
        }
    }
});
