//! Request validation: required parameters and headers, the body limit and
//! the body's model, then the mock integration or the application.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use portcullis_core::trace::Decision;
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};
use tracing::Instrument;

use crate::chain::Route;
use crate::definition::{MethodSettings, Parameter};
use crate::refusal::{OpenApiRefusal, record_seconds, refused};

/// The innermost step: request validation, then the mock integration or the
/// application.
pub(crate) fn validate<B, RB, E>(inner: Route<B, RB, E>, limit: usize) -> Route<B, RB, E>
where
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    RB: From<Bytes> + Send + 'static,
    E: Send + 'static,
{
    BoxCloneSyncService::new(service_fn(move |request: Request<B>| {
        let inner = inner.clone();
        let span = portcullis_core::layer_span!("openapi", step = "validate");
        async move {
            // The checks' time, without the wait for the body's bytes.
            let mut spent = Duration::ZERO;
            let mut since = Instant::now();
            portcullis_core::request_span::record_context(&request);
            let Some(settings) = request.extensions().get::<Arc<MethodSettings>>().cloned() else {
                drop(span);
                return inner.oneshot(request).await;
            };
            if settings.validate_parameters {
                let missing = missing_parameters(&request, &settings.required);
                if !missing.is_empty() {
                    return refused(
                        OpenApiRefusal::MissingParameters(missing),
                        &request,
                        since.elapsed(),
                        &span,
                    );
                }
            }
            let request = if settings.validate_body && !settings.models.is_empty() {
                let too_large = request
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|n| n > limit as u64);
                if too_large {
                    return refused(
                        OpenApiRefusal::BodyTooLarge,
                        &request,
                        since.elapsed(),
                        &span,
                    );
                }
                spent += since.elapsed();
                let (parts, body) = request.into_parts();
                let bytes = match http_body_util::Limited::new(body, limit)
                    .collect()
                    .instrument(span.clone())
                    .await
                {
                    Ok(collected) => collected.to_bytes(),
                    Err(error) => {
                        let refusal = if error.is::<http_body_util::LengthLimitError>() {
                            OpenApiRefusal::BodyTooLarge
                        } else {
                            OpenApiRefusal::UnreadableBody
                        };
                        let request = Request::from_parts(parts, ());
                        return refused(refusal, &request, spent, &span);
                    }
                };
                since = Instant::now();
                if !body_is_valid(&settings, parts.headers.get(header::CONTENT_TYPE), &bytes) {
                    let request = Request::from_parts(parts, ());
                    return refused(
                        OpenApiRefusal::BodyInvalid,
                        &request,
                        spent + since.elapsed(),
                        &span,
                    );
                }
                Request::from_parts(parts, B::from(bytes))
            } else {
                request
            };
            record_seconds(spent + since.elapsed());
            let decision = Decision::allowed();
            decision.record(&span);
            span.in_scope(|| {
                tracing::debug!(
                    layer = "openapi",
                    outcome = decision.outcome().as_str(),
                    reason = decision.reason(),
                    "request validated"
                );
            });
            // The span covers the decision, not the inner service.
            drop(span);
            metrics::counter!("portcullis_openapi_decisions_total", "outcome" => "allowed", "reason" => "OK")
                .increment(1);
            if let Some(mock) = &settings.mock {
                let mut response = Response::new(RB::from(Bytes::new()));
                *response.status_mut() = mock.status;
                for (name, value) in &mock.headers {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
                return Ok(response);
            }
            inner.oneshot(request).await
        }
    }))
}

fn missing_parameters<B>(request: &Request<B>, required: &[Parameter]) -> Vec<String> {
    let query = request.uri().query().unwrap_or("");
    required
        .iter()
        .filter(|p| match p {
            Parameter::Header(name) => request
                .headers()
                .get(name.as_str())
                .is_none_or(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace)),
            Parameter::Query(name) => !query.split('&').any(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                key == name && !value.is_empty()
            }),
        })
        .map(|p| p.name().to_owned())
        .collect()
}

/// Validates the body against the model for its media type; a media type
/// without a model of its own is validated against the `application/json`
/// model (or the only one), so that a changed `Content-Type` cannot bypass
/// validation.
fn body_is_valid(
    settings: &MethodSettings,
    content_type: Option<&HeaderValue>,
    bytes: &Bytes,
) -> bool {
    let media = content_type.and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let model = media
        .as_deref()
        .and_then(|m| settings.models.iter().find(|(media, _)| media == m))
        .or_else(|| {
            settings
                .models
                .iter()
                .find(|(media, _)| media == "application/json")
        })
        .or_else(|| settings.models.first());
    let Some((_, model)) = model else { return true };
    // An empty body is `{}` to API Gateway's validator, unless the body is
    // required.
    let instance: serde_json::Value = if bytes.is_empty() {
        if settings.body_required {
            return false;
        }
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(bytes) {
            Ok(value) => value,
            Err(_) => return false,
        }
    };
    model.validator.is_valid(&instance)
}
