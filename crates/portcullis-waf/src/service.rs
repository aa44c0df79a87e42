//! [`Waf`], the service [`WafLayer`] builds, and its response future.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use portcullis_core::ResponseBody;
use portcullis_core::context::RequestContextExt;
use portcullis_core::future::ResponseFuture as Decided;
use portcullis_core::refusal::Refusal;
use portcullis_core::trace::Decision;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::body::WafBody;
use crate::engine::{CompiledAcl, RequestView, WafAction, WafOutcome};
use crate::refusal::WafRefusal;

use crate::layer::{Shared, WafLayer};
/// The service [`WafLayer`] builds.
#[derive(Clone, Debug)]
pub struct Waf<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S> Waf<S> {
    /// Wraps `inner` in the ACL of `layer`.
    pub fn new(inner: S, layer: &WafLayer) -> Self {
        layer.layer(inner)
    }

    /// A [`WafLayer`] for `acl` (tower-http's `Xxx::layer` shortcut).
    pub fn layer(acl: CompiledAcl) -> WafLayer {
        WafLayer::new(acl)
    }

    portcullis_core::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Waf<S>
where
    S: Service<Request<WafBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    ReqBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let span = portcullis_core::layer_span!("waf");
        let acl = self.shared.acl.load();
        if !acl.inspects_body() || request.body().is_end_stream() {
            let entered = span.enter();
            let start = Instant::now();
            let outcome = acl.evaluate(
                RequestView {
                    method: request.method(),
                    uri: request.uri(),
                    headers: request.headers(),
                    extensions: request.extensions(),
                    body: &[],
                    body_oversize: false,
                },
                &self.shared.env,
            );
            record_seconds(start);
            drop(entered);
            let request = request.map(WafBody::new);
            return ResponseFuture {
                state: finish(outcome, acl.name(), request, &mut self.inner, &span),
            };
        }
        // The body must be read first: take the ready service, leave a clone.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        ResponseFuture {
            state: State::Reading {
                reading: Some(Box::new(Reading {
                    service,
                    acl: arc_swap::Guard::into_inner(acl),
                    shared: self.shared.clone(),
                    parts,
                    body: Box::pin(body),
                    frames: VecDeque::new(),
                    seen: 0,
                    span,
                })),
            },
        }
    }
}

impl<S> Layer<S> for WafLayer {
    type Service = Waf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Waf {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// `portcullis_waf_decision_seconds`: the web ACL's evaluation of one
/// request (reading the body it inspects excluded).
fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_waf_decision_seconds").record(start.elapsed().as_secs_f64());
}

fn finish<S, ReqBody, ResBody>(
    outcome: WafOutcome,
    acl_name: &str,
    mut request: Request<WafBody<ReqBody>>,
    service: &mut S,
    span: &Span,
) -> State<S, S::Future, ReqBody, ResBody>
where
    S: Service<Request<WafBody<ReqBody>>, Response = Response<ResBody>>,
{
    let entered = span.enter();
    let terminating = outcome.terminating_rule().unwrap_or("Default_Action");
    match outcome.action() {
        WafAction::Block => {
            let refusal = WafRefusal::blocked(outcome.block.clone());
            let decision = refusal.decision();
            decision.record(span);
            tracing::info!(
                layer = "waf",
                outcome = decision.outcome().as_str(),
                reason = decision.reason(),
                detail = decision.detail(),
                acl = %acl_name,
                rule = %terminating,
                labels = ?outcome.labels(),
                "request blocked by the web ACL"
            );
            metrics::counter!("portcullis_waf_decisions_total", "outcome" => "refused", "reason" => "WAF_FILTERED").increment(1);
            let mut response = refusal.into_response(&request);
            response.extensions_mut().insert(outcome);
            State::Decided {
                future: Decided::answered(response),
            }
        }
        WafAction::Allow => {
            let decision = Decision::allowed();
            decision.record(span);
            tracing::debug!(
                layer = "waf",
                outcome = decision.outcome().as_str(),
                reason = decision.reason(),
                acl = %acl_name,
                rule = %terminating,
                labels = ?outcome.labels(),
                "request allowed by the web ACL"
            );
            metrics::counter!("portcullis_waf_decisions_total", "outcome" => "allowed", "reason" => "OK").increment(1);
            for (name, value) in &outcome.insert_headers {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            if !outcome.labels().is_empty() {
                let labels = request.request_context_mut().waf_labels_mut();
                outcome.labels().iter().for_each(|l| labels.add(l.clone()));
            }
            request.extensions_mut().insert(outcome);
            // The span covers the decision, not the inner service.
            drop(entered);
            State::Decided {
                future: Decided::inner(service.call(request)),
            }
        }
    }
}

struct Reading<S, B> {
    service: S,
    acl: Arc<CompiledAcl>,
    shared: Arc<Shared>,
    parts: http::request::Parts,
    body: Pin<Box<B>>,
    frames: VecDeque<Frame<Bytes>>,
    seen: usize,
    /// The layer's span, entered while the body is read and inspected.
    span: Span,
}

pin_project! {
    /// The response future of [`Waf`]. It is not boxed: decided in `call`
    /// (no body to inspect), it is `portcullis_core`'s
    /// [`ResponseFuture`](portcullis_core::future::ResponseFuture), the inner
    /// service's future run in place or the refusal; with a body to inspect
    /// it first reads up to the ACL's inspection limit (the reading state
    /// boxed, so the common future stays small), then decides.
    pub struct ResponseFuture<S, F, ReqBody, ResBody>
    where
        S: Service<Request<WafBody<ReqBody>>>,
    {
        #[pin]
        state: State<S, F, ReqBody, ResBody>,
    }
}

impl<S, F, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, F, ReqBody, ResBody>
where
    S: Service<Request<WafBody<ReqBody>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, ReqBody, ResBody>
    where
        S: Service<Request<WafBody<ReqBody>>>,
    {
        // Let through or refused: core's future.
        Decided { #[pin] future: Decided<F, ResBody, S::Error> },
        Reading { reading: Option<Box<Reading<S, ReqBody>>> },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, S::Future, ReqBody, ResBody>
where
    S: Service<Request<WafBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Decided { future } => return future.poll(cx),
                StateProj::Reading { reading } => {
                    let Some(r) = reading.as_mut() else {
                        return Poll::Pending;
                    };
                    let span = r.span.clone();
                    let entered = span.enter();
                    let limit = r.acl.body_inspection_limit();
                    let mut ended = false;
                    while r.seen <= limit {
                        match r.body.as_mut().poll_frame(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(None) => {
                                ended = true;
                                break;
                            }
                            Poll::Ready(Some(Ok(frame))) => {
                                if let Some(data) = frame.data_ref() {
                                    r.seen += data.len();
                                }
                                r.frames.push_back(frame);
                            }
                            Poll::Ready(Some(Err(_))) => {
                                let Some(r) = reading.take() else {
                                    return Poll::Pending;
                                };
                                let refusal = WafRefusal::unreadable_body();
                                let decision = refusal.decision();
                                decision.record(&span);
                                tracing::info!(
                                    layer = "waf",
                                    outcome = decision.outcome().as_str(),
                                    reason = decision.reason(),
                                    detail = decision.detail(),
                                    "request body failed while the WAF read it"
                                );
                                metrics::counter!("portcullis_waf_decisions_total", "outcome" => "refused", "reason" => "BAD_REQUEST_BODY").increment(1);
                                let request = Request::from_parts(r.parts, ());
                                return Poll::Ready(Ok(refusal.into_response(&request)));
                            }
                        }
                    }
                    let Some(r) = reading.take() else {
                        return Poll::Pending;
                    };
                    let Reading {
                        mut service,
                        acl,
                        shared,
                        parts,
                        body,
                        frames,
                        seen,
                        span: _,
                    } = *r;
                    let start = Instant::now();
                    let outcome = {
                        let inspected = inspected_bytes(&frames, limit);
                        acl.evaluate(
                            RequestView {
                                method: &parts.method,
                                uri: &parts.uri,
                                headers: &parts.headers,
                                extensions: &parts.extensions,
                                body: &inspected,
                                body_oversize: seen > limit,
                            },
                            &shared.env,
                        )
                    };
                    record_seconds(start);
                    let body = WafBody::replay(frames, (!ended).then_some(body));
                    let request = Request::from_parts(parts, body);
                    drop(entered);
                    finish(outcome, acl.name(), request, &mut service, &span)
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// The first `limit` bytes of the data frames read, borrowed when a single
/// frame holds them.
fn inspected_bytes(frames: &VecDeque<Frame<Bytes>>, limit: usize) -> std::borrow::Cow<'_, [u8]> {
    let mut data = frames.iter().filter_map(Frame::data_ref);
    let first = data.next();
    match (first, data.next()) {
        (None, _) => std::borrow::Cow::Borrowed(&[][..]),
        (Some(only), None) => std::borrow::Cow::Borrowed(&only[..only.len().min(limit)]),
        _ => {
            let mut out = Vec::with_capacity(limit);
            for chunk in frames.iter().filter_map(Frame::data_ref) {
                let room = limit - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if out.len() == limit {
                    break;
                }
            }
            std::borrow::Cow::Owned(out)
        }
    }
}
