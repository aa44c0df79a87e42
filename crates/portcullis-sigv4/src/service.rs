//! The [`SigV4`] service.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Extensions, Request, Response};
use http_body::Body;
use portcullis_core::ResponseBody;
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{AuthMethod, Caller};
use portcullis_core::path::CanonicalPath;
use portcullis_core::refusal::Refusal;
use portcullis_core::store::Answer;
use portcullis_core::trace::{self, Decision as Traced};
use portcullis_iam::{Decision, RequestContext};
use tower_service::Service;
use tracing::{Instrument, Span};

use crate::body::{self, SigV4Body};
use crate::canonical;
use crate::chunked::{ChunkVerifier, Decoder};
use crate::credentials::{Credential, CredentialResult};
use crate::error::SigV4Error;
use crate::shared::Shared;
use crate::verified::VerifiedSignature;
use crate::verify::{self, Payload, RequestView, SignatureForm};
use portcullis_core::future::ResponseFuture;

/// The SigV4 service: see [`SigV4Layer`](crate::SigV4Layer).
#[derive(Clone, Debug)]
pub struct SigV4<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SigV4<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    portcullis_core::inner_service_accessors!();
}

/// The URI the client signed: axum's `OriginalUri` when the `axum` feature is
/// on and the request went through a `Router::nest` (which strips the
/// prefix), else the request's own.
pub(crate) fn signed_uri<'a>(uri: &'a http::Uri, extensions: &'a Extensions) -> &'a http::Uri {
    #[cfg(feature = "axum")]
    if let Some(original) = extensions.get::<axum::extract::OriginalUri>() {
        return &original.0;
    }
    let _ = extensions;
    uri
}

fn view<B>(request: &Request<B>) -> RequestView<'_> {
    RequestView {
        method: request.method(),
        uri: signed_uri(request.uri(), request.extensions()),
        headers: request.headers(),
    }
}

fn view_parts(parts: &http::request::Parts) -> RequestView<'_> {
    RequestView {
        method: &parts.method,
        uri: signed_uri(&parts.uri, &parts.extensions),
        headers: &parts.headers,
    }
}

fn found(result: CredentialResult) -> Result<Arc<Credential>, SigV4Error> {
    match result {
        Ok(Some(credential)) => Ok(credential),
        Ok(None) => Err(SigV4Error::UnrecognizedClient),
        Err(error) => {
            tracing::error!(layer = "sigv4", %error, "credential provider failed");
            Err(SigV4Error::CredentialProvider)
        }
    }
}

impl Shared {
    /// Evaluates the caller's policies for `execute-api:Invoke` on the
    /// request's ARN.
    fn authorize(
        &self,
        view: RequestView<'_>,
        extensions: &Extensions,
        credential: &Credential,
    ) -> Result<(), SigV4Error> {
        if !self.authorize {
            return Ok(());
        }
        let path = CanonicalPath::of_uri(view.uri).map_err(SigV4Error::NonCanonicalPath)?;
        let resource = self.api.resource(view.method.as_str(), &path);
        let secure = self
            .secure_transport
            .unwrap_or_else(|| view.uri.scheme() == Some(&http::uri::Scheme::HTTPS));
        let mut ctx = RequestContext::new(credential.principal_arn(), resource.as_str())
            .with_source_ip(self.client_ip.resolve_parts(view.headers, extensions))
            .with_current_time(self.clock.now())
            .with_secure_transport(secure);
        if let Some(agent) = view
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            ctx = ctx.with_user_agent(agent);
        }
        let decision =
            portcullis_iam::evaluate(credential.policies(), self.resource_policy.as_deref(), &ctx);
        match decision {
            Decision::Allow => Ok(()),
            Decision::ExplicitDeny | Decision::ImplicitDeny => Err(SigV4Error::AccessDenied {
                principal_arn: credential.principal_arn().to_owned(),
                resource_arn: resource,
                explicit_deny: decision.is_explicit_deny(),
            }),
        }
    }

    /// Everything after the credential is known, when the payload hash is
    /// known too (or the body streams signed chunks): the synchronous fast
    /// path. Returns what goes in the extensions, and the chunk decoder of a
    /// streaming body.
    fn finish_known(
        &self,
        view: RequestView<'_>,
        extensions: &Extensions,
        parsed: &verify::ParsedSignature<'_>,
        credential: &Credential,
        payload: Payload<'_>,
        now: i64,
    ) -> Result<(VerifiedSignature, Option<Decoder>), SigV4Error> {
        verify::check_credential(parsed, credential, now)?;
        let hash = match payload {
            Payload::Known(hash) => hash,
            Payload::Streaming { decoded_length } => {
                if decoded_length > self.max_body_bytes {
                    return Err(SigV4Error::RequestTooLarge);
                }
                verify::STREAMING_PAYLOAD
            }
            // Not the fast path's: the caller sends these to the slow path.
            Payload::Claimed(_) | Payload::Compute => return Err(SigV4Error::BodyRead),
        };
        let seed =
            verify::verify_signature(view, parsed, credential, hash, &self.settings, &self.keys)?;
        self.authorize(view, extensions, credential)?;
        let decoder = match payload {
            Payload::Streaming { decoded_length } => Some(Decoder::new(
                {
                    let (key, prefix) =
                        verify::chunk_signing(parsed, credential, &self.settings, &self.keys);
                    ChunkVerifier::new(key, prefix, &seed)
                },
                decoded_length,
            )),
            _ => None,
        };
        Ok((
            VerifiedSignature::from_parsed(parsed, credential, &self.settings),
            decoder,
        ))
    }
}

fn record_refusal(error: &SigV4Error, span: &Span) {
    let decision = Refusal::decision(error);
    let kind = decision.reason();
    decision.record(span);
    if let SigV4Error::AccessDenied { principal_arn, .. } = error {
        trace::record_principal(span, principal_arn);
    }
    tracing::info!(
        layer = "sigv4",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        "request refused"
    );
    metrics::counter!("portcullis_sigv4_decisions_total", "outcome" => "refused", "reason" => kind)
        .increment(1);
}

/// `portcullis_sigv4_decision_seconds`: from the request's arrival to the
/// decision (an awaited credential lookup or body read included).
fn record_seconds(start: Instant) {
    metrics::histogram!("portcullis_sigv4_decision_seconds").record(start.elapsed().as_secs_f64());
}

fn record_success(credential: &Credential, form: SignatureForm, span: &Span) {
    let decision = Traced::allowed().with_detail("signature_valid");
    decision.record(span);
    trace::record_principal(span, credential.principal_arn());
    tracing::debug!(
        layer = "sigv4",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        principal = credential.principal_arn(),
        form = form.as_str(),
        "request allowed"
    );
    metrics::counter!("portcullis_sigv4_decisions_total", "outcome" => "allowed", "reason" => "OK")
        .increment(1);
}

fn admit(
    parts: &mut http::request::Parts,
    credential: &Credential,
    verified: VerifiedSignature,
    decoded_length: Option<u64>,
    span: &Span,
) {
    record_success(credential, verified.form, span);
    if let Some(length) = decoded_length {
        // The inner service reads the decoded body: its length, and no
        // `aws-chunked` coding.
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, length.into());
        strip_aws_chunked(&mut parts.headers);
    }
    parts.request_context_mut().set_caller(Caller::new(
        credential.principal_arn_arc().clone(),
        AuthMethod::Iam,
    ));
    parts.extensions.insert(verified);
}

/// Removes `aws-chunked` from `Content-Encoding` (and the header when it was
/// the only coding).
fn strip_aws_chunked(headers: &mut http::HeaderMap) {
    let Some(value) = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let rest: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    match http::HeaderValue::from_str(&rest.join(", ")) {
        Ok(value) if !rest.is_empty() => {
            headers.insert(http::header::CONTENT_ENCODING, value);
        }
        _ => {
            headers.remove(http::header::CONTENT_ENCODING);
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SigV4<S>
where
    S: Service<Request<SigV4Body<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let span = portcullis_core::layer_span!("sigv4");
        let entered = span.enter();
        let shared = &*self.shared;
        let now = i64::try_from(shared.clock.now_unix_seconds()).unwrap_or(i64::MAX);
        let body_empty = body::is_known_empty(request.body());

        // Parse, check the dates, and ask for the credential: all synchronous.
        let started = verify::parse(view(&request), &shared.settings).and_then(|parsed| {
            verify::check_time(&parsed, now, &shared.settings)?;
            verify::check_signature_shape(&parsed)?;
            let payload = verify::payload(&parsed, body_empty, &shared.settings)?;
            let lookup = shared
                .provider
                .lookup_with_token(&parsed.access_key_id, parsed.security_token.as_deref());
            Ok((parsed, payload, lookup))
        });
        let (parsed, payload, lookup) = match started {
            Ok(started) => started,
            Err(error) => {
                record_refusal(&error, &span);
                record_seconds(start);
                return ResponseFuture::answered(error.into_response(&request));
            }
        };

        // Fast path: the credential is known now and the body need not be read
        // before the inner service is called.
        let lookup = match (lookup, payload) {
            (Answer::Ready(result), Payload::Known(_) | Payload::Streaming { .. }) => {
                let outcome = found(result).and_then(|credential| {
                    shared
                        .finish_known(
                            view(&request),
                            request.extensions(),
                            &parsed,
                            &credential,
                            payload,
                            now,
                        )
                        .map(|verified| (credential, verified))
                });
                drop(parsed);
                if let Err(error) = &outcome {
                    record_refusal(error, &span);
                }
                record_seconds(start);
                return match outcome {
                    Ok((credential, (verified, decoder))) => {
                        let (mut parts, body) = request.into_parts();
                        let decoded_length = decoder.as_ref().map(Decoder::expected);
                        admit(&mut parts, &credential, verified, decoded_length, &span);
                        // The span covers the decision, not the inner service.
                        drop(entered);
                        let body = match decoder {
                            Some(decoder) => SigV4Body::chunked(body, decoder),
                            None => SigV4Body::passthrough(body),
                        };
                        ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
                    }
                    Err(error) => ResponseFuture::answered(error.into_response(&request)),
                };
            }
            (lookup, _) => lookup,
        };
        drop(parsed);
        drop(entered);

        // Slow path: await the provider, or read and hash the body.
        let shared = self.shared.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::waiting(Box::pin(async move {
            let (mut parts, decision) = async {
                let result = lookup.resolve().await;
                let (parts, body) = request.into_parts();
                let decision = slow_path(&shared, &parts, body, result, now).await;
                (parts, decision)
            }
            .instrument(span.clone())
            .await;
            let decision = {
                let _entered = span.enter();
                if let Err(error) = &decision {
                    record_refusal(error, &span);
                }
                record_seconds(start);
                decision.map(|(credential, body, verified, decoded_length)| {
                    admit(&mut parts, &credential, verified, decoded_length, &span);
                    body
                })
            };
            // The span covers the decision, not the inner service.
            drop(span);
            match decision {
                Ok(body) => {
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(response.map(ResponseBody::inner))
                }
                Err(error) => Ok(error.into_response_parts(&parts)),
            }
        }))
    }
}

type Admitted<B> = (
    Arc<Credential>,
    SigV4Body<B>,
    VerifiedSignature,
    Option<u64>,
);

async fn slow_path<B>(
    shared: &Shared,
    parts: &http::request::Parts,
    body: B,
    result: CredentialResult,
    now: i64,
) -> Result<Admitted<B>, SigV4Error>
where
    B: Body<Data = Bytes>,
{
    let view = view_parts(parts);
    // Parsing again costs little and keeps the request unborrowed across the
    // await; it cannot fail where it succeeded before.
    let parsed = verify::parse(view, &shared.settings)?;
    let credential = found(result)?;
    verify::check_credential(&parsed, &credential, now)?;
    let body_empty = body::is_known_empty(&body);
    let settings = &shared.settings;
    let payload = verify::payload(&parsed, body_empty, settings)?;
    let body = match payload {
        Payload::Known(_) | Payload::Streaming { .. } => {
            let extensions = &parts.extensions;
            let (verified, decoder) =
                shared.finish_known(view, extensions, &parsed, &credential, payload, now)?;
            let decoded_length = decoder.as_ref().map(Decoder::expected);
            let body = match decoder {
                Some(decoder) => SigV4Body::chunked(body, decoder),
                None => SigV4Body::passthrough(body),
            };
            return Ok((credential, body, verified, decoded_length));
        }
        Payload::Claimed(claimed) => {
            // The signature covers the claimed hash: check it before reading
            // a byte of the body.
            verify::verify_signature(view, &parsed, &credential, claimed, settings, &shared.keys)?;
            let buffered =
                body::read_and_hash(body, shared.max_body_bytes, shared.budget.reservation())
                    .await?;
            let actual = canonical::hex32(&buffered.sha256);
            if !claimed.as_bytes().eq_ignore_ascii_case(&actual) {
                return Err(SigV4Error::PayloadHashMismatch);
            }
            SigV4Body::replay(buffered)
        }
        Payload::Compute => {
            let buffered =
                body::read_and_hash(body, shared.max_body_bytes, shared.budget.reservation())
                    .await?;
            let actual = canonical::hex32(&buffered.sha256);
            let actual = std::str::from_utf8(&actual).unwrap_or(verify::EMPTY_SHA256);
            verify::verify_signature(view, &parsed, &credential, actual, settings, &shared.keys)?;
            SigV4Body::replay(buffered)
        }
    };
    shared.authorize(view, &parts.extensions, &credential)?;
    let verified = VerifiedSignature::from_parsed(&parsed, &credential, settings);
    Ok((credential, body, verified, None))
}
