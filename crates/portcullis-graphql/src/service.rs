//! [`AppSyncAuth`], the service [`AppSyncAuthLayer`](crate::AppSyncAuthLayer) builds, and
//! [`ModeTerminal`], the end of each mode's stack, with the settings they share
//! and the records of the layer's decision.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use portcullis_core::clock::{Clock, SharedClock};
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{ApiKeyContext, Caller};
use portcullis_core::refusal::Refusal;
use portcullis_core::trace::{self, Decision};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_service::Service;
use tracing::Span;

use crate::body::{BoxBody, BoxError, box_request};
use crate::mode::{AuthMode, AuthModes, select_mode};
use crate::response::AppSyncRefusal;
use crate::rules::RequestAuth;

pub(crate) type ModeService = BoxCloneSyncService<Request<BoxBody>, Response<BoxBody>, Infallible>;
pub(crate) type ModeFactory = Arc<dyn Fn(ModeTerminal) -> ModeService + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) default_mode: AuthMode,
    pub(crate) modes: Vec<(AuthMode, ModeFactory)>,
    pub(crate) key_expiry: HashMap<String, OffsetDateTime>,
    pub(crate) clock: SharedClock,
}

/// Marks a response that came from the service behind a mode's layer, not
/// from the layer's refusal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reached;

/// When [`AppSyncAuth`] received the request, and its span: the mode's
/// verdict is timed from it and recorded on it, where the verdict is known
/// ([`ModeTerminal`] for an allowed request).
#[derive(Clone, Debug)]
pub(crate) struct DecisionStart(pub(crate) Instant, pub(crate) Span);

/// `portcullis_graphql_decision_seconds`: from the request's arrival to the
/// verdict (the mode's layer included, the resolvers not).
pub(crate) fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_graphql_decision_seconds")
        .record(start.elapsed().as_secs_f64());
}

/// A refusal's span, counter and duration.
pub(crate) fn record_refusal(start: Instant, span: &Span, refusal: &AppSyncRefusal) {
    refusal.decision().record(span);
    record_seconds(start);
    metrics::counter!("portcullis_graphql_decisions_total", "outcome" => "refused", "reason" => "UNAUTHORIZED").increment(1);
}

/// AppSync's 401 for `refusal`, with the refusal in its extensions.
///
/// AppSync has no gateway responses to override its 401 and no gRPC, so the
/// refusal is rendered the same for every request (the request itself is
/// gone by the time the mode's layer has answered).
pub(crate) fn refuse(refusal: AppSyncRefusal) -> Response<BoxBody> {
    refusal
        .into_response::<(), BoxBody>(&Request::new(()))
        .map(|body| match body.into_inner() {
            Ok(body) => body,
            Err(bytes) => http_body_util::Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
        })
}

/// The service [`AppSyncAuthLayer`](crate::AppSyncAuthLayer) builds.
#[derive(Clone)]
pub struct AppSyncAuth {
    pub(crate) accepted: AuthModes,
    pub(crate) modes: Arc<Vec<(AuthMode, ModeService)>>,
}

impl fmt::Debug for AppSyncAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSyncAuth")
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for AppSyncAuth
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each mode's service is cloned and driven to readiness in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let start = Instant::now();
        // The mode's own layer opens its span beside this one: this one is
        // not entered while the mode's layer runs.
        let span = portcullis_core::layer_span!("graphql", mode = tracing::field::Empty);
        let mode = match select_mode(request.headers(), self.accepted) {
            Ok(mode) => mode,
            Err(why) => {
                let _entered = span.enter();
                let refusal = AppSyncRefusal::NoMode(why);
                let decision = refusal.decision();
                tracing::info!(
                    layer = "graphql",
                    outcome = decision.outcome().as_str(),
                    reason = decision.reason(),
                    detail = ?why,
                    "no authorization mode"
                );
                record_refusal(start, &span, &refusal);
                return Box::pin(async { Ok(refuse(refusal)) });
            }
        };
        if !span.is_disabled() {
            span.record("mode", mode.as_str());
        }
        let Some(service) = self
            .modes
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, s)| s.clone())
        else {
            let refusal = AppSyncRefusal::ModeNotConfigured;
            record_refusal(start, &span, &refusal);
            return Box::pin(async { Ok(refuse(refusal)) });
        };
        let mut request = box_request(request);
        request
            .extensions_mut()
            .insert(DecisionStart(start, span.clone()));
        let answer = service.oneshot(request);
        Box::pin(async move {
            let response = answer.await?;
            let was_refused = response.extensions().get::<Reached>().is_none()
                && matches!(
                    response.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                );
            if was_refused {
                let _entered = span.enter();
                let refusal = response
                    .extensions()
                    .get::<AppSyncRefusal>()
                    .cloned()
                    .unwrap_or(AppSyncRefusal::ModeRefused);
                if let AppSyncRefusal::ApiKeyExpired { key_id } = &refusal {
                    trace::record_key_id(&span, key_id);
                }
                let decision = refusal.decision();
                tracing::info!(
                    layer = "graphql",
                    outcome = decision.outcome().as_str(),
                    reason = decision.reason(),
                    detail = decision.detail(),
                    mode = mode.as_str(),
                    status = response.status().as_u16(),
                    "the mode's layer refused the credentials"
                );
                record_refusal(start, &span, &refusal);
                return Ok(refuse(refusal));
            }
            if response.extensions().get::<Reached>().is_none() {
                // The mode's layer answered itself (not with 401 or 403): its
                // verdict came with its answer.
                record_seconds(start);
            }
            metrics::counter!("portcullis_graphql_decisions_total", "outcome" => "allowed", "reason" => "OK").increment(1);
            Ok(response)
        })
    }
}

/// What a mode's layer wraps: it records the mode and the caller the layer
/// established as a [`RequestAuth`], checks API-key expiry, and calls the
/// service behind [`AppSyncAuthLayer`](crate::AppSyncAuthLayer).
#[derive(Clone)]
pub struct ModeTerminal {
    pub(crate) mode: AuthMode,
    pub(crate) inner: ModeService,
    pub(crate) settings: Arc<Settings>,
}

impl fmt::Debug for ModeTerminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModeTerminal")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for ModeTerminal
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut request = box_request(request);
        let caller = request.caller().cloned();
        let key = request.api_key().cloned();
        let mut auth = RequestAuth::new(self.mode);
        // Why the request is refused here, if it is.
        let mut refusal = AppSyncRefusal::NoCaller;
        let established = match self.mode {
            AuthMode::ApiKey => match key {
                Some(key) => {
                    let expired = self
                        .settings
                        .key_expiry
                        .get(key.key_id())
                        .is_some_and(|expires| self.settings.clock.now() >= *expires);
                    if expired {
                        refusal = AppSyncRefusal::ApiKeyExpired {
                            key_id: key.key_id().to_owned(),
                        };
                        let decision = refusal.decision();
                        tracing::info!(
                            layer = "graphql",
                            outcome = decision.outcome().as_str(),
                            reason = decision.reason(),
                            detail = decision.detail(),
                            key_id = key.key_id(),
                            "API key expired"
                        );
                        false
                    } else {
                        auth = auth.with_api_key(key);
                        true
                    }
                }
                None => false,
            },
            _ => match caller {
                Some(caller) => {
                    auth = auth.with_caller(caller);
                    true
                }
                None => false,
            },
        };
        // Taken out: the span must not live on with the request in the
        // inner service.
        let (start, decision_span) = match request.extensions_mut().remove::<DecisionStart>() {
            Some(DecisionStart(start, span)) => (Some(start), span),
            None => (None, Span::none()),
        };
        if !established {
            // Fail closed: the mode's layer let the request through without
            // saying who made it (or the key has expired). The span is
            // recorded by the layer, which sees this answer and its reason.
            return Box::pin(async move { Ok(refuse(refusal)) });
        }
        if let Some(start) = start {
            record_seconds(start);
        }
        let decision = Decision::allowed();
        decision.record(&decision_span);
        if let Some(key) = auth.api_key() {
            trace::record_key_id(&decision_span, key.key_id());
        }
        if let Some(caller) = auth.caller() {
            trace::record_principal(&decision_span, caller.principal());
        }
        let _entered = decision_span.enter();
        tracing::debug!(
            layer = "graphql",
            outcome = decision.outcome().as_str(),
            reason = decision.reason(),
            mode = self.mode.as_str(),
            key_id = auth.api_key().map(ApiKeyContext::key_id),
            principal = auth.caller().map(Caller::principal),
            "authorization mode established the caller"
        );
        drop(_entered);
        drop(decision_span);
        // Reads the inner service's readiness from `poll_ready` above.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        request.extensions_mut().insert(auth);
        Box::pin(async move {
            let mut response = ready.call(request).await?;
            response.extensions_mut().insert(Reached);
            Ok(response)
        })
    }
}
