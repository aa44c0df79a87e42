//! Header extraction and lookup: arbitrary `x-api-key` header values (and
//! an arbitrary authorizer-chosen key) against a store with known keys.
//!
//! Properties: no panic; a request is accepted exactly when it presents one
//! of the issued, enabled values once; a refusal is the same fixed body
//! whatever the input.
#![no_main]

use std::sync::{Arc, OnceLock};

use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use portcullis_api_key::{
    ApiKeyLayer, ApiKeyRecord, ApiKeyRefusal, ApiKeySource, ApiKeyValue, InMemoryApiKeyStore,
};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::UsageIdentifierKey;
use portcullis_core::refusal::Refusal as _;

const ENABLED: &str = "FuzzEnabledKey0123456789";
const DISABLED: &str = "FuzzDisabledKey012345678";

fn layer() -> &'static ApiKeyLayer {
    static LAYER: OnceLock<ApiKeyLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        let now = SystemClock.now();
        let record = |id: &str, value: &str, enabled: bool| {
            let value = ApiKeyValue::new(value).expect("a valid value");
            ApiKeyRecord::new(id, value.digest(), now).with_enabled(enabled)
        };
        let store = InMemoryApiKeyStore::from_records([
            record("enabled", ENABLED, true),
            record("disabled", DISABLED, false),
        ])
        .expect("distinct values");
        ApiKeyLayer::with_store(Arc::new(store), "api", "prod")
    })
}

fuzz_target!(|data: &[u8]| {
    let layer = layer();
    // The first byte picks how many header copies are sent and the source.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let copies = usize::from(mode % 3);
    let mut builder = Request::builder();
    let header_ok = HeaderValue::from_bytes(rest).is_ok();
    for _ in 0..copies {
        if let Ok(value) = HeaderValue::from_bytes(rest) {
            builder = builder.header("x-api-key", value);
        }
    }
    let mut request = builder.body(()).expect("a request with valid headers");
    let expected_accept = rest == ENABLED.as_bytes() && copies == 1 && header_ok;

    let outcome = layer
        .authenticate_now(&request)
        .expect("the in-memory store answers at once");
    match &outcome {
        Ok(ctx) => {
            assert!(
                expected_accept,
                "accepted an input that is not the issued key"
            );
            assert_eq!(ctx.key_id(), "enabled");
        }
        Err(refusal) => {
            assert!(!expected_accept, "refused the issued key: {refusal:?}");
            if rest == DISABLED.as_bytes() && copies == 1 {
                assert_eq!(*refusal, ApiKeyRefusal::Disabled);
            }
            // The refusal is the same fixed body whatever was presented: it
            // cannot echo the input.
            let response = refusal.gateway_response().render(&request);
            assert_eq!(response.status(), 403);
            assert_eq!(response.body().as_ref(), br#"{"message":"Forbidden"}"#);
        }
    }

    // The same bytes as an authorizer's choice.
    if let Ok(text) = std::str::from_utf8(rest) {
        request
            .request_context_mut()
            .set_usage_identifier_key(UsageIdentifierKey::new(text));
        let authorizer = layer.clone().source(ApiKeySource::Authorizer);
        let outcome = authorizer
            .authenticate_now(&request)
            .expect("the in-memory store answers at once");
        assert_eq!(outcome.is_ok(), rest == ENABLED.as_bytes());
    }
});
