//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the `aws-chunked` body whose chunks
//! are each signed, chained from the request's (seed) signature.
//!
//! Each chunk is `hex(size);chunk-signature=<64 hex>\r\n<size bytes>\r\n`; the
//! last has size 0. A chunk's string to sign is
//!
//! ```text
//! AWS4-HMAC-SHA256-PAYLOAD
//! <the request's X-Amz-Date>
//! <the credential scope>
//! <the previous signature: the seed for the first chunk>
//! <SHA-256 of the empty string>
//! <SHA-256 of the chunk's data>
//! ```
//!
//! signed with the request's signing key. The decoder reads the framing as it
//! arrives, holds one chunk's data until its signature is verified, and only
//! then releases it.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::canonical;
use crate::verify::EMPTY_SHA256;

type HmacSha256 = Hmac<Sha256>;

/// The longest chunk header line accepted: 16 hex digits of size,
/// `;chunk-signature=` and 64 hex digits, with room to spare.
const MAX_HEADER_LINE: usize = 128;
const SIGNATURE_EXTENSION: &[u8] = b";chunk-signature=";

/// Why an `aws-chunked` body was cut off: the error the inner service reads
/// from the body, in [`SigV4BodyError::Chunked`](crate::SigV4BodyError).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkedBodyError {
    /// A chunk header that is not `hex(size);chunk-signature=<64 hex>\r\n`.
    #[error("aws-chunked body: chunk {index} has a malformed header")]
    MalformedHeader {
        /// The chunk's index, from 0.
        index: u64,
    },
    /// Chunk data not followed by `\r\n`.
    #[error("aws-chunked body: chunk {index} is not followed by CRLF")]
    MissingCrlf {
        /// The chunk's index, from 0.
        index: u64,
    },
    /// A chunk whose signature does not match its data and the chain.
    #[error("aws-chunked body: the signature of chunk {index} does not match")]
    SignatureMismatch {
        /// The chunk's index, from 0.
        index: u64,
    },
    /// More data than `x-amz-decoded-content-length` announced.
    #[error("aws-chunked body: more than the {expected} bytes of x-amz-decoded-content-length")]
    TooLong {
        /// `x-amz-decoded-content-length`.
        expected: u64,
    },
    /// The body ended before its final (empty) chunk, or with fewer bytes
    /// than `x-amz-decoded-content-length`.
    #[error("aws-chunked body: ended after {decoded} of {expected} bytes, without its final chunk")]
    Truncated {
        /// The bytes decoded.
        decoded: u64,
        /// `x-amz-decoded-content-length`.
        expected: u64,
    },
    /// Bytes after the final chunk.
    #[error("aws-chunked body: data after the final chunk")]
    TrailingData,
}

/// Verifies the chain of chunk signatures.
#[derive(Clone)]
pub(crate) struct ChunkVerifier {
    key: HmacSha256,
    /// `AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n`.
    prefix: Vec<u8>,
    /// Hex of the previous signature.
    previous: [u8; 64],
}

impl std::fmt::Debug for ChunkVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkVerifier").finish_non_exhaustive()
    }
}

impl ChunkVerifier {
    pub(crate) fn new(key: HmacSha256, prefix: Vec<u8>, seed: &[u8; 32]) -> Self {
        Self {
            key,
            prefix,
            previous: canonical::hex32(seed),
        }
    }

    /// The signature of a chunk whose data hashes to `data_sha256`, chained
    /// from the previous one.
    fn sign(&self, data_sha256: &[u8; 32]) -> [u8; 32] {
        let mut mac = self.key.clone();
        mac.update(&self.prefix);
        mac.update(&self.previous);
        mac.update(b"\n");
        mac.update(EMPTY_SHA256.as_bytes());
        mac.update(b"\n");
        mac.update(&canonical::hex32(data_sha256));
        mac.finalize().into_bytes().into()
    }

    /// Checks `given` (64 hex digits, already validated) in constant time and
    /// advances the chain.
    fn verify(&mut self, data_sha256: &[u8; 32], given: &[u8; 32]) -> bool {
        let computed = self.sign(data_sha256);
        let ok = bool::from(computed.ct_eq(given));
        if ok {
            self.previous = canonical::hex32(&computed);
        }
        ok
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a chunk header line up to its `\r\n`.
    Header,
    /// Reading a chunk's data.
    Data,
    /// Reading the `\r\n` after a chunk's data (how many bytes seen).
    DataEnd(u8),
    /// Reading the `\r\n` after the final chunk's header (how many seen).
    FinalEnd(u8),
    /// The final chunk was verified.
    Done,
    /// An error ended the body.
    Failed,
}

/// Decodes and verifies an `aws-chunked` body as its bytes arrive.
#[derive(Debug)]
pub(crate) struct Decoder {
    verifier: ChunkVerifier,
    state: State,
    line: Vec<u8>,
    /// The current chunk's data, not yet released.
    pending: Vec<Bytes>,
    hasher: Sha256,
    /// The current chunk's data bytes still to read.
    remaining: u64,
    /// The current chunk's claimed signature.
    signature: [u8; 32],
    index: u64,
    decoded: u64,
    expected: u64,
}

impl Decoder {
    /// A decoder for a body of `expected` decoded bytes
    /// (`x-amz-decoded-content-length`).
    pub(crate) fn new(verifier: ChunkVerifier, expected: u64) -> Self {
        Self {
            verifier,
            state: State::Header,
            line: Vec::new(),
            pending: Vec::new(),
            hasher: Sha256::new(),
            remaining: 0,
            signature: [0; 32],
            index: 0,
            decoded: 0,
            expected,
        }
    }

    /// `x-amz-decoded-content-length`.
    pub(crate) fn expected(&self) -> u64 {
        self.expected
    }

    fn fail(&mut self, error: ChunkedBodyError) -> Result<(), ChunkedBodyError> {
        self.state = State::Failed;
        self.pending.clear();
        Err(error)
    }

    /// Consumes `input`, pushing the data of every chunk whose signature
    /// verified onto `out`, in order.
    pub(crate) fn feed(
        &mut self,
        mut input: Bytes,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), ChunkedBodyError> {
        while !input.is_empty() {
            match self.state {
                State::Failed => return Err(ChunkedBodyError::TrailingData),
                State::Done => return self.fail(ChunkedBodyError::TrailingData),
                State::Header => {
                    let (line_end, complete) = match input.iter().position(|&b| b == b'\n') {
                        Some(at) => (at + 1, true),
                        None => (input.len(), false),
                    };
                    if self.line.len() + line_end > MAX_HEADER_LINE {
                        let index = self.index;
                        return self.fail(ChunkedBodyError::MalformedHeader { index });
                    }
                    self.line.extend_from_slice(&input[..line_end]);
                    input.advance(line_end);
                    if complete {
                        self.header_complete()?;
                    }
                }
                State::Data => {
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let piece = input.split_to(take);
                    self.hasher.update(&piece);
                    self.pending.push(piece);
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataEnd(0);
                    }
                }
                State::DataEnd(seen) | State::FinalEnd(seen) => {
                    let expected_byte = if seen == 0 { b'\r' } else { b'\n' };
                    if input[0] != expected_byte {
                        let index = self.index;
                        return self.fail(ChunkedBodyError::MissingCrlf { index });
                    }
                    input.advance(1);
                    let is_final = matches!(self.state, State::FinalEnd(_));
                    if seen == 0 {
                        self.state = if is_final {
                            State::FinalEnd(1)
                        } else {
                            State::DataEnd(1)
                        };
                    } else if is_final {
                        self.state = State::Done;
                    } else {
                        self.chunk_complete(out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A complete header line (ending in `\n`): parse it and, for the final
    /// chunk, verify its signature at once.
    fn header_complete(&mut self) -> Result<(), ChunkedBodyError> {
        let index = self.index;
        let Some((size, signature)) = parse_header(&self.line) else {
            return self.fail(ChunkedBodyError::MalformedHeader { index });
        };
        self.line.clear();
        self.signature = signature;
        if size == 0 {
            if self.decoded != self.expected {
                let (decoded, expected) = (self.decoded, self.expected);
                return self.fail(ChunkedBodyError::Truncated { decoded, expected });
            }
            let empty: [u8; 32] = Sha256::digest(b"").into();
            if !self.verifier.verify(&empty, &self.signature) {
                return self.fail(ChunkedBodyError::SignatureMismatch { index });
            }
            self.state = State::FinalEnd(0);
            return Ok(());
        }
        if size > self.expected - self.decoded {
            let expected = self.expected;
            return self.fail(ChunkedBodyError::TooLong { expected });
        }
        self.remaining = size;
        self.hasher = Sha256::new();
        self.state = State::Data;
        Ok(())
    }

    /// A chunk's data and its `\r\n` were read: verify and release it.
    fn chunk_complete(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), ChunkedBodyError> {
        let index = self.index;
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if !self.verifier.verify(&digest, &self.signature) {
            return self.fail(ChunkedBodyError::SignatureMismatch { index });
        }
        for piece in self.pending.drain(..) {
            self.decoded += piece.len() as u64;
            out.push_back(piece);
        }
        self.index += 1;
        self.state = State::Header;
        Ok(())
    }

    /// The body ended: it must have ended with its final chunk.
    pub(crate) fn finish(&mut self) -> Result<(), ChunkedBodyError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed => Err(ChunkedBodyError::TrailingData),
            _ => {
                let (decoded, expected) = (self.decoded, self.expected);
                self.fail(ChunkedBodyError::Truncated { decoded, expected })
            }
        }
    }
}

/// Parses `hex(size);chunk-signature=<64 hex>\r\n`.
fn parse_header(line: &[u8]) -> Option<(u64, [u8; 32])> {
    let line = line.strip_suffix(b"\r\n")?;
    let semicolon = line.iter().position(|&b| b == b';')?;
    let (size, rest) = line.split_at(semicolon);
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let size = u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()?;
    let hex_signature = rest.strip_prefix(SIGNATURE_EXTENSION)?;
    let mut signature = [0u8; 32];
    if hex_signature.len() != 64 || hex::decode_to_slice(hex_signature, &mut signature).is_err() {
        return None;
    }
    Some((size, signature))
}

/// Fuzzing entry point: decodes `body` in pieces of `split` bytes with a
/// fixed key, returning the decoded bytes or the error.
#[doc(hidden)]
pub fn fuzz_decode(body: &[u8], split: usize, expected: u64) -> Result<Vec<u8>, ChunkedBodyError> {
    let key = HmacSha256::new_from_slice(b"fuzz").unwrap_or_else(|_| unreachable!());
    let verifier = ChunkVerifier::new(key, b"AWS4-HMAC-SHA256-PAYLOAD\n".to_vec(), &[0; 32]);
    let mut decoder = Decoder::new(verifier, expected);
    let mut out = VecDeque::new();
    for piece in body.chunks(split.max(1)) {
        decoder.feed(Bytes::copy_from_slice(piece), &mut out)?;
    }
    decoder.finish()?;
    Ok(out.into_iter().flat_map(|b| b.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signing key of S3's documented chunked upload (secret
    /// `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`, 20130524, us-east-1, s3).
    fn example_verifier() -> ChunkVerifier {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
            let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        };
        let k = hmac(format!("AWS4{secret}").as_bytes(), b"20130524");
        let k = hmac(&k, b"us-east-1");
        let k = hmac(&k, b"s3");
        let k = hmac(&k, b"aws4_request");
        let key = HmacSha256::new_from_slice(&k).expect("any key length");
        let seed: [u8; 32] =
            hex::decode("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
                .expect("hex")
                .try_into()
                .expect("32 bytes");
        ChunkVerifier::new(
            key,
            b"AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                .to_vec(),
            &seed,
        )
    }

    const SIGNATURES: [&str; 3] = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ];

    fn example_body() -> Vec<u8> {
        let mut body = Vec::new();
        for (size, signature) in [65536usize, 1024, 0].into_iter().zip(SIGNATURES) {
            body.extend_from_slice(format!("{size:x};chunk-signature={signature}\r\n").as_bytes());
            body.extend(std::iter::repeat_n(b'a', size));
            body.extend_from_slice(b"\r\n");
        }
        body
    }

    fn decode(body: &[u8], split: usize) -> Result<(Vec<u8>, usize), ChunkedBodyError> {
        let mut decoder = Decoder::new(example_verifier(), 66560);
        let mut out = VecDeque::new();
        let mut releases = 0;
        for piece in body.chunks(split) {
            let before = out.len();
            decoder.feed(Bytes::copy_from_slice(piece), &mut out)?;
            releases += usize::from(out.len() > before);
        }
        decoder.finish()?;
        Ok((out.iter().flat_map(|b| b.to_vec()).collect(), releases))
    }

    #[test]
    fn the_s3_documentation_example_verifies_whatever_the_framing() {
        let body = example_body();
        for split in [1, 2, 7, 100, 4096, 65536, 65600, body.len()] {
            let (data, releases) = decode(&body, split).expect("the documented chunks verify");
            assert_eq!(data.len(), 66560, "split {split}");
            assert!(data.iter().all(|&b| b == b'a'));
            if split <= 100 {
                assert_eq!(
                    releases, 2,
                    "split {split}: each chunk released when verified"
                );
            }
        }
    }

    #[test]
    fn each_documented_signature_is_computed() {
        let mut verifier = example_verifier();
        let a64k: [u8; 32] = Sha256::digest(vec![b'a'; 65536]).into();
        let a1k: [u8; 32] = Sha256::digest(vec![b'a'; 1024]).into();
        let empty: [u8; 32] = Sha256::digest(b"").into();
        for (digest, expected) in [a64k, a1k, empty].iter().zip(SIGNATURES) {
            let signature = verifier.sign(digest);
            assert_eq!(hex::encode(signature), expected);
            assert!(verifier.verify(digest, &signature));
        }
    }

    #[test]
    fn a_bad_chunk_is_never_released() {
        let mut body = example_body();
        // A byte of the second chunk's data.
        let at = body.len() - 200;
        body[at] = b'b';
        let mut decoder = Decoder::new(example_verifier(), 66560);
        let mut out = VecDeque::new();
        let error = decoder
            .feed(Bytes::from(body), &mut out)
            .expect_err("tampered");
        assert_eq!(error, ChunkedBodyError::SignatureMismatch { index: 1 });
        assert_eq!(
            out.iter().map(Bytes::len).sum::<usize>(),
            65536,
            "only the first chunk, verified, was released"
        );
        // Reordering chunks breaks the chain; a wrong final signature too.
        let mut body = example_body();
        let last = body.len() - 4 - 64;
        body[last] = if body[last] == b'0' { b'1' } else { b'0' };
        assert!(matches!(
            decode(&body, 4096),
            Err(ChunkedBodyError::SignatureMismatch { index: 2 })
        ));
    }

    #[test]
    fn framing_errors_and_lengths() {
        let body = example_body();
        // Truncated: no final chunk.
        assert!(matches!(
            decode(&body[..body.len() - 90], 1000),
            Err(ChunkedBodyError::Truncated { .. })
        ));
        // Data after the final chunk.
        let mut trailing = body.clone();
        trailing.extend_from_slice(b"x");
        assert_eq!(decode(&trailing, 1000), Err(ChunkedBodyError::TrailingData));
        // A header without the signature, or with a bad size.
        for bad in [
            &b"10000\r\n"[..],
            b"zz;chunk-signature=00\r\n",
            &[b'1'; 200],
        ] {
            assert!(matches!(
                decode(bad, 1000),
                Err(ChunkedBodyError::MalformedHeader { index: 0 })
            ));
        }
        // Data not followed by CRLF.
        let mut no_crlf = body.clone();
        let at = format!("10000;chunk-signature={}\r\n", SIGNATURES[0]).len() + 65536;
        no_crlf[at] = b'x';
        assert_eq!(
            decode(&no_crlf, 1000),
            Err(ChunkedBodyError::MissingCrlf { index: 0 })
        );
        // More data than announced.
        let mut decoder = Decoder::new(example_verifier(), 100);
        assert_eq!(
            decoder.feed(Bytes::from(body), &mut VecDeque::new()),
            Err(ChunkedBodyError::TooLong { expected: 100 })
        );
    }
}
