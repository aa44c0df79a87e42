//! `cargo run -p axum-routes [ADDR]`: serves on `127.0.0.1:3002` (or ADDR)
//! and prints the demo key, a member's and an admin's token, and curl
//! commands to try.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_routes::{BoxError, DEMO_API_KEY, app, mint_token};
use portcullis_core::clock::{SharedClock, SystemClock};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:3002".parse()?,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let app = app(clock.clone()).await?;
    let hour = Duration::from_secs(3600);
    let member = mint_token("alice", &["members"], hour, &clock)?;
    let admin = mint_token("root", &["admins"], hour, &clock)?;
    let today = time_today(&clock);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}\n\nTry:");
    println!("  curl -i {base}/health");
    println!("  curl -i -H 'x-api-key: {DEMO_API_KEY}' {base}/loyalty/C-1001   # 200, then 429s");
    println!("  curl -i -H 'Authorization: Bearer {member}' {base}/me");
    println!(
        "  curl -i -H 'Authorization: Bearer {admin}' '{base}/admin/usageplans/partners/usage?keyId=partner-1&startDate={today}&endDate={today}'"
    );
    println!(
        "  curl -i -H 'Authorization: Bearer {admin}' -X PATCH -d '{{\"patchOperations\":[{{\"op\":\"add\",\"path\":\"/remaining\",\"value\":\"10\"}}]}}' {base}/admin/usageplans/partners/keys/partner-1/usage"
    );
    println!(
        "  curl -i -H 'Authorization: Bearer {member}' {base}/admin/usageplans   # 403: not an admin"
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Today's UTC date, as GetUsage takes it.
fn time_today(clock: &SharedClock) -> String {
    let now = clock.now();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}
