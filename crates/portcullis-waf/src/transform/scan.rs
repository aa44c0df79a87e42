//! Byte scans the transformations share: "is any of these bytes here?",
//! eight bytes at a time.

/// Eight copies of `byte`, one per byte of a `u64`.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// Whether `input` holds `a` or `b`: the quick "nothing to decode" test of
/// the decoders.
pub(super) fn contains_either(input: &[u8], a: u8, b: u8) -> bool {
    contains_any(input, [a, b])
}

/// Whether `input` holds one of `set`, eight bytes at a time: a word has a
/// byte equal to `c` when it XOR `c` has a zero byte, which
/// `(x - 0x01..) & !x & 0x80..` detects (with no false positive when there
/// is none).
pub(crate) fn contains_any<const N: usize>(input: &[u8], set: [u8; N]) -> bool {
    let zero_byte = |x: u64| x.wrapping_sub(splat(1)) & !x & splat(0x80) != 0;
    let mut chunks = input.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        if set.iter().any(|&c| zero_byte(word ^ splat(c))) {
            return true;
        }
    }
    chunks.remainder().iter().any(|b| set.contains(b))
}

/// Whether `input` holds an ASCII capital letter, eight bytes at a time: per
/// byte, with `low` its lower seven bits, `0xDA - low` has its top bit set
/// when `low <= 0x5A` and `low + 0x3F` when `low >= 0x41`; neither carries
/// into the next byte, and `!x` drops bytes from 0x80 up.
pub(super) fn has_ascii_uppercase(input: &[u8]) -> bool {
    let mut chunks = input.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        let low = x & splat(0x7f);
        if (splat(0x7f + b'Z' + 1) - low) & !x & (low + splat(0x7f - (b'A' - 1))) & splat(0x80) != 0
        {
            return true;
        }
    }
    chunks.remainder().iter().any(u8::is_ascii_uppercase)
}

pub(super) fn changed_if(
    input: &[u8],
    needs: impl Fn(u8) -> bool,
    transform: impl Fn(&[u8]) -> Vec<u8>,
) -> Option<Vec<u8>> {
    input.iter().any(|&b| needs(b)).then(|| transform(input))
}

/// Whitespace as ModSecurity's `isspace` sees it.
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}
