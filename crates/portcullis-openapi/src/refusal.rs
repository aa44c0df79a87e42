//! Why the layer refuses ([`OpenApiRefusal`]), what it leaves behind: the
//! rendered refusal with its [`RefusalInfo`], and the span, event and metrics of the decision.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use portcullis_core::path::PathRefusal;
use portcullis_core::refusal::Refusal;
use portcullis_core::{GatewayResponse, GatewayResponseType};
use tracing::Span;

/// A refusal this crate made, left in the response extensions for the
/// access log (`$context.error.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalInfo {
    /// The response type.
    pub kind: GatewayResponseType,
    /// The message.
    pub message: String,
}

/// Why the layer refused a request. The refused response carries it in its
/// extensions (with the [`RefusalInfo`] the access log reads), so an outer
/// layer, a test or the application can tell why without parsing the body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenApiRefusal {
    /// The path has no canonical form: DEFAULT_4XX (400) or
    /// MISSING_AUTHENTICATION_TOKEN (403), as core's [`PathRefusal`] says.
    NonCanonicalPath(PathRefusal),
    /// No resource and method of the definition match:
    /// MISSING_AUTHENTICATION_TOKEN (403).
    NoRoute,
    /// The matched method has no protection chain: API_CONFIGURATION_ERROR
    /// (500).
    NoChain,
    /// The method's authorizer let the request through without leaving a
    /// caller: MISSING_AUTHENTICATION_TOKEN (403) for an IAM method,
    /// UNAUTHORIZED (401) otherwise.
    NoCaller {
        /// Whether the method is an IAM (`awsSigv4`) method.
        iam: bool,
    },
    /// The Cognito caller holds none of the method's scopes: UNAUTHORIZED
    /// (401).
    ScopeMissing,
    /// The method requires an API key and no layer accepted one:
    /// INVALID_API_KEY (403).
    NoApiKey,
    /// Required request parameters or headers are missing:
    /// BAD_REQUEST_PARAMETERS (400), naming them.
    MissingParameters(Vec<String>),
    /// The body is over the limit: REQUEST_TOO_LARGE (413).
    BodyTooLarge,
    /// The body could not be read: BAD_REQUEST_BODY (400).
    UnreadableBody,
    /// The body does not validate against the method's model:
    /// BAD_REQUEST_BODY (400).
    BodyInvalid,
}

impl Refusal for OpenApiRefusal {
    fn gateway_response(&self) -> GatewayResponse {
        match self {
            Self::NonCanonicalPath(refusal) => refusal.gateway_response(),
            Self::NoRoute | Self::NoCaller { iam: true } => {
                GatewayResponse::new(GatewayResponseType::MissingAuthenticationToken)
            }
            Self::NoChain => GatewayResponse::new(GatewayResponseType::ApiConfigurationError),
            Self::NoCaller { iam: false } | Self::ScopeMissing => {
                GatewayResponse::new(GatewayResponseType::Unauthorized)
            }
            Self::NoApiKey => GatewayResponse::new(GatewayResponseType::InvalidApiKey),
            Self::MissingParameters(missing) => GatewayResponse::new(
                GatewayResponseType::BadRequestParameters,
            )
            .with_message(format!(
                "Missing required request parameters: [{}]",
                missing.join(", ")
            )),
            Self::BodyTooLarge => GatewayResponse::new(GatewayResponseType::RequestTooLarge),
            Self::UnreadableBody | Self::BodyInvalid => {
                GatewayResponse::new(GatewayResponseType::BadRequestBody)
            }
        }
    }

    fn detail(&self) -> &'static str {
        match self {
            Self::NonCanonicalPath(_) => "non_canonical_path",
            Self::NoRoute => "no_route",
            Self::NoChain => "no_chain",
            Self::NoCaller { .. } => "no_caller",
            Self::ScopeMissing => "scope_missing",
            Self::NoApiKey => "no_api_key",
            Self::MissingParameters(_) => "missing_parameters",
            Self::BodyTooLarge => "body_too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::BodyInvalid => "body_invalid",
        }
    }
}

/// The refusal rendered for `request` (with the gateway responses it
/// carries, as gRPC to a gRPC client), with the refusal and its
/// [`RefusalInfo`] in the response's extensions.
pub(crate) fn refuse<B, RB: From<Bytes>>(
    refusal: OpenApiRefusal,
    request: &Request<B>,
) -> Response<RB> {
    let gateway = refusal.gateway_response();
    let info = RefusalInfo {
        kind: gateway.kind(),
        message: gateway.message().to_owned(),
    };
    let mut response =
        refusal
            .into_response::<B, RB>(request)
            .map(|body| match body.into_inner() {
                Ok(body) => body,
                Err(bytes) => RB::from(bytes),
            });
    response.extensions_mut().insert(info);
    response
}

/// A refusal after a decision that took `spent`: its span, event and
/// metrics, then the response for `request`.
pub(crate) fn refused<B, RB: From<Bytes>, E>(
    refusal: OpenApiRefusal,
    request: &Request<B>,
    spent: Duration,
    span: &Span,
) -> Result<Response<RB>, E> {
    record_seconds(spent);
    record_refusal(&refusal, span);
    Ok(refuse(refusal, request))
}

/// `portcullis_openapi_decision_seconds`: the time a decision took.
pub(crate) fn record_seconds(spent: Duration) {
    metrics::histogram!("portcullis_openapi_decision_seconds").record(spent.as_secs_f64());
}

/// The span, event and counter of a refusal.
pub(crate) fn record_refusal(refusal: &OpenApiRefusal, span: &Span) {
    let decision = refusal.decision();
    decision.record(span);
    // Entered, not given as the event's parent, since a span no subscriber
    // wants would make the event a root, outside the request's span.
    let _entered = span.enter();
    tracing::info!(
        layer = "openapi",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        "request refused"
    );
    metrics::counter!("portcullis_openapi_decisions_total", "outcome" => "refused", "reason" => decision.reason())
        .increment(1);
}
