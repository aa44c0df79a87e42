//! The verdict: the authorizer's answer made ready for reuse, applied to a
//! request (policy evaluated, caller in its extensions) or refused, with its
//! event, counter and duration.

use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{AuthMethod, Caller, UsageIdentifierKey};
use portcullis_core::path::PathRefusal;
use portcullis_core::refusal::Refusal;
use portcullis_core::response::messages;
use portcullis_core::trace::{self, Decision as Traced};
use portcullis_core::{GatewayResponse, GatewayResponseType};
use portcullis_iam::{Decision, RequestContext};
use tracing::Span;

use crate::cache::{DecisionMemo, Outcome, Prepared};
use crate::config::{AUTHORIZER_DENIED_EXPLICIT, Config};
use crate::error::AuthorizerError;
use crate::event::AuthorizerResponse;

/// A refusal before the authorizer answered: recorded, and handed back to
/// be rendered.
pub(crate) fn refuse(refusal: AuthorizerRefusal, start: Instant, span: &Span) -> AuthorizerRefusal {
    record(
        refusal.detail(),
        refusal.gateway_response().kind(),
        None,
        start,
        span,
    );
    refusal
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
) -> Result<(), AuthorizerRefusal> {
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
            return Err(AuthorizerRefusal::Unauthorized);
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
            return Err(match error {
                AuthorizerError::Malformed(_) => AuthorizerRefusal::MalformedAnswer,
                _ => AuthorizerRefusal::AuthorizerFailed,
            });
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
            parts
                .request_context_mut()
                .set_caller(prepared.caller.clone());
            if let Some(key) = &prepared.usage_key {
                parts
                    .request_context_mut()
                    .set_usage_identifier_key(key.clone());
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
            Err(AuthorizerRefusal::ExplicitDeny)
        }
        Decision::ImplicitDeny => {
            record(
                "no_matching_allow",
                GatewayResponseType::AccessDenied,
                Some(&*prepared.principal_id),
                start,
                span,
            );
            Err(AuthorizerRefusal::ImplicitDeny)
        }
    }
}

/// Why the layer refused a request. The layer refuses through
/// [`Refusal::into_response`], so a refused response carries it in its
/// extensions:
///
/// ```
/// use http::{Request, StatusCode};
/// use portcullis_authorizer::{AuthorizerLayer, AuthorizerRefusal};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let authorizer = |_event| async { Err(portcullis_authorizer::AuthorizerError::Unauthorized) };
/// let service = ServiceBuilder::new()
///     .layer(AuthorizerLayer::token(authorizer))
///     .service_fn(|_: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// let response = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(
///     response.extensions().get::<AuthorizerRefusal>(),
///     Some(&AuthorizerRefusal::MissingIdentity)
/// );
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizerRefusal {
    /// The request path has no canonical form, so it has no method ARN:
    /// the core path refusal's response.
    NonCanonicalPath(PathRefusal),
    /// An identity source is missing or empty: 401 UNAUTHORIZED, the
    /// authorizer not called.
    MissingIdentity,
    /// The identity-source values are over the layer's limit: 401
    /// UNAUTHORIZED, the authorizer not called.
    IdentityTooLarge,
    /// The token does not match the validation expression: 401
    /// UNAUTHORIZED, the authorizer not called.
    TokenFailedValidation,
    /// The authorizer answered `Unauthorized`: 401 UNAUTHORIZED.
    Unauthorized,
    /// The authorizer failed or timed out: 500 AUTHORIZER_FAILURE.
    AuthorizerFailed,
    /// The authorizer's answer is not a valid answer: 500
    /// AUTHORIZER_FAILURE.
    MalformedAnswer,
    /// The policy denies explicitly: 403 ACCESS_DENIED.
    ExplicitDeny,
    /// The policy allows nothing that matches: 403 ACCESS_DENIED.
    ImplicitDeny,
}

impl Refusal for AuthorizerRefusal {
    fn gateway_response(&self) -> GatewayResponse {
        match self {
            Self::NonCanonicalPath(refusal) => refusal.gateway_response(),
            Self::MissingIdentity
            | Self::IdentityTooLarge
            | Self::TokenFailedValidation
            | Self::Unauthorized => GatewayResponse::new(GatewayResponseType::Unauthorized),
            Self::AuthorizerFailed | Self::MalformedAnswer => {
                GatewayResponse::new(GatewayResponseType::AuthorizerFailure)
            }
            Self::ExplicitDeny => GatewayResponse::new(GatewayResponseType::AccessDenied)
                .with_message(AUTHORIZER_DENIED_EXPLICIT),
            Self::ImplicitDeny => GatewayResponse::new(GatewayResponseType::AccessDenied)
                .with_message(messages::AUTHORIZER_DENIED),
        }
    }

    /// The `detail` the layer's span and event record.
    fn detail(&self) -> &'static str {
        match self {
            Self::NonCanonicalPath(_) => "non_canonical_path",
            Self::MissingIdentity => "missing_identity",
            Self::IdentityTooLarge => "identity_too_large",
            Self::TokenFailedValidation => "token_failed_validation",
            Self::Unauthorized => "authorizer_unauthorized",
            Self::AuthorizerFailed => "failed",
            Self::MalformedAnswer => "malformed",
            Self::ExplicitDeny => "explicit_deny",
            Self::ImplicitDeny => "no_matching_allow",
        }
    }
}
