// SQL injection blacklist checker - matches C implementation exactly

use super::sqli_data;

/// Check if a fingerprint is blacklisted
/// This matches libinjection_sqli_blacklist from the C version
pub fn is_blacklisted(fingerprint: &str) -> bool {
    // Match the C version: convert v0 fingerprint to v1 format
    // v0: up to 5 chars, mixed case  
    // v1: '0' prefix, up to 5 more chars, upper case
    
    if fingerprint.is_empty() {
        return false;
    }
    
    // portcullis: built on the stack (upstream allocated a `String`);
    // `lookup_word` upper-cases ASCII itself.
    let mut fp2 = [0u8; 16];
    if fingerprint.len() + 1 > fp2.len() {
        return false;
    }
    fp2[0] = b'0';
    fp2[1..=fingerprint.len()].copy_from_slice(fingerprint.as_bytes());
    let fp2 = core::str::from_utf8(&fp2[..=fingerprint.len()]).unwrap_or("");

    // Check if this fingerprint exists in the keywords table with type 'F'
    sqli_data::lookup_word(fp2) == crate::libinjection::TokenType::Fingerprint
}