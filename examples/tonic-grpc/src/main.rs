//! `cargo run -p tonic-grpc [ADDR]`: serves the loyalty service on
//! `127.0.0.1:50051` (or ADDR) and prints the demo key, a member token and
//! grpcurl commands to try.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::{SharedClock, SystemClock};
use tonic_grpc::{AccessControls, BoxError, DEMO_API_KEY, mint_token, serve};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:50051".parse()?,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let controls = AccessControls::demo(clock.clone()).await?;
    let member = mint_token("alice", &["members"], Duration::from_secs(3600), &clock)?;
    let guest = mint_token("bob", &[], Duration::from_secs(3600), &clock)?;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let call = r#"grpcurl -plaintext -import-path examples/tonic-grpc/proto -proto loyalty.proto -d '{"customer_id":"C-1001"}'"#;
    let method = format!("{addr} loyalty.v1.Loyalty/GetBalance");
    println!("listening on http://{addr}");
    println!("demo API key: {DEMO_API_KEY}\n");
    println!("Try (grpcurl, from the workspace root):");
    println!("  {call} {method}   # Unauthenticated");
    println!(
        "  {call} -H 'authorization: Bearer {guest}' -H 'x-api-key: {DEMO_API_KEY}' {method}   # PermissionDenied: not a member"
    );
    println!(
        "  {call} -H 'authorization: Bearer {member}' {method}   # PermissionDenied: Forbidden (no key)"
    );
    println!(
        "  {call} -H 'authorization: Bearer {member}' -H 'x-api-key: {DEMO_API_KEY}' {method}   # OK, then ResourceExhausted when repeated quickly"
    );
    serve(listener, controls).await?;
    Ok(())
}
