//! The example served on 127.0.0.1 and called by a real tonic client: every
//! refusal of the layers arrives as a gRPC status.

use std::sync::Arc;
use std::time::Duration;

use portcullis_api_key::ApiKeys;
use portcullis_core::clock::{ManualClock, SharedClock};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_grpc::pb::loyalty_client::LoyaltyClient;
use tonic_grpc::pb::{Balance, GetBalanceRequest};
use tonic_grpc::{AccessControls, DEMO_API_KEY, mint_token, serve};

const HOUR: Duration = Duration::from_secs(3600);

/// The example on an ephemeral port, on a manual clock.
struct Running {
    client: LoyaltyClient<Channel>,
    clock: ManualClock,
    shared: SharedClock,
    keys: ApiKeys,
}

async fn start() -> Running {
    let clock = ManualClock::at_unix(1_795_000_000);
    let shared: SharedClock = Arc::new(clock.clone());
    let controls = AccessControls::demo(shared.clone())
        .await
        .expect("the demo configuration is valid");
    let (listener, addr) = portcullis_test_support::serve::listener().await;
    let keys = controls.keys.clone();
    tokio::spawn(serve(listener, controls));
    let client = LoyaltyClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    Running {
        client,
        clock,
        shared,
        keys,
    }
}

impl Running {
    fn token(&self, subject: &str, groups: &[&str]) -> String {
        mint_token(subject, groups, HOUR, &self.shared).expect("mints")
    }

    async fn call(
        &mut self,
        customer_id: &str,
        token: Option<&str>,
        key: Option<&str>,
    ) -> Result<Balance, Status> {
        let mut request = tonic::Request::new(GetBalanceRequest {
            customer_id: customer_id.to_owned(),
        });
        if let Some(token) = token {
            let value = format!("Bearer {token}").parse().expect("ascii");
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(key) = key {
            request
                .metadata_mut()
                .insert("x-api-key", key.parse().expect("ascii"));
        }
        self.client
            .get_balance(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

#[tokio::test]
async fn a_member_through_a_partner_gets_the_balance() {
    let mut app = start().await;
    let alice = app.token("alice", &["members"]);
    let balance = app
        .call("C-1002", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect("OK");
    assert_eq!(
        balance,
        Balance {
            customer_id: "C-1002".into(),
            points: 58_250,
            tier: "GOLD".into(),
            requested_by: "alice".into(),
            partner_key_id: "partner-1".into(),
        }
    );
    // Through every layer, the service's own statuses arrive unchanged.
    let status = app
        .call("C-9999", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect_err("no such member");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn no_or_a_bad_token_is_unauthenticated() {
    let mut app = start().await;
    let status = app
        .call("C-1001", None, Some(DEMO_API_KEY))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "Unauthorized");

    let alice = app.token("alice", &["members"]);
    // The signature's first character changed: its first byte differs.
    let (signed, signature) = alice.rsplit_once('.').expect("three parts");
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{signed}.{first}{}", &signature[1..]);
    let status = app
        .call("C-1001", Some(&tampered), Some(DEMO_API_KEY))
        .await
        .expect_err("bad signature");
    assert_eq!(status.code(), Code::Unauthenticated);

    app.clock.advance(2 * HOUR);
    let status = app
        .call("C-1001", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "The incoming token has expired");
}

#[tokio::test]
async fn no_group_or_no_key_is_permission_denied() {
    let mut app = start().await;
    let bob = app.token("bob", &[]);
    let status = app
        .call("C-1001", Some(&bob), Some(DEMO_API_KEY))
        .await
        .expect_err("not a member");
    assert_eq!(status.code(), Code::PermissionDenied);

    let alice = app.token("alice", &["members"]);
    for key in [None, Some("NotTheKey0123456789abcdefgh")] {
        let status = app
            .call("C-1001", Some(&alice), key)
            .await
            .expect_err("no valid key");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "Forbidden");
    }

    // Disabled at run time, through the handle: refused on the next call.
    app.call("C-1001", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect("enabled");
    app.keys.disable("partner-1").await.expect("the key exists");
    let status = app
        .call("C-1001", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect_err("disabled");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn quick_repeats_are_resource_exhausted() {
    let mut app = start().await;
    let alice = app.token("alice", &["members"]);
    for _ in 0..2 {
        app.call("C-1001", Some(&alice), Some(DEMO_API_KEY))
            .await
            .expect("within the burst of 2");
    }
    let status = app
        .call("C-1001", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect_err("burst used up");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "Too Many Requests");

    // One second later, one token has come back.
    app.clock.advance(Duration::from_secs(1));
    app.call("C-1001", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect("refilled");
    let status = app
        .call("C-1001", Some(&alice), Some(DEMO_API_KEY))
        .await
        .expect_err("empty again");
    assert_eq!(status.code(), Code::ResourceExhausted);
}
