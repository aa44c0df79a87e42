//! The `aws-chunked` decoder of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` bodies:
//! arbitrary bytes, split into arbitrary pieces, never panic, and whatever is
//! released was announced (never more than `x-amz-decoded-content-length`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[split, expected], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let expected = u64::from(expected) * 97;
    if let Ok(decoded) =
        portcullis_sigv4::chunked::fuzz_decode(body, usize::from(split), expected)
    {
        assert_eq!(decoded.len() as u64, expected);
    }
});
