//! Prints a JWT for trying the guide's `/me` and `/pets` routes, signed with
//! a local Ed25519 key, as your identity provider would sign one.
//!
//! ```sh
//! cargo run -p getting-started-axum --bin mint-token -- [SUBJECT] [AUDIENCE] [KEY]
//! ```
//!
//! SUBJECT is the token's `sub` (`alice` by default), AUDIENCE its `aud`
//! (`pets-app` by default) and KEY the PKCS#8 PEM private key
//! (`config/signing-key.pem` of this example by default, whose public half
//! is `config/jwks.json`). The token is valid for an hour.

use std::error::Error;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let subject = args.next().unwrap_or_else(|| "alice".to_owned());
    let audience = args.next().unwrap_or_else(|| "pets-app".to_owned());
    let key_file = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/signing-key.pem").to_owned()
    });

    let key = EncodingKey::from_ed_pem(&std::fs::read(key_file)?)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({
        "iss": "https://auth.example.com",
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("getting-started-1".to_owned());
    println!("{}", encode(&header, &claims, &key)?);
    Ok(())
}
