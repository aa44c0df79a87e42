//! The `Jwt` service.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use portcullis_core::ResponseBody;
use portcullis_core::context::RequestContextExt;
use portcullis_core::refusal::Refusal;
use portcullis_core::trace::{self, Decision as Traced};
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::claims::Verified;
use crate::engine::{Shared, Step};
use crate::policy::RoutePolicy;
use crate::reject::JwtRefusal;
use crate::store::SharedFetch;
use portcullis_core::future::ResponseFuture;

/// The service [`JwtLayer`](crate::JwtLayer) wraps around an inner service.
#[derive(Clone, Debug)]
pub struct Jwt<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: Arc<RoutePolicy>,
}

enum Decision {
    Allow(Arc<Verified>),
    Reject(JwtRefusal),
    Wait(SharedFetch),
}

impl<S> Jwt<S> {
    portcullis_core::inner_service_accessors!();
}

fn decide<B>(
    shared: &Shared,
    policy: &RoutePolicy,
    request: &Request<B>,
    allow_fetch: bool,
) -> Decision {
    let token =
        match shared
            .source
            .extract(request.headers(), request.uri(), shared.max_token_bytes)
        {
            Ok(Some(token)) => token,
            Ok(None) => return Decision::Reject(JwtRefusal::MissingToken),
            Err(reason) => return Decision::Reject(reason),
        };
    match shared.verify_token(&token, allow_fetch) {
        Step::Done(Ok(verified)) => match policy.check(&verified.caller, &verified.claims) {
            Ok(()) => Decision::Allow(verified),
            Err(reason) => Decision::Reject(reason),
        },
        Step::Done(Err(reason)) => Decision::Reject(reason),
        Step::Wait(fetch) if allow_fetch => Decision::Wait(fetch),
        Step::Wait(_) => Decision::Reject(JwtRefusal::KeysUnavailable),
    }
}

/// `portcullis_jwt_decision_seconds`: from the request's arrival to the
/// decision (a key fetch it waited for included).
fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_jwt_decision_seconds").record(start.elapsed().as_secs_f64());
}

fn allow<B>(request: &mut Request<B>, verified: &Verified, span: &Span) {
    let decision = Traced::allowed();
    decision.record(span);
    trace::record_principal(span, verified.caller.principal());
    tracing::trace!(
        layer = "jwt",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        principal = verified.caller.principal()
    );
    metrics::counter!("portcullis_jwt_decisions_total", "outcome" => "allowed", "reason" => "OK")
        .increment(1);
    request
        .request_context_mut()
        .set_caller(verified.caller.clone());
}

fn reject<B, ResBody>(
    request: &Request<B>,
    reason: JwtRefusal,
    span: &Span,
) -> Response<ResponseBody<ResBody>> {
    let decision = Refusal::decision(&reason);
    let kind = decision.reason();
    decision.record(span);
    tracing::debug!(
        layer = "jwt",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        "request refused"
    );
    metrics::counter!("portcullis_jwt_decisions_total", "outcome" => "refused", "reason" => kind)
        .increment(1);
    reason.into_response(request)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Jwt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let span = portcullis_core::layer_span!("jwt");
        let entered = span.enter();
        match decide(&self.shared, &self.policy, &request, true) {
            Decision::Allow(verified) => {
                allow(&mut request, &verified, &span);
                record_seconds(start);
                // The span covers the decision, not the inner service.
                drop(entered);
                ResponseFuture::inner(self.inner.call(request))
            }
            Decision::Reject(reason) => {
                let response = reject(&request, reason, &span);
                record_seconds(start);
                ResponseFuture::answered(response)
            }
            Decision::Wait(fetch) => {
                drop(entered);
                // Keep the service that was made ready; hand the future a clone
                // (tower's "be careful when cloning inner services").
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = self.shared.clone();
                let policy = self.policy.clone();
                ResponseFuture::waiting(Box::pin(async move {
                    fetch.instrument(span.clone()).await;
                    let refusal = {
                        let _entered = span.enter();
                        let decision = decide(&shared, &policy, &request, false);
                        record_seconds(start);
                        match decision {
                            Decision::Allow(verified) => {
                                allow(&mut request, &verified, &span);
                                None
                            }
                            Decision::Reject(reason) => Some(reject(&request, reason, &span)),
                            Decision::Wait(_) => {
                                Some(reject(&request, JwtRefusal::KeysUnavailable, &span))
                            }
                        }
                    };
                    // The span covers the decision, not the inner service.
                    drop(span);
                    match refusal {
                        Some(response) => Ok(response),
                        None => inner
                            .call(request)
                            .await
                            .map(|response| response.map(ResponseBody::inner)),
                    }
                }))
            }
        }
    }
}
