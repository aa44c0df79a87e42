//! `cargo run -p hyper-server [ADDR]`: serves on `127.0.0.1:3001` (or ADDR)
//! with the gateway in `config/gateway.toml`, and prints commands to try.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_server::{CONFIG, DEMO_API_KEY, gateway, serve};
use portcullis::core::clock::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:3001".parse()?,
    };
    let gateway = gateway(CONFIG, Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}\nconfiguration: {CONFIG}\n\nTry:");
    println!("  curl -i {base}/health                                   # 200, no key needed");
    println!("  curl -i {base}/loyalty/C-1001                           # 403 Forbidden (no key)");
    println!(
        "  curl -i -H 'x-api-key: {DEMO_API_KEY}' {base}/loyalty/C-1001   # 200, then 429 Too Many Requests, then 429 Limit Exceeded"
    );
    println!(
        "  curl -i \"{base}/loyalty/C-1001?id=1'%20OR%20'1'='1\"     # 403, the WAF's SQL injection rule"
    );
    serve(listener, gateway).await?;
    Ok(())
}
