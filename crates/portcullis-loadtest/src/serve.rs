//! `serve`: the axum hello-world, bare or behind a stack variant, on
//! loopback.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use portcullis::Gateway;

use crate::Error;
use crate::setup::{self, Variant};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What sits in front of the service.
    #[arg(long, value_enum)]
    variant: Variant,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Tokio worker threads (default: one per core the process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// Redis, for `--variant redis`.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
}

async fn hello() -> &'static str {
    "Hello, World!"
}

pub(crate) fn run(args: &Args) -> Result<(), Error> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: &Args) -> Result<(), Error> {
    let app = Router::new().route("/loyalty/{customer_id}/get", get(hello));
    let (app, stack) = match args.variant {
        Variant::Bare => (app, "none".to_owned()),
        Variant::Jwt | Variant::Sigv4 => {
            let gateway = Gateway::from_file(setup::write_config(args.variant, &args.redis_url)?)?;
            (
                app.layer(gateway.layer()),
                "Gateway::layer() (in memory)".to_owned(),
            )
        }
        Variant::Redis => redis_stack(app, &args.redis_url).await?,
    };
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!(
        "portcullis-loadtest: {:?} on http://{} (stack: {stack})",
        args.variant,
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The JWT variant with throttle and quota on Redis, through the facade:
/// `[store] kind = "redis"` makes `Gateway::layer()` take throttle leases
/// (`portcullis_redis::LeasedThrottleStore`) and quota blocks (the control
/// plane's quota engine) from Redis, and decide each request locally.
async fn redis_stack(app: Router, redis_url: &str) -> Result<(Router, String), Error> {
    let gateway = Gateway::connect(setup::write_config(Variant::Redis, redis_url)?).await?;
    Ok((
        app.layer(gateway.layer()),
        "Gateway::layer() with [store] kind = \"redis\" (throttle and quota on leases)".to_owned(),
    ))
}
