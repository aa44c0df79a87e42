//! The response body of every Portcullis layer: the inner service's body, or
//! the rendered refusal.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// A response body that is either the inner service's body or the bytes of a
    /// gateway response.
    ///
    /// Every layer's `Response` is `http::Response<ResponseBody<B>>`, so that a
    /// layer can refuse a request without knowing how to build the inner
    /// service's body type. It adds no allocation to the inner body's path.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        // Boxed so that the refusal variant is no bigger than a pointer: with
        // a boxed inner body (axum's `Body`, `UnsyncBoxBody`) the whole
        // `ResponseBody` is then the inner body's size, so wrapping it makes
        // no response bigger to move on the admitted path. The box costs one
        // allocation per refusal, which already renders a body.
        Rejection { bytes: Option<Box<Bytes>> },
    }
}

impl<B> ResponseBody<B> {
    /// The inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// The body of a refusal.
    pub fn rejection(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Rejection {
                bytes: (!bytes.is_empty()).then(|| Box::new(bytes)),
            },
        }
    }

    /// Whether this is a refusal's body.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }

    /// Unwraps the body: `Ok` with the inner service's body, or `Err` with
    /// the bytes of a refusal (empty if the refusal has no body, or if they
    /// have already been read).
    ///
    /// A stack that erases body types can hand the inner body on as it is,
    /// instead of wrapping it (and boxing the wrapper) once per layer.
    pub fn into_inner(self) -> Result<B, Bytes> {
        match self.kind {
            Kind::Inner { body } => Ok(body),
            Kind::Rejection { bytes } => Err(bytes.map(|b| *b).unwrap_or_default()),
        }
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::inner(B::default())
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(*b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn both_kinds_yield_their_bytes() {
        let inner = ResponseBody::inner(Full::new(Bytes::from_static(b"inner")));
        assert!(!inner.is_rejection());
        assert_eq!(inner.size_hint().exact(), Some(5));
        let collected = inner.collect().await.expect("Full never fails").to_bytes();
        assert_eq!(collected, "inner");

        let rejection = ResponseBody::<Full<Bytes>>::rejection(Bytes::from_static(b"{}"));
        assert!(rejection.is_rejection());
        assert_eq!(rejection.size_hint().exact(), Some(2));
        let collected = rejection.collect().await.expect("never fails").to_bytes();
        assert_eq!(collected, "{}");

        let empty = ResponseBody::<Full<Bytes>>::rejection(Bytes::new());
        assert!(empty.is_end_stream());
    }

    #[test]
    fn wrapping_a_boxed_body_adds_no_size() {
        type Boxed = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
        assert_eq!(
            std::mem::size_of::<ResponseBody<Boxed>>(),
            std::mem::size_of::<Boxed>()
        );
    }

    #[test]
    fn into_inner_gives_back_the_inner_body_or_the_refusal_bytes() {
        let inner = ResponseBody::inner(Full::new(Bytes::from_static(b"inner")));
        let body = inner.into_inner().expect("an inner body unwraps to Ok");
        assert_eq!(body.size_hint().exact(), Some(5));

        let rejection = ResponseBody::<Full<Bytes>>::rejection(Bytes::from_static(b"{}"));
        assert_eq!(
            rejection.into_inner().err(),
            Some(Bytes::from_static(b"{}"))
        );

        let empty = ResponseBody::<Full<Bytes>>::rejection(Bytes::new());
        assert_eq!(empty.into_inner().err(), Some(Bytes::new()));
    }
}
