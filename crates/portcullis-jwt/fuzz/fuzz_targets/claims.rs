//! Arbitrary claims, validly signed (HS256 with the configured secret), through
//! the claim checks: never a panic, and whatever passes is unexpired, from the
//! configured issuer, for the configured audience.
#![no_main]

use std::sync::{Arc, OnceLock};

use futures_util::FutureExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use libfuzzer_sys::fuzz_target;
use portcullis_core::clock::ManualClock;
use portcullis_jwt::{HmacSecret, Issuer, JwtLayer, Match, TokenCacheConfig};

const SECRET: &str = "fuzzing secret of at least 32 bytes!";
const NOW: u64 = 1_800_000_000;

fn layer() -> &'static JwtLayer {
    static LAYER: OnceLock<JwtLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        JwtLayer::builder()
            .issuer(
                Issuer::new("https://issuer.fuzz")
                    .jwks(r#"{"keys":[]}"#)
                    .algorithms([Algorithm::HS256])
                    .hmac_secret(HmacSecret::new(SECRET))
                    .audiences(["api"])
                    .groups_claim("realm.roles"),
            )
            .clock(Arc::new(ManualClock::at_unix(NOW)))
            .cache(TokenCacheConfig::disabled())
            .build()
            .expect("valid config")
            .require_groups(Match::Any, ["a", "b"])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(token) = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    ) else {
        return;
    };
    if let Some(Ok(verified)) = layer().verify(&token).now_or_never() {
        assert!(verified.expires_at() > NOW);
        assert_eq!(verified.claims().issuer(), Some("https://issuer.fuzz"));
        assert!(verified.caller().in_group("a") || verified.caller().in_group("b"));
    }
});
