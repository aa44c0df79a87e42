//! `CustomAuthorizer`: the service [`AuthorizerLayer`](crate::AuthorizerLayer)
//! builds, and its call.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use portcullis_core::ResponseBody;
pub use portcullis_core::future::ResponseFuture;
use portcullis_core::path::CanonicalPath;
use tower_service::Service;
use tracing::Instrument;

use crate::authorizer::Authorizer;
use crate::cache::{Cache, Lookup, Outcome};
use crate::config::{Config, Identity};
use portcullis_core::refusal::Refusal as _;

use crate::decision::{AuthorizerRefusal, apply, prepare, refuse};

/// The service [`AuthorizerLayer`](crate::AuthorizerLayer) builds.
pub struct CustomAuthorizer<S, A> {
    pub(crate) inner: S,
    pub(crate) authorizer: Arc<A>,
    pub(crate) config: Arc<Config>,
    pub(crate) cache: Option<Arc<Cache>>,
}

impl<S: Clone, A> Clone for CustomAuthorizer<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            authorizer: self.authorizer.clone(),
            config: self.config.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<S: fmt::Debug, A> fmt::Debug for CustomAuthorizer<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomAuthorizer")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, A> CustomAuthorizer<S, A> {
    portcullis_core::inner_service_accessors!();
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for CustomAuthorizer<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    A: Authorizer,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let span = portcullis_core::layer_span!("authorizer");
        let entered = span.enter();
        let (mut parts, body) = request.into_parts();
        let config = &*self.config;
        // The method ARN, the REQUEST event's path and `$context.path` all
        // read the one canonical path. `Uri` clones share its bytes, so this
        // borrows from the clone without copying the path while `parts` is
        // changed below.
        let uri = parts.uri.clone();
        let path = match CanonicalPath::of_uri(&uri) {
            Ok(path) => path,
            Err(path) => {
                let refusal = refuse(AuthorizerRefusal::NonCanonicalPath(path), start, &span);
                return ResponseFuture::answered(refusal.into_response_parts(&parts));
            }
        };
        let source_ip = config
            .resolver
            .resolve_parts(&parts.headers, &parts.extensions);
        // Only REQUEST authorizers can name the source IP as text.
        let source_ip_text = match config.identity {
            Identity::Request { .. } => source_ip.map(|ip| ip.to_string()),
            Identity::Token { .. } => None,
        };

        let key = match config.read_identity(&parts, source_ip_text.as_deref(), &path) {
            Ok(identity) => self.cache.as_ref().map(|cache| cache.key(identity.iter())),
            Err(refusal) => {
                let refusal = refuse(refusal, start, &span);
                return ResponseFuture::answered(refusal.into_response_parts(&parts));
            }
        };
        let slot = match (&self.cache, key) {
            (Some(cache), Some(key)) => match cache.lookup(&key, config.clock.now_unix_nanos()) {
                Lookup::Hit(prepared) => {
                    let outcome: Outcome = Ok(prepared);
                    let applied =
                        apply(&outcome, &path, &mut parts, config, source_ip, start, &span);
                    // The span covers the decision, not the inner service.
                    drop(entered);
                    return match applied {
                        Ok(()) => {
                            ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
                        }
                        Err(refusal) => {
                            ResponseFuture::answered(refusal.into_response_parts(&parts))
                        }
                    };
                }
                Lookup::Miss(slot) => Some((cache.clone(), key, slot)),
            },
            _ => None,
        };

        // Read again (it was valid a moment ago) to build the event: the miss
        // path pays for this and for the method ARN, the hit path above does
        // not.
        let method_arn = config.arns.resource(parts.method.as_str(), &path);
        let event = match config.read_identity(&parts, source_ip_text.as_deref(), &path) {
            Ok(identity) => config.event(
                &parts,
                &path,
                method_arn,
                &identity,
                source_ip_text.as_deref(),
            ),
            Err(refusal) => {
                let refusal = refuse(refusal, start, &span);
                return ResponseFuture::answered(refusal.into_response_parts(&parts));
            }
        };
        drop(entered);
        let path = path.into_owned();
        let authorizer = self.authorizer.clone();
        let config = self.config.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = async move {
            let call =
                async { prepare(authorizer.authorize(event).await) }.instrument(span.clone());
            let outcome = match &slot {
                Some((cache, key, slot)) => {
                    let ttl = cache.ttl_nanos();
                    let clock = config.clock.clone();
                    let outcome = slot
                        .get_or_init(move || clock.now_unix_nanos().saturating_add(ttl), call)
                        .await;
                    if outcome.is_err() {
                        cache.forget(key, slot);
                    }
                    outcome
                }
                None => call.await,
            };
            let applied = {
                let _entered = span.enter();
                apply(
                    &outcome, &path, &mut parts, &config, source_ip, start, &span,
                )
            };
            // The span covers the decision, not the inner service.
            drop(span);
            match applied {
                Ok(()) => inner
                    .call(Request::from_parts(parts, body))
                    .await
                    .map(|response| response.map(ResponseBody::inner)),
                Err(refusal) => Ok(refusal.into_response_parts(&parts)),
            }
        };
        ResponseFuture::waiting(Box::pin(future))
    }
}
