//! The credentials service: `POST` a login, get temporary credentials.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use portcullis_core::refusal::Refusal;
use portcullis_core::trace::{self, Decision};
use tower_service::Service;
use tracing::Instrument;

use crate::error::ExchangeError;
use crate::pool::{CredentialsRequest, IdentityPool};

/// The future of [`CredentialsService`]: boxed, since it awaits the token's
/// verification (which may fetch the issuer's keys).
pub type CredentialsFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// A tower `Service` that exchanges a login for temporary credentials, as
/// Cognito Identity's GetId + GetCredentialsForIdentity in one call.
///
/// `POST` a JSON body (see [`CredentialsRequest`]):
/// `{"Logins": {"cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC": "<id
/// token>"}}`, or `{}` for a guest. The answer is 200 with
/// `{"IdentityId": .., "Credentials": {"AccessKeyId", "SecretKey",
/// "SessionToken", "Expiration"}}`, or a gateway response (see
/// [`ExchangeError`]). Mount it on any route, such as `POST /credentials`.
#[derive(Clone, Debug)]
pub struct CredentialsService {
    pool: IdentityPool,
}

impl CredentialsService {
    /// The service for `pool`.
    #[must_use]
    pub fn new(pool: IdentityPool) -> Self {
        Self { pool }
    }
}

impl IdentityPool {
    /// The credentials service of this pool.
    #[must_use]
    pub fn credentials_service(&self) -> CredentialsService {
        CredentialsService::new(self.clone())
    }
}

/// `portcullis_identity_pool_decision_seconds`: from `start` (the
/// request's arrival, or the end of reading its body) to the verdict.
fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_identity_pool_decision_seconds")
        .record(start.elapsed().as_secs_f64());
}

fn refuse(
    span: &tracing::Span,
    parts: &http::request::Parts,
    error: &ExchangeError,
    start: Instant,
) -> Response<Full<Bytes>> {
    record_seconds(start);
    let response = error.gateway_response();
    let decision = Refusal::decision(error);
    decision.record(span);
    tracing::info!(
        layer = "identity_pool",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        "credentials refused"
    );
    metrics::counter!("portcullis_identity_pool_decisions_total", "outcome" => "refused", "reason" => response.kind().as_str())
        .increment(1);
    // As `Refusal::into_response` leaves it (this service's body is its own).
    let mut response = response.render_parts(parts).map(Full::new);
    response.extensions_mut().insert(error.clone());
    response
}

impl<B> Service<Request<B>> for CredentialsService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = CredentialsFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let pool = self.pool.clone();
        // The service answers every request itself: its span covers the
        // whole exchange.
        let span = portcullis_core::layer_span!("identity_pool");
        let recorded = span.clone();
        let exchange = async move {
            // Reading the body waits on the client: it is not timed.
            let arrival = Instant::now();
            let (parts, body) = request.into_parts();
            if parts.method != Method::POST {
                return Ok(refuse(
                    &recorded,
                    &parts,
                    &ExchangeError::MethodNotAllowed,
                    arrival,
                ));
            }
            let limit = pool.shared.max_body_bytes;
            if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
                return Ok(refuse(&recorded, &parts, &ExchangeError::TooLarge, arrival));
            }
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                    return Ok(refuse(
                        &recorded,
                        &parts,
                        &ExchangeError::TooLarge,
                        Instant::now(),
                    ));
                }
                Err(_) => {
                    return Ok(refuse(
                        &recorded,
                        &parts,
                        &ExchangeError::Malformed,
                        Instant::now(),
                    ));
                }
            };
            let start = Instant::now();
            let parsed = match CredentialsRequest::parse(&bytes, limit) {
                Ok(parsed) => parsed,
                Err(error) => return Ok(refuse(&recorded, &parts, &error, start)),
            };
            match pool.get_credentials(&parsed).await {
                Ok(credentials) => {
                    record_seconds(start);
                    let decision = Decision::allowed().with_detail("credentials_issued");
                    decision.record(&recorded);
                    trace::record_principal(&recorded, credentials.identity_id());
                    tracing::info!(
                        layer = "identity_pool",
                        outcome = decision.outcome().as_str(),
                        reason = decision.reason(),
                        detail = decision.detail(),
                        identity_id = credentials.identity_id(),
                        role = credentials.role(),
                        "credentials issued"
                    );
                    metrics::counter!("portcullis_identity_pool_decisions_total", "outcome" => "allowed", "reason" => "OK")
                        .increment(1);
                    let mut response = Response::new(Full::new(Bytes::from(credentials.to_json())));
                    *response.status_mut() = StatusCode::OK;
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    Ok(response)
                }
                Err(error) => Ok(refuse(&recorded, &parts, &error, start)),
            }
        };
        Box::pin(exchange.instrument(span))
    }
}
