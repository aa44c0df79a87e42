//! The request body the inner service receives.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use sha2::{Digest, Sha256};

use crate::error::SigV4Error;

pin_project! {
    /// The request body handed to the inner service: the original body,
    /// untouched, when the layer did not need to read it (no body, or
    /// `UNSIGNED-PAYLOAD`), or the chunks the layer read while hashing it,
    /// replayed as they came, with the trailers.
    ///
    /// The chunks are the original `Bytes`, not copies: the body is read once,
    /// never concatenated and never buffered twice.
    #[derive(Debug)]
    pub struct SigV4Body<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Passthrough { #[pin] body: B },
        Replay { chunks: VecDeque<Bytes>, trailers: Option<HeaderMap>, remaining: u64 },
    }
}

impl<B> SigV4Body<B> {
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Passthrough { body },
        }
    }

    pub(crate) fn replay(buffered: Buffered) -> Self {
        Self {
            kind: Kind::Replay {
                remaining: buffered.len,
                chunks: buffered.chunks,
                trailers: buffered.trailers,
            },
        }
    }

    /// Whether the layer read (and hashed) the body before passing it on.
    pub fn was_buffered(&self) -> bool {
        matches!(self.kind, Kind::Replay { .. })
    }
}

impl<B> Body for SigV4Body<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => body.poll_frame(cx),
            KindProj::Replay {
                chunks,
                trailers,
                remaining,
            } => {
                if let Some(chunk) = chunks.pop_front() {
                    *remaining = remaining.saturating_sub(chunk.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Replay {
                chunks, trailers, ..
            } => chunks.is_empty() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Replay { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

/// A body read to its end while hashing.
#[derive(Debug, Default)]
pub(crate) struct Buffered {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    len: u64,
    pub(crate) sha256: [u8; 32],
}

/// Whether a body is known to be empty without reading it.
pub(crate) fn is_known_empty<B: Body>(body: &B) -> bool {
    body.is_end_stream() || body.size_hint().exact() == Some(0)
}

/// Reads `body` to its end, hashing each chunk as it arrives, refusing it once
/// it passes `limit` bytes.
pub(crate) async fn read_and_hash<B>(body: B, limit: u64) -> Result<Buffered, SigV4Error>
where
    B: Body<Data = Bytes>,
{
    if body.size_hint().lower() > limit {
        return Err(SigV4Error::RequestTooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut hasher = Sha256::new();
    let mut buffered = Buffered::default();
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|_| SigV4Error::BodyRead)?;
        match frame.into_data() {
            Ok(data) => {
                buffered.len += data.len() as u64;
                if buffered.len > limit {
                    return Err(SigV4Error::RequestTooLarge);
                }
                hasher.update(&data);
                if !data.is_empty() {
                    buffered.chunks.push_back(data);
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    match &mut buffered.trailers {
                        Some(existing) => existing.extend(trailers),
                        None => buffered.trailers = Some(trailers),
                    }
                }
            }
        }
    }
    buffered.sha256 = hasher.finalize().into();
    Ok(buffered)
}
