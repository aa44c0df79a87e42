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
