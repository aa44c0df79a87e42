//! The request body the inner service receives.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use sha2::{Digest, Sha256};

use crate::budget::Reservation;
use crate::chunked::{ChunkedBodyError, Decoder};
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
        Replay {
            chunks: VecDeque<Bytes>,
            trailers: Option<HeaderMap>,
            remaining: u64,
            // The layer's budget for these chunks, given back once the inner
            // service has taken the last one (or the body is dropped).
            reservation: Option<Reservation>,
        },
        Chunked {
            #[pin] body: B,
            decoder: Box<Decoder>,
            ready: VecDeque<Bytes>,
            trailers: Option<HeaderMap>,
            released: u64,
            ended: bool,
            error: Option<ChunkedBodyError>,
        },
    }
}

/// The error of a [`SigV4Body`]: the original body's, or why a streaming
/// (`aws-chunked`) body was cut off.
#[derive(Debug)]
pub enum SigV4BodyError<E> {
    /// The original body failed.
    Body(E),
    /// A chunk of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body did not verify,
    /// or its framing is wrong: the body ends here.
    Chunked(ChunkedBodyError),
}

impl<E: fmt::Display> fmt::Display for SigV4BodyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Body(error) => error.fmt(f),
            Self::Chunked(error) => error.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for SigV4BodyError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Body(_) => None,
            Self::Chunked(error) => Some(error),
        }
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
                reservation: Some(buffered.reservation),
            },
        }
    }

    pub(crate) fn chunked(body: B, decoder: Decoder) -> Self {
        Self {
            kind: Kind::Chunked {
                body,
                decoder: Box::new(decoder),
                ready: VecDeque::new(),
                trailers: None,
                released: 0,
                ended: false,
                error: None,
            },
        }
    }

    /// The original body, when the layer did not read it (no body, or
    /// `UNSIGNED-PAYLOAD`): unwrapping it allocates nothing, so a service
    /// below can take the body it would have got without the layer (its
    /// errors are then the original body's, not wrapped in
    /// [`SigV4BodyError::Body`]).
    ///
    /// # Errors
    ///
    /// When the layer read and hashed the body (it replays the chunks), or
    /// decodes a streaming body: this body is given back.
    // The body comes back by value, as tower's and http-body-util's
    // `into_inner`s give theirs: boxing it would allocate on the very path
    // this is meant to keep free of allocations.
    #[allow(clippy::result_large_err)]
    pub fn into_inner(self) -> Result<B, Self> {
        match self.kind {
            Kind::Passthrough { body } => Ok(body),
            kind => Err(Self { kind }),
        }
    }

    /// Whether the layer read (and hashed) the body before passing it on.
    pub fn was_buffered(&self) -> bool {
        matches!(self.kind, Kind::Replay { .. })
    }

    /// Whether the body is a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` one, decoded
    /// and verified chunk by chunk as it is read.
    pub fn is_streaming(&self) -> bool {
        matches!(self.kind, Kind::Chunked { .. })
    }
}

fn chunk_refused(error: &ChunkedBodyError) {
    tracing::info!(
        layer = "sigv4",
        outcome = portcullis_core::trace::REFUSED,
        reason = portcullis_core::GatewayResponseType::BadRequestBody.as_str(),
        detail = "chunk_refused",
        %error,
        "streaming body cut off"
    );
    metrics::counter!("portcullis_sigv4_body_chunks_refused_total").increment(1);
}

impl<B> Body for SigV4Body<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = SigV4BodyError<B::Error>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(SigV4BodyError::Body))),
            KindProj::Chunked {
                mut body,
                decoder,
                ready,
                trailers,
                released,
                ended,
                error,
            } => loop {
                // Verified data first: a bad chunk after it ends the body
                // after it.
                if let Some(data) = ready.pop_front() {
                    *released += data.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(SigV4BodyError::Chunked(error))));
                }
                if *ended {
                    return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
                let outcome = match ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => decoder.feed(data, ready),
                        Err(frame) => {
                            if let Ok(more) = frame.into_trailers() {
                                match trailers {
                                    Some(existing) => existing.extend(more),
                                    None => *trailers = Some(more),
                                }
                            }
                            Ok(())
                        }
                    },
                    Some(Err(error)) => {
                        *ended = true;
                        trailers.take();
                        return Poll::Ready(Some(Err(SigV4BodyError::Body(error))));
                    }
                    None => {
                        *ended = true;
                        decoder.finish()
                    }
                };
                if let Err(refused) = outcome {
                    chunk_refused(&refused);
                    *ended = true;
                    trailers.take();
                    *error = Some(refused);
                }
            },
            KindProj::Replay {
                chunks,
                trailers,
                remaining,
                reservation,
            } => {
                if let Some(chunk) = chunks.pop_front() {
                    *remaining = remaining.saturating_sub(chunk.len() as u64);
                    if chunks.is_empty() {
                        // Every buffered byte is the inner service's now.
                        reservation.take();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                reservation.take();
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
            Kind::Chunked {
                ready,
                trailers,
                ended,
                error,
                ..
            } => *ended && ready.is_empty() && trailers.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Replay { remaining, .. } => SizeHint::with_exact(*remaining),
            Kind::Chunked {
                decoder, released, ..
            } => SizeHint::with_exact(decoder.expected().saturating_sub(*released)),
        }
    }
}

/// A body read to its end while hashing, with the budget its bytes hold.
#[derive(Debug)]
pub(crate) struct Buffered {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    len: u64,
    pub(crate) sha256: [u8; 32],
    reservation: Reservation,
}

/// Whether a body is known to be empty without reading it.
pub(crate) fn is_known_empty<B: Body>(body: &B) -> bool {
    body.is_end_stream() || body.size_hint().exact() == Some(0)
}

/// Reads `body` to its end, hashing each chunk as it arrives, refusing it once
/// it passes `limit` bytes.
///
/// Every byte kept is first reserved in `reservation`: the body's announced
/// size (its size hint's lower bound: all of a `Content-Length`) before a
/// byte is read, then each chunk beyond it as it arrives. A reservation that
/// does not fit refuses the request ([`SigV4Error::BodyBufferFull`]) and drops
/// what was read.
pub(crate) async fn read_and_hash<B>(
    body: B,
    limit: u64,
    mut reservation: Reservation,
) -> Result<Buffered, SigV4Error>
where
    B: Body<Data = Bytes>,
{
    let announced = body.size_hint().lower();
    if announced > limit {
        return Err(SigV4Error::RequestTooLarge);
    }
    reservation.grow_to(announced)?;
    let mut body = std::pin::pin!(body);
    let mut hasher = Sha256::new();
    let mut buffered = Buffered {
        chunks: VecDeque::new(),
        trailers: None,
        len: 0,
        sha256: [0; 32],
        reservation,
    };
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|_| SigV4Error::BodyRead)?;
        match frame.into_data() {
            Ok(data) => {
                buffered.len += data.len() as u64;
                if buffered.len > limit {
                    return Err(SigV4Error::RequestTooLarge);
                }
                buffered.reservation.grow_to(buffered.len)?;
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

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    #[test]
    fn into_inner_gives_back_a_passed_through_body() {
        let body = SigV4Body::passthrough(Full::new(Bytes::from_static(b"whole")));
        let inner = body.into_inner().expect("passed through");
        assert_eq!(inner.size_hint().exact(), Some(5));
    }

    #[tokio::test]
    async fn into_inner_keeps_a_body_the_layer_reads() {
        let budget = crate::budget::BodyBudget::new(1 << 20);
        let buffered = read_and_hash(
            Full::new(Bytes::from_static(b"hashed")),
            1024,
            budget.reservation(),
        )
        .await
        .expect("within the limits");
        let body = SigV4Body::<Full<Bytes>>::replay(buffered);
        let body = body.into_inner().expect_err("the layer read it");
        assert!(body.was_buffered());
    }
}
