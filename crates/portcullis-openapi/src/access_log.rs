//! Access logs in API Gateway's format, and `x-amzn-RequestId` on every
//! response.
//!
//! [`AccessLogLayer`] renders a template of `$context` variables (the
//! stage's `accessLogSettings.format`: JSON, CLF or anything else) once per
//! request, refusals included, to `tracing` (target `portcullis::access_log`)
//! or to a writer. Place it outermost, outside the WAF.
//!
//! What the layers inside it learned (the caller, the API key, WAF labels)
//! lives in request extensions that an outer layer never sees again, so the
//! log layer puts an [`AccessLogSlot`] into the request, and
//! [`record_context`] copies what is known into it. The
//! [`OpenApiLayer`](crate::OpenApiLayer) calls it after each protection
//! layer and before the application.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use http_body::Body;
use portcullis_core::GatewayResponseType;
use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::config::ConfigError;
use portcullis_core::context::RequestContextExt;
use portcullis_core::request_span::{self, OpenedRequest};
use tower_layer::Layer;
use tower_service::Service;

pub use crate::access_log_config::{AccessLogConfig, AccessLogDestination};
use crate::refusal::RefusalInfo;
use crate::service::ResourcePath;

/// What the inner layers learned, shared with the log layer: the request
/// span's [`RequestRecord`](portcullis_core::request_span::RequestRecord).
pub use portcullis_core::request_span::RequestRecord as AccessLogSlot;
pub use portcullis_core::request_span::{X_AMZN_REQUEST_ID, record_context};

/// The variables a template may use.
pub const VARIABLES: &[&str] = &[
    "$context.requestId",
    "$context.extendedRequestId",
    "$context.identity.sourceIp",
    "$context.identity.userAgent",
    "$context.identity.apiKeyId",
    "$context.httpMethod",
    "$context.resourcePath",
    "$context.path",
    "$context.protocol",
    "$context.status",
    "$context.responseLength",
    "$context.responseLatency",
    "$context.requestTime",
    "$context.requestTimeEpoch",
    "$context.authorizer.principalId",
    "$context.authorizer.claims.sub",
    "$context.error.message",
    "$context.error.responseType",
    "$context.waf.status",
];

#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    Var(usize),
}

type Sink = Arc<Mutex<dyn Write + Send>>;

/// Writes one access-log line per request: see the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct AccessLogLayer {
    pieces: Arc<[Piece]>,
    sink: Option<Sink>,
    /// False for [`AccessLogLayer::request_ids_only`]: no line is written.
    enabled: bool,
    /// How `$context.identity.sourceIp` is found when no layer further out
    /// left a client IP in the request's context (the log line is rendered
    /// outside every layer).
    resolver: ClientIpResolver,
}

impl fmt::Debug for AccessLogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogLayer")
            .field("enabled", &self.enabled)
            .field("writer", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl AccessLogLayer {
    /// A layer that renders `template` to `tracing`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] about the template as a whole: an unknown variable
    /// (`unknown variable `$context.nope``), or no `$context.requestId`,
    /// which API Gateway requires.
    pub fn new(template: &str) -> Result<Self, ConfigError> {
        let mut pieces = Vec::new();
        let mut rest = template;
        let mut has_id = false;
        while let Some(at) = rest.find("$context.") {
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].to_owned()));
            }
            let tail = &rest[at..];
            let end = tail
                .char_indices()
                .skip(1)
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_'))
                .map_or(tail.len(), |(i, _)| i);
            let name = tail[..end].trim_end_matches('.');
            let index = VARIABLES
                .iter()
                .position(|v| *v == name)
                .ok_or_else(|| ConfigError::whole(format!("unknown variable `{name}`")))?;
            has_id |= index == 0;
            pieces.push(Piece::Var(index));
            rest = &tail[name.len()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if !has_id {
            return Err(ConfigError::whole(
                "the template must contain $context.requestId",
            ));
        }
        Ok(Self {
            pieces: pieces.into(),
            sink: None,
            enabled: true,
            resolver: ClientIpResolver::new(),
        })
    }

    /// A layer that writes no log, and still gives every response its
    /// `x-amzn-RequestId` (and the request its id, in its `RequestContext`): API Gateway's
    /// behaviour on a stage whose access logging is off.
    pub fn request_ids_only() -> Self {
        Self {
            pieces: Arc::from(Vec::new()),
            sink: None,
            enabled: false,
            resolver: ClientIpResolver::new(),
        }
    }

    /// Resolves `$context.identity.sourceIp` with `resolver` (the trusted
    /// proxies of the other layers), when no layer further out left a
    /// client IP in the request's context. The default resolver reads the peer address only
    /// (core's `PeerAddr`, or axum's `ConnectInfo` with core's `axum`
    /// feature).
    pub fn client_ip_resolver(mut self, resolver: ClientIpResolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// Writes each line, with a newline, to `writer` instead of `tracing`.
    pub fn writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.sink = Some(Arc::new(Mutex::new(writer)));
        self
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    layer: AccessLogLayer,
}

impl<S> AccessLog<S> {
    portcullis_core::inner_service_accessors!();
}

struct Line {
    source_ip: String,
    user_agent: String,
    method: String,
    path: String,
    protocol: String,
    time: time::OffsetDateTime,
    start: Instant,
}

impl<S, B, RB> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: Body,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let header = |name: http::header::HeaderName| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let source_ip = request
            .client_ip()
            .or_else(|| self.layer.resolver.resolve(&request))
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        let user_agent = header(http::header::USER_AGENT);
        // The request's span: every layer's events inside it carry the
        // request id; what they decided is recorded when the response is
        // known.
        let opened = request_span::open(&mut request);
        let line = Line {
            source_ip,
            user_agent,
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            protocol: format!("{:?}", request.version()),
            time: time::OffsetDateTime::now_utc(),
            start: Instant::now(),
        };
        let layer = self.layer.clone();
        let span = opened.span().clone();
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(tracing::Instrument::instrument(
            async move {
                let mut response = future.await?;
                let refusal = refusal_of(&response);
                opened.finish(&mut response, refusal.as_ref().map(|r| r.0));
                if !layer.enabled {
                    return Ok(response);
                }
                let rendered = render(&layer.pieces, &opened, &line, &response, refusal);
                match &layer.sink {
                    Some(sink) => {
                        if let Ok(mut writer) = sink.lock() {
                            // A failing log writer must not fail the request.
                            let _ = writeln!(writer, "{rendered}");
                        }
                    }
                    None => tracing::info!(target: "portcullis::access_log", "{rendered}"),
                }
                Ok(response)
            },
            span,
        ))
    }
}

/// The gateway response a refusal was, and its message; `None` for a
/// response that is not a refusal. This crate's refusals say what they were;
/// others are known by their `x-amzn-ErrorType` and status.
fn refusal_of<RB>(response: &Response<RB>) -> Option<(GatewayResponseType, String)> {
    response
        .extensions()
        .get::<RefusalInfo>()
        .map(|r| (r.kind, r.message.clone()))
        .or_else(|| {
            request_span::refusal_type(response).map(|k| (k, k.default_message().to_owned()))
        })
}

fn render<RB: Body>(
    pieces: &[Piece],
    opened: &OpenedRequest,
    line: &Line,
    response: &Response<RB>,
    refusal: Option<(GatewayResponseType, String)>,
) -> String {
    let caller = opened.record().caller();
    let api_key = opened.record().api_key();
    let waf_seen = opened.record().waf_seen();
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| response.body().size_hint().exact().map(|n| n.to_string()))
        .unwrap_or_else(|| "-".to_owned());
    let mut out = String::new();
    for piece in pieces {
        let value: String = match piece {
            Piece::Text(text) => {
                out.push_str(text);
                continue;
            }
            Piece::Var(i) => match VARIABLES[*i] {
                "$context.requestId" => opened.id().to_string(),
                "$context.extendedRequestId" => opened.extended_id().to_owned(),
                "$context.identity.sourceIp" => line.source_ip.clone(),
                "$context.identity.userAgent" => line.user_agent.clone(),
                "$context.identity.apiKeyId" => api_key
                    .as_ref()
                    .map_or("-".to_owned(), |k| k.key_id().to_owned()),
                "$context.httpMethod" => line.method.clone(),
                "$context.resourcePath" => response
                    .extensions()
                    .get::<ResourcePath>()
                    .map_or("-".to_owned(), |r| r.0.to_string()),
                "$context.path" => line.path.clone(),
                "$context.protocol" => line.protocol.clone(),
                "$context.status" => response.status().as_u16().to_string(),
                "$context.responseLength" => length.clone(),
                "$context.responseLatency" => line.start.elapsed().as_millis().to_string(),
                "$context.requestTime" => {
                    let format = time::macros::format_description!(
                        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
                    );
                    line.time.format(&format).unwrap_or_else(|_| "-".to_owned())
                }
                "$context.requestTimeEpoch" => {
                    (line.time.unix_timestamp_nanos() / 1_000_000).to_string()
                }
                "$context.authorizer.principalId" => caller
                    .as_ref()
                    .map_or("-".to_owned(), |c| c.principal().to_owned()),
                "$context.authorizer.claims.sub" => caller
                    .as_ref()
                    .and_then(|c| c.claim("sub"))
                    .and_then(|v| v.as_str())
                    .map_or("-".to_owned(), str::to_owned),
                "$context.error.message" => {
                    refusal.as_ref().map_or("-".to_owned(), |r| r.1.clone())
                }
                "$context.error.responseType" => refusal
                    .as_ref()
                    .map_or("-".to_owned(), |r| r.0.as_str().to_owned()),
                "$context.waf.status" => {
                    if refusal
                        .as_ref()
                        .is_some_and(|r| r.0 == GatewayResponseType::WafFiltered)
                    {
                        response.status().as_u16().to_string()
                    } else if waf_seen {
                        "200".to_owned()
                    } else {
                        "-".to_owned()
                    }
                }
                _ => "-".to_owned(),
            },
        };
        // Values go into JSON templates inside quotes: escape them as JSON
        // string content so that a header cannot forge a field.
        let escaped = serde_json::to_string(&value).unwrap_or_default();
        out.push_str(&escaped[1..escaped.len().saturating_sub(1)]);
    }
    out
}
