//! `headers`: what the load tool sends, one `Name: value` a line.

use crate::Error;
use crate::setup::{self, API_KEY, PATH, Variant};

/// Arguments of `headers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The variant the requests go to. `bare` gets the JWT variant's
    /// headers, so that the bare service reads the same bytes.
    #[arg(long, value_enum)]
    variant: Variant,
    /// The `host:port` the load tool connects to (signed as the `host` header).
    #[arg(long)]
    host: String,
    /// The path and query (signed for SigV4).
    #[arg(long, default_value = PATH)]
    path: String,
}

pub(crate) fn run(args: &Args) -> Result<(), Error> {
    println!("Host: {}", args.host);
    println!("x-api-key: {API_KEY}");
    match args.variant {
        Variant::Bare | Variant::Jwt | Variant::Redis => {
            println!("Authorization: Bearer {}", setup::token()?);
        }
        Variant::Sigv4 => {
            for (name, value) in setup::sigv4_headers(&args.host, &args.path)? {
                println!("{name}: {value}");
            }
        }
    }
    Ok(())
}
