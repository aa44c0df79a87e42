//! [`ApiKey`], the service [`ApiKeyLayer`] builds.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use portcullis_core::ResponseBody;
use portcullis_core::context::RequestContextExt;
use portcullis_core::refusal::Refusal;
use tower_layer::Layer;
use tower_service::Service;

use crate::decision::{Shared, record_accept, record_seconds};
use crate::future::ResponseFuture;
use crate::layer::ApiKeyLayer;
use crate::refusal::record_refusal;
use crate::store::{ApiKeyStore, InMemoryApiKeyStore};

impl<S, St> Layer<S> for ApiKeyLayer<St> {
    type Service = ApiKey<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKey {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`ApiKeyLayer`] builds.
#[derive(Debug)]
pub struct ApiKey<S, St = InMemoryApiKeyStore> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<St>>,
}

impl<S: Clone, St> Clone for ApiKey<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, St: ApiKeyStore> ApiKey<S, St> {
    /// The layer over `store` for the stage `stage` of the API `api_id`: the
    /// same as [`ApiKeyLayer::with_store`].
    pub fn layer(
        store: Arc<St>,
        api_id: impl Into<String>,
        stage: impl Into<String>,
    ) -> ApiKeyLayer<St> {
        ApiKeyLayer::with_store(store, api_id, stage)
    }
}

impl<S, St> ApiKey<S, St> {
    portcullis_core::inner_service_accessors!();
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for ApiKey<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: ApiKeyStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let span = portcullis_core::layer_span!("api_key");
        let entered = span.enter();
        let shared = &*self.shared;
        let digest = match shared.presented(&request) {
            Ok(digest) => digest,
            Err(refusal) => {
                record_refusal(refusal, &span);
                record_seconds(start);
                return ResponseFuture::answered(refusal.into_response(&request));
            }
        };
        match shared
            .store
            .lookup_now(&digest, |found| shared.decide(&digest, found, &span))
        {
            Some(Ok(context)) => {
                record_accept(&context, &span);
                record_seconds(start);
                request.request_context_mut().set_api_key(context);
                // The span covers the decision, not the inner service.
                drop(entered);
                ResponseFuture::inner(self.inner.call(request))
            }
            Some(Err(refusal)) => {
                record_refusal(refusal, &span);
                record_seconds(start);
                ResponseFuture::answered(refusal.into_response(&request))
            }
            None => {
                drop(entered);
                // The store must be awaited: keep the ready service for this
                // request and leave a fresh clone in its place (tower's "be
                // careful when cloning inner services").
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let lookup = shared.store.lookup(&digest);
                ResponseFuture::lookup(lookup, request, ready, self.shared.clone(), digest, span)
            }
        }
    }
}
