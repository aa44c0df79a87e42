//! Policy JSON: loading never panics, and a loaded policy evaluates without
//! panicking against a request context with every well-known key set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_iam::{PolicyDocument, RequestContext, evaluate};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = PolicyDocument::from_json(text) else {
        return;
    };
    let policy = Arc::new(policy);
    let ctx = RequestContext::new(
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets/7",
    )
    .with_source_ip(Some([203, 0, 113, 9].into()))
    .with_current_time(time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000))
    .with_secure_transport(true)
    .with_user_agent("fuzz/1.0")
    .with_values("custom:groups", ["a", "b"]);
    let _ = evaluate(std::slice::from_ref(&policy), Some(&policy), &ctx);
    let _ = policy.evaluate(&RequestContext::anonymous("*"));
    // Serialising what was loaded and loading it again gives the same policy.
    let text = serde_json::to_string(&*policy).expect("a JSON value serialises");
    let again = PolicyDocument::from_json(&text).expect("a loaded policy reloads");
    assert_eq!(&again, &*policy);
});
