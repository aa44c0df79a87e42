//! The verdict: the authorizer's answer made ready for reuse, applied to a
//! request (policy evaluated, caller in its extensions) or refused, with its
//! event, counter and duration.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use portcullis_core::context::{AuthMethod, Caller, UsageIdentifierKey};
use portcullis_core::response::messages;
use portcullis_core::trace::{self, Decision as Traced};
use portcullis_core::{GatewayResponse, GatewayResponseType};
use portcullis_iam::{Decision, RequestContext};
use tracing::Span;

use crate::authorizer::AuthorizerError;
use crate::cache::{DecisionMemo, Outcome, Prepared};
use crate::config::{AUTHORIZER_DENIED_EXPLICIT, Config};
use crate::event::AuthorizerResponse;

/// A refusal before the authorizer answered.
pub(crate) fn refuse(
    kind: GatewayResponseType,
    reason: &'static str,
    start: Instant,
    span: &Span,
) -> GatewayResponse {
    record(reason, kind, None, start, span);
    GatewayResponse::new(kind)
}

/// A refusal's event (with its `detail`, and the principal the authorizer
/// named, if it answered), counter (by the gateway response it gets) and
/// duration.
pub(crate) fn record(
    detail: &'static str,
    kind: GatewayResponseType,
    principal: Option<&str>,
    start: Instant,
    span: &Span,
) {
    record_seconds(start);
    let decision = Traced::refused(kind).with_detail(detail);
    decision.record(span);
    if let Some(principal) = principal {
        trace::record_principal(span, principal);
    }
    tracing::debug!(
        layer = "authorizer",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail,
        principal,
        "custom authorizer decision"
    );
    metrics::counter!(
        "portcullis_authorizer_decisions_total",
        "outcome" => "refused",
        "reason" => kind.as_str()
    )
    .increment(1);
}

/// `portcullis_authorizer_decision_seconds`: from the request's arrival to
/// the verdict (a call to the authorizer it waited for included).
pub(crate) fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_authorizer_decision_seconds")
        .record(start.elapsed().as_secs_f64());
}

/// Checks an answer and makes it ready for reuse.
pub(crate) fn prepare(answer: Result<AuthorizerResponse, AuthorizerError>) -> Outcome {
    let answer = answer?;
    answer.validate().map_err(AuthorizerError::Malformed)?;
    let principal_id: Arc<str> = answer.principal_id.into();
    let caller =
        Caller::new(principal_id.clone(), AuthMethod::CustomAuthorizer).with_claims(answer.context);
    let memo = DecisionMemo::for_policy(&answer.policy_document);
    Ok(Arc::new(Prepared {
        principal_id,
        policy: answer.policy_document,
        caller,
        usage_key: answer.usage_identifier_key.map(UsageIdentifierKey::new),
        memo,
    }))
}

/// Applies an outcome to a request: on Allow, the caller goes into its
/// extensions; otherwise the refusal.
pub(crate) fn apply(
    outcome: &Outcome,
    path: &str,
    parts: &mut Parts,
    config: &Config,
    source_ip: Option<std::net::IpAddr>,
    start: Instant,
    span: &Span,
) -> Result<(), Refusal> {
    let prepared = match outcome {
        Ok(prepared) => prepared,
        Err(AuthorizerError::Unauthorized) => {
            record(
                "authorizer_unauthorized",
                GatewayResponseType::Unauthorized,
                None,
                start,
                span,
            );
            return Err(Refusal::Unauthorized);
        }
        Err(error) => {
            tracing::warn!(
                layer = "authorizer",
                outcome = trace::REFUSED,
                reason = GatewayResponseType::AuthorizerFailure.as_str(),
                detail = error.as_str(),
                %error,
                "custom authorizer failed"
            );
            record(
                error.as_str(),
                GatewayResponseType::AuthorizerFailure,
                None,
                start,
                span,
            );
            return Err(Refusal::Failure);
        }
    };
    let memo = prepared.memo.as_ref();
    let memoised = memo.and_then(|memo| memo.get(config.id, &parts.method, path));
    let decision = if let Some(decision) = memoised {
        decision
    } else {
        let method_arn = config.arns.resource(parts.method.as_str(), path);
        let mut ctx = RequestContext::new(&*prepared.principal_id, &method_arn)
            .with_source_ip(source_ip)
            .with_current_time(config.clock.now())
            .with_secure_transport(parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS));
        if let Some(agent) = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            ctx = ctx.with_user_agent(agent);
        }
        let decision = prepared.policy.evaluate(&ctx);
        if let Some(memo) = memo {
            memo.put(config.id, &parts.method, path, decision);
        }
        decision
    };
    match decision {
        Decision::Allow => {
            record_seconds(start);
            let traced = Traced::allowed().with_detail("policy_allow");
            traced.record(span);
            trace::record_principal(span, &prepared.principal_id);
            tracing::debug!(
                layer = "authorizer",
                outcome = traced.outcome().as_str(),
                reason = traced.reason(),
                detail = traced.detail(),
                principal = &*prepared.principal_id,
                "custom authorizer decision"
            );
            // Literal labels: the metrics key is built without allocating.
            metrics::counter!(
                "portcullis_authorizer_decisions_total",
                "outcome" => "allowed",
                "reason" => "OK"
            )
            .increment(1);
            parts.extensions.insert(prepared.caller.clone());
            if let Some(key) = &prepared.usage_key {
                parts.extensions.insert(key.clone());
            }
            Ok(())
        }
        Decision::ExplicitDeny => {
            record(
                "explicit_deny",
                GatewayResponseType::AccessDenied,
                Some(&*prepared.principal_id),
                start,
                span,
            );
            Err(Refusal::ExplicitDeny)
        }
        Decision::ImplicitDeny => {
            record(
                "no_matching_allow",
                GatewayResponseType::AccessDenied,
                Some(&*prepared.principal_id),
                start,
                span,
            );
            Err(Refusal::ImplicitDeny)
        }
    }
}

/// Why [`apply`] refused: small, so the `Result` stays small.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refusal {
    Unauthorized,
    Failure,
    ExplicitDeny,
    ImplicitDeny,
}

impl Refusal {
    pub(crate) fn render(self, parts: &Parts) -> Response<Bytes> {
        let response = match self {
            Refusal::Unauthorized => GatewayResponse::new(GatewayResponseType::Unauthorized),
            Refusal::Failure => GatewayResponse::new(GatewayResponseType::AuthorizerFailure),
            Refusal::ExplicitDeny => GatewayResponse::new(GatewayResponseType::AccessDenied)
                .with_message(AUTHORIZER_DENIED_EXPLICIT),
            Refusal::ImplicitDeny => GatewayResponse::new(GatewayResponseType::AccessDenied)
                .with_message(messages::AUTHORIZER_DENIED),
        };
        response.render_parts(parts)
    }
}
