//! The request body the inner service receives: the bytes the WAF read for
//! inspection, replayed unchanged, then the rest of the original body.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's request body.
    ///
    /// When no rule inspects the body it is the original body, untouched and
    /// unboxed. When rules inspect it, the frames read for inspection (up to the
    /// inspection limit) come first, exactly as they arrived, followed by the
    /// rest of the original body: the inner service always sees the whole,
    /// unchanged body.
    #[derive(Debug)]
    pub struct WafBody<B> {
        prefix: VecDeque<Frame<Bytes>>,
        #[pin]
        rest: Rest<B>,
    }
}

pin_project! {
    #[project = RestProj]
    #[derive(Debug)]
    enum Rest<B> {
        Direct { #[pin] body: B },
        Boxed { body: Pin<Box<B>> },
        Done,
    }
}

impl<B> WafBody<B> {
    /// The original body, passed through.
    pub fn new(body: B) -> Self {
        Self {
            prefix: VecDeque::new(),
            rest: Rest::Direct { body },
        }
    }

    /// The original body, when the WAF read none of it (no rule inspects
    /// the body, or the request has none): unwrapping it allocates nothing,
    /// so a service below can take the body it would have got without the
    /// WAF. `Err` gives this body back when it replays frames the WAF read.
    ///
    /// # Errors
    ///
    /// When the WAF read some of the body: the frames it read come first,
    /// so only this body yields the whole of it.
    pub fn into_inner(self) -> Result<B, Self> {
        match self.rest {
            Rest::Direct { body } if self.prefix.is_empty() => Ok(body),
            rest => Err(Self {
                prefix: self.prefix,
                rest,
            }),
        }
    }

    /// Frames already read, then the rest of the body (or nothing, if the body
    /// ended).
    pub(crate) fn replay(prefix: VecDeque<Frame<Bytes>>, rest: Option<Pin<Box<B>>>) -> Self {
        Self {
            prefix,
            rest: match rest {
                Some(body) => Rest::Boxed { body },
                None => Rest::Done,
            },
        }
    }
}

impl<B> Body for WafBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Some(frame) = this.prefix.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match this.rest.project() {
            RestProj::Direct { body } => body.poll_frame(cx),
            RestProj::Boxed { body } => body.as_mut().poll_frame(cx),
            RestProj::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty()
            && match &self.rest {
                Rest::Direct { body } => body.is_end_stream(),
                Rest::Boxed { body } => body.is_end_stream(),
                Rest::Done => true,
            }
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .prefix
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let rest = match &self.rest {
            Rest::Direct { body } => body.size_hint(),
            Rest::Boxed { body } => body.size_hint(),
            Rest::Done => SizeHint::with_exact(0),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + buffered);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};

    use super::*;

    #[test]
    fn into_inner_gives_back_a_body_the_waf_did_not_read() {
        let body = WafBody::new(Full::new(Bytes::from_static(b"whole")));
        let inner = body.into_inner().expect("nothing was read");
        assert_eq!(inner.size_hint().exact(), Some(5));
    }

    #[tokio::test]
    async fn into_inner_keeps_a_body_that_replays_what_the_waf_read() {
        let read = VecDeque::from([Frame::data(Bytes::from_static(b"read "))]);
        let rest = Box::pin(Full::new(Bytes::from_static(b"rest")));
        let body = WafBody::replay(read, Some(rest));
        let body = body.into_inner().expect_err("frames were read");
        let bytes = body.collect().await.expect("no error").to_bytes();
        assert_eq!(&bytes[..], b"read rest");
    }
}
