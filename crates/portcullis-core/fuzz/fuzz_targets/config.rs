//! Configuration JSON: gateway-response overrides and usage plans. Loading
//! never panics, and whatever loads renders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::plan::UsagePlan;
use portcullis_core::{GatewayResponse, GatewayResponseType, GatewayResponses};

fuzz_target!(|data: &[u8]| {
    if let Ok(overrides) = serde_json::from_slice::<GatewayResponses>(data) {
        for kind in GatewayResponseType::ALL {
            let _ = GatewayResponse::new(*kind).render_with(Some(&overrides), false);
            let _ = GatewayResponse::new(*kind).render_with(Some(&overrides), true);
        }
    }
    if let Ok(plan) = serde_json::from_slice::<UsagePlan>(data) {
        let _ = plan.throttle_for("api", "stage", "GET", "/a/b");
        let json = serde_json::to_vec(&plan).expect("a loaded plan serialises");
        let again: UsagePlan = serde_json::from_slice(&json).expect("a serialised plan loads");
        assert_eq!(again, plan);
    }
});
