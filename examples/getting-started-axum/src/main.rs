//! The program that the guide "Getting started with axum"
//! (`docs/getting-started-axum.md`) builds: an axum app whose `/pets` route
//! takes an API key, a usage plan (throttle and quota) and a JWT, and whose
//! `/me` route takes a JWT alone.
//!
//! ```sh
//! cargo run -p getting-started-axum -- [CONFIG] [ADDR]
//! ```
//!
//! CONFIG is the gateway's configuration file (`gateway.toml` by default);
//! ADDR is where to listen (`127.0.0.1:3000` by default, port 0 for any free
//! port). The program prints `listening on http://ADDR` once it accepts
//! connections.

use std::error::Error;
use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use portcullis::Gateway;
use portcullis::jwt::Claims;
use serde::Deserialize;

async fn hello() -> &'static str {
    "Hello, world!"
}

async fn list_pets() -> Json<Vec<&'static str>> {
    Json(vec!["Rex", "Tom"])
}

/// The claims `/me` reads from a verified token.
#[derive(Deserialize)]
struct User {
    sub: String,
}

async fn me(Claims(user): Claims<User>) -> String {
    format!("Hello, {}!", user.sub)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let config = args.next().unwrap_or_else(|| "gateway.toml".to_owned());
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:3000").parse()?;

    let gateway = Gateway::connect(&config).await?;

    let mut app = Router::new()
        .route("/pets", get(list_pets))
        .route_layer(gateway.layer())
        .route("/", get(hello));

    if let Some(jwt) = gateway.jwt_layer() {
        app = app.merge(Router::new().route("/me", get(me)).route_layer(jwt));
    }

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
