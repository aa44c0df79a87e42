//! Identifiers: STS-style access key ids and UUID-shaped identity ids.

use aws_lc_rs::rand;

pub(super) const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `ASIA` and 16 base32 characters of 80 random bits, as STS's temporary
/// access key ids.
pub(super) fn new_access_key_id() -> Option<String> {
    let mut bytes = [0u8; 10];
    rand::fill(&mut bytes).ok()?;
    let mut bits = bytes
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    let mut chars = [0u8; 16];
    for c in chars.iter_mut().rev() {
        *c = BASE32[(bits & 31) as usize];
        bits >>= 5;
    }
    let mut id = String::with_capacity(20);
    id.push_str("ASIA");
    id.extend(chars.iter().map(|&c| char::from(c)));
    Some(id)
}

/// Formats 16 bytes as a UUID, with version 8 (custom) and the RFC 9562
/// variant bits set.
pub(super) fn uuid(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub(super) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_ids_look_like_sts() {
        let id = new_access_key_id().expect("random");
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("ASIA"));
        assert!(id.bytes().all(|b| BASE32.contains(&b)));
        assert_ne!(id, new_access_key_id().expect("random"));
    }

    #[test]
    fn uuids_round_trip() {
        let text = uuid([0xab; 16]);
        assert_eq!(text, "abababab-abab-8bab-abab-abababababab");
        let parsed = parse_uuid(&text).expect("parses");
        assert_eq!(uuid(parsed), text);
        assert!(parse_uuid("abababab-abab-8bab-abab-ababababab").is_none());
        assert!(parse_uuid("abababab_abab-8bab-abab-abababababab").is_none());
    }
}
