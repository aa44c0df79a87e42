//! The session token: a sealed AEAD blob, and the pool keys that seal it.
//!
//! A token reads `v1.{key-id}.{base64url(nonce ‖ ciphertext ‖ tag)}`. The
//! plaintext is a small binary record (see [`SessionClaims`]); the key id and
//! the format version are bound to it as associated data, so a token cannot
//! be moved to another key id.
//!
//! Each pool key is stretched with HKDF-SHA256 into two independent keys: an
//! AES-256-GCM-SIV key that seals tokens and an HMAC-SHA256 key from which the
//! secret access key of each access key id is derived.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{aead, hkdf, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The prefix of every session token this crate issues.
pub const TOKEN_PREFIX: &str = "v1.";

/// Session tokens longer than this are refused before decoding.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// The shortest pool key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const FORMAT_VERSION: u8 = 1;
const HKDF_SALT: &[u8] = b"portcullis-identity-pool/v1";
const AAD_PREFIX: &[u8] = b"portcullis-identity-pool/v1/";

/// What a session token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClaims {
    /// The access key id the token belongs to.
    pub access_key_id: String,
    /// The identity id (`{region}:{uuid}`).
    pub identity_id: String,
    /// The role's name.
    pub role: String,
    /// When the credentials expire, in Unix seconds.
    pub expires_at: i64,
    /// Whether the identity signed in (false for a guest).
    pub authenticated: bool,
}

impl SessionClaims {
    fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(
            12 + self.access_key_id.len() + self.identity_id.len() + self.role.len(),
        );
        out.push(FORMAT_VERSION);
        out.push(u8::from(self.authenticated));
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        for field in [&self.access_key_id, &self.identity_id, &self.role] {
            out.push(u8::try_from(field.len()).ok()?);
            out.extend_from_slice(field.as_bytes());
        }
        Some(out)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != FORMAT_VERSION {
            return None;
        }
        let (&flags, rest) = rest.split_first()?;
        let authenticated = match flags {
            0 => false,
            1 => true,
            _ => return None,
        };
        let (expiry, mut rest) = rest.split_at_checked(8)?;
        let expires_at = i64::from_be_bytes(expiry.try_into().ok()?);
        let mut fields = [String::new(), String::new(), String::new()];
        for field in &mut fields {
            let (&len, tail) = rest.split_first()?;
            let (value, tail) = tail.split_at_checked(usize::from(len))?;
            *field = std::str::from_utf8(value).ok()?.to_owned();
            rest = tail;
        }
        if !rest.is_empty() {
            return None;
        }
        let [access_key_id, identity_id, role] = fields;
        Some(Self {
            access_key_id,
            identity_id,
            role,
            expires_at,
            authenticated,
        })
    }
}

/// One pool key, by id: the sealing key and the secret-derivation key that
/// HKDF draws from it.
pub(crate) struct PoolKey {
    id: Arc<str>,
    seal: aead::LessSafeKey,
    secrets: hmac::Key,
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolKey")
            .field("id", &self.id)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// HKDF-SHA256 output of 32 bytes.
fn expand(prk: &hkdf::Prk, label: &[u8], id: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let info = [label, id];
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .expect("invariant: 32 bytes is HKDF-SHA256's output length");
    out
}

impl PoolKey {
    /// Derives the key `id` from its material (at least [`MIN_KEY_BYTES`]).
    pub(crate) fn new(id: &str, material: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(material);
        let seal_bytes = expand(&prk, b"session-token", id.as_bytes());
        let secret_bytes = expand(&prk, b"secret-access-key", id.as_bytes());
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM_SIV, &seal_bytes)
            .expect("invariant: AES-256-GCM-SIV takes a 32-byte key");
        Self {
            id: id.into(),
            seal: aead::LessSafeKey::new(unbound),
            secrets: hmac::Key::new(hmac::HMAC_SHA256, &secret_bytes),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_PREFIX.len() + self.id.len());
        aad.extend_from_slice(AAD_PREFIX);
        aad.extend_from_slice(self.id.as_bytes());
        aad
    }

    /// Seals `claims` into a session token, or `None` when a field is longer
    /// than 255 bytes or the system's random source fails.
    pub(crate) fn seal(&self, claims: &SessionClaims) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).ok()?;
        let mut in_out = claims.encode()?;
        self.seal
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(self.aad()),
                &mut in_out,
            )
            .ok()?;
        let mut blob = Vec::with_capacity(NONCE_LEN + in_out.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&in_out);
        Some(format!(
            "{TOKEN_PREFIX}{}.{}",
            self.id,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Opens the sealed part of a token (after `v1.{id}.`).
    fn open(&self, sealed: &str) -> Option<SessionClaims> {
        let mut blob = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let nonce = aead::Nonce::try_assume_unique_for_key(&blob[..NONCE_LEN]).ok()?;
        let plain = self
            .seal
            .open_in_place(nonce, aead::Aad::from(self.aad()), &mut blob[NONCE_LEN..])
            .ok()?;
        SessionClaims::decode(plain)
    }

    /// The secret access key of `access_key_id`: 40 base64 characters of
    /// HMAC-SHA256 under this key's derivation key.
    pub(crate) fn secret_for(&self, access_key_id: &str) -> String {
        let tag = hmac::sign(&self.secrets, access_key_id.as_bytes());
        STANDARD_NO_PAD.encode(&tag.as_ref()[..30])
    }
}

/// Splits a token into its key id and sealed part, with the size limit.
pub(crate) fn split(token: &str) -> Option<(&str, &str)> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    token.strip_prefix(TOKEN_PREFIX)?.split_once('.')
}

/// The pool's keys: one seals new tokens, every one opens the tokens sealed
/// under its id.
#[derive(Debug)]
pub(crate) struct KeyRing {
    keys: Vec<PoolKey>,
    active: usize,
}

impl KeyRing {
    pub(crate) fn new(keys: Vec<PoolKey>, active: usize) -> Self {
        Self { keys, active }
    }

    pub(crate) fn active(&self) -> &PoolKey {
        &self.keys[self.active]
    }

    pub(crate) fn get(&self, id: &str) -> Option<&PoolKey> {
        self.keys.iter().find(|key| &*key.id == id)
    }

    /// Opens a token: its key id must name a key of the ring, and the blob
    /// must authenticate under it. Returns the key and the claims.
    pub(crate) fn open(&self, token: &str) -> Option<(&PoolKey, SessionClaims)> {
        let (id, sealed) = split(token)?;
        let key = self.get(id)?;
        key.open(sealed).map(|claims| (key, claims))
    }
}

/// Opens `token` with a key derived from `material` under `key_id`, with no
/// pool around it: what the fuzz target drives.
#[doc(hidden)]
#[must_use]
pub fn open_with(key_id: &str, material: &[u8], token: &str) -> Option<SessionClaims> {
    let ring = KeyRing::new(vec![PoolKey::new(key_id, material)], 0);
    ring.open(token).map(|(_, claims)| claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims {
            access_key_id: "ASIAABCDEFGHIJKLMNOP".into(),
            identity_id: "us-east-1:0b0e7c1a-0000-8000-8000-000000000000".into(),
            role: "Authenticated".into(),
            expires_at: 1_800_003_600,
            authenticated: true,
        }
    }

    #[test]
    fn seals_and_opens() {
        let key = PoolKey::new("k1", &[7u8; 32]);
        let ring = KeyRing::new(vec![key], 0);
        let token = ring.active().seal(&claims()).expect("seal");
        assert!(token.starts_with("v1.k1."));
        let (key, opened) = ring.open(&token).expect("opens");
        assert_eq!(key.id(), "k1");
        assert_eq!(opened, claims());
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let ring = KeyRing::new(vec![PoolKey::new("k1", &[7u8; 32])], 0);
        let token = ring.active().seal(&claims()).expect("seal");
        let prefix = "v1.k1.".len();
        for i in prefix..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).expect("ascii");
            assert!(ring.open(&tampered).is_none(), "byte {i} flipped");
        }
    }

    #[test]
    fn a_token_cannot_move_to_another_key_id() {
        // Same material under two ids: distinct keys, and the id is bound.
        let ring = KeyRing::new(
            vec![
                PoolKey::new("k1", &[7u8; 32]),
                PoolKey::new("k2", &[7u8; 32]),
            ],
            0,
        );
        let token = ring.active().seal(&claims()).expect("seal");
        let moved = token.replacen("v1.k1.", "v1.k2.", 1);
        assert!(ring.open(&moved).is_none());
    }

    #[test]
    fn secrets_depend_on_key_and_access_key_id() {
        let a = PoolKey::new("k1", &[1u8; 32]);
        let b = PoolKey::new("k1", &[2u8; 32]);
        assert_eq!(a.secret_for("ASIA1"), a.secret_for("ASIA1"));
        assert_ne!(a.secret_for("ASIA1"), a.secret_for("ASIA2"));
        assert_ne!(a.secret_for("ASIA1"), b.secret_for("ASIA1"));
        assert_eq!(a.secret_for("ASIA1").len(), 40);
    }

    #[test]
    fn decode_refuses_trailing_and_short_input() {
        let mut bytes = claims().encode().expect("encode");
        assert_eq!(SessionClaims::decode(&bytes), Some(claims()));
        bytes.push(0);
        assert_eq!(SessionClaims::decode(&bytes), None);
        for len in 0..bytes.len() - 1 {
            assert_eq!(SessionClaims::decode(&bytes[..len]), None, "{len}");
        }
    }

    #[test]
    fn oversized_tokens_are_not_decoded() {
        let ring = KeyRing::new(vec![PoolKey::new("k1", &[7u8; 32])], 0);
        let token = format!("v1.k1.{}", "A".repeat(MAX_TOKEN_BYTES));
        assert!(ring.open(&token).is_none());
    }
}
