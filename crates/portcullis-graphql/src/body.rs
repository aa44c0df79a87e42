//! The body type the layer hands on and answers with, and the boxing of
//! requests' and responses' bodies into it.

use std::fmt;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// The error type of boxed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the layer hands on and answers with.
pub type BoxBody = UnsyncBoxBody<Bytes, BodyError>;

/// The error of a [`BoxBody`]: the wrapped body's error, boxed.
#[derive(Debug)]
pub struct BodyError(pub BoxError);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

pub(crate) fn box_response<B>(response: Response<B>) -> Response<BoxBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|body| body.map_err(|e| BodyError(e.into())).boxed_unsync())
}

pub(crate) fn box_request<B>(request: Request<B>) -> Request<BoxBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    request.map(|body| body.map_err(|e| BodyError(e.into())).boxed_unsync())
}
