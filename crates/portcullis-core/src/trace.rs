//! The one `tracing` vocabulary of every layer's decision: the span each
//! layer opens, its fields, and the values they take.
//!
//! Every layer opens its span with [`layer_span!`](crate::layer_span) around
//! its own decision (the store it awaits included, the inner service
//! excluded), and records on it what it decided with [`Decision::record`],
//! [`record_key_id`], [`record_principal`] and [`record_plan_id`]. Its
//! decision events carry the same fields with the same values, so that one
//! filter (`outcome="refused"`, `reason="THROTTLED"`) finds a decision
//! whichever layer made it.
//!
//! | field | value |
//! |---|---|
//! | `layer` | the layer: `waf`, `sigv4`, `jwt`, `authorizer`, `api_key`, `throttle`, `quota`, `openapi`, `graphql`, `identity_pool` |
//! | `outcome` | [`ALLOWED`] or [`REFUSED`] |
//! | `reason` | [`OK`] when allowed; the gateway response's type ([`GatewayResponseType::as_str`], such as `INVALID_API_KEY`, `THROTTLED`, `QUOTA_EXCEEDED`, `WAF_FILTERED`, `ACCESS_DENIED`) when refused; [`STORE_ERROR`] when allowed because the layer's store failed and the layer fails open |
//! | `detail` | the layer's finer reason, in `snake_case` (`unknown`, `bucket_empty`, `explicit_deny`) |
//! | `key_id` | the API key's id, never its value |
//! | `principal` | the caller the request was authenticated as |
//! | `plan_id` | the usage plan the decision applied |
//!
//! # The span's level
//!
//! A layer's span is at DEBUG. A request crosses up to six layers, and the
//! request's own INFO span (opened by the access log) already carries what
//! they decided together: an application that logs at INFO gets one span
//! per request, not seven. Turn `portcullis=debug` on to see which layer
//! decided, and how long its decision took. A span that no subscriber wants
//! costs one check of the level filter, and recording on it costs nothing.
//!
//! # Example
//!
//! ```
//! use portcullis_core::GatewayResponseType;
//! use portcullis_core::trace::{self, Decision};
//!
//! let span = portcullis_core::layer_span!("api_key");
//! let _entered = span.enter();
//! // ... the layer decides ...
//! let decision = Decision::refused(GatewayResponseType::InvalidApiKey).with_detail("unknown");
//! decision.record(&span);
//! trace::record_key_id(&span, "k-1");
//! assert_eq!(decision.reason(), "INVALID_API_KEY");
//! assert_eq!(decision.outcome().as_str(), trace::REFUSED);
//! ```

use tracing::Span;

use crate::GatewayResponseType;

/// The `outcome` of a request a layer let through.
pub const ALLOWED: &str = "allowed";
/// The `outcome` of a request a layer answered itself.
pub const REFUSED: &str = "refused";
/// The `reason` of a request a layer let through.
pub const OK: &str = "OK";
/// The `reason` of a request a layer let through because its store failed
/// and it fails open (as API Gateway serves a request whose usage-plan check
/// failed internally).
pub const STORE_ERROR: &str = "STORE_ERROR";

/// What a layer did with a request: the `outcome` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Passed on to the inner service: [`ALLOWED`].
    Allowed,
    /// Answered with a gateway response: [`REFUSED`].
    Refused,
}

impl Outcome {
    /// The field's value: [`ALLOWED`] or [`REFUSED`].
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => ALLOWED,
            Outcome::Refused => REFUSED,
        }
    }
}

/// A layer's decision, as its span and its events record it: the
/// `outcome`, the `reason` and the `detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    outcome: Outcome,
    reason: &'static str,
    detail: Option<&'static str>,
}

impl Decision {
    /// Let through: [`ALLOWED`], [`OK`].
    #[must_use]
    pub const fn allowed() -> Self {
        Self {
            outcome: Outcome::Allowed,
            reason: OK,
            detail: None,
        }
    }

    /// Let through because the layer's store failed and the layer fails
    /// open: [`ALLOWED`], [`STORE_ERROR`].
    #[must_use]
    pub const fn fail_open() -> Self {
        Self {
            outcome: Outcome::Allowed,
            reason: STORE_ERROR,
            detail: None,
        }
    }

    /// Answered with the gateway response `kind`: [`REFUSED`], with the
    /// type's name (such as `INVALID_API_KEY`) as the reason.
    #[must_use]
    pub const fn refused(kind: GatewayResponseType) -> Self {
        Self {
            outcome: Outcome::Refused,
            reason: kind.as_str(),
            detail: None,
        }
    }

    /// The same decision with the layer's finer reason, in `snake_case`.
    #[must_use]
    pub const fn with_detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The `outcome`.
    #[must_use]
    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The `reason`: [`OK`], [`STORE_ERROR`], or a gateway response type's
    /// name.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        self.reason
    }

    /// The `detail`, if the layer gave one.
    #[must_use]
    pub const fn detail(&self) -> Option<&'static str> {
        self.detail
    }

    /// Records the decision on a layer's span (one that
    /// [`layer_span!`](crate::layer_span) opened). Nothing when no
    /// subscriber wants the span.
    #[inline]
    pub fn record(&self, span: &Span) {
        if span.is_disabled() {
            return;
        }
        span.record("outcome", self.outcome.as_str());
        span.record("reason", self.reason);
        if let Some(detail) = self.detail {
            span.record("detail", detail);
        }
    }
}

/// Records the API key's id (never its value) on a layer's span.
#[inline]
pub fn record_key_id(span: &Span, key_id: &str) {
    if !span.is_disabled() {
        span.record("key_id", key_id);
    }
}

/// Records the principal the request was authenticated as on a layer's span.
#[inline]
pub fn record_principal(span: &Span, principal: &str) {
    if !span.is_disabled() {
        span.record("principal", principal);
    }
}

/// Records the usage plan's id on a layer's span.
#[inline]
pub fn record_plan_id(span: &Span, plan_id: &str) {
    if !span.is_disabled() {
        span.record("plan_id", plan_id);
    }
}

/// Opens a layer's DEBUG span, `portcullis.<layer>`, with the fields of the
/// [vocabulary](crate::trace) empty until the layer records them: `layer`,
/// `outcome`, `reason`, `detail`, `key_id`, `principal` and `plan_id`. More
/// fields may follow the layer's name, as in `tracing::debug_span!`.
///
/// The span's target is the module that opens it, as for the layer's events.
/// Enter it around the layer's decision only: the inner service's own spans
/// then stay children of the request's span.
///
/// ```
/// let span = portcullis_core::layer_span!("waf", acl = "main");
/// assert!(span.is_disabled()); // no subscriber in this example
/// ```
#[macro_export]
macro_rules! layer_span {
    ($layer:literal $(, $($fields:tt)*)?) => {
        $crate::trace::__private::tracing::debug_span!(
            concat!("portcullis.", $layer),
            layer = $layer,
            outcome = $crate::trace::__private::tracing::field::Empty,
            reason = $crate::trace::__private::tracing::field::Empty,
            detail = $crate::trace::__private::tracing::field::Empty,
            key_id = $crate::trace::__private::tracing::field::Empty,
            principal = $crate::trace::__private::tracing::field::Empty,
            plan_id = $crate::trace::__private::tracing::field::Empty
            $(, $($fields)*)?
        )
    };
}

#[doc(hidden)]
pub mod __private {
    pub use tracing;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    /// A subscriber that keeps every span's name, level and fields as they
    /// are created and recorded.
    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<Vec<Seen>>>);

    /// A span's name, level and fields (`(name, value)`, in the order set).
    type Seen = (String, tracing::Level, Vec<(String, String)>);

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    impl Subscriber for Spans {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut spans = self.0.lock().expect("no test panicked holding the lock");
            let mut fields = Vec::new();
            span.record(&mut Fields(&mut fields));
            let names = span
                .metadata()
                .fields()
                .iter()
                .map(|f| f.name().to_owned())
                .collect::<Vec<_>>();
            fields.push(("(declared)".to_owned(), names.join(",")));
            spans.push((
                span.metadata().name().to_owned(),
                *span.metadata().level(),
                fields,
            ));
            Id::from_u64(spans.len() as u64)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut spans = self.0.lock().expect("no test panicked holding the lock");
            let index = usize::try_from(span.into_u64()).expect("small") - 1;
            values.record(&mut Fields(&mut spans[index].2));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
        fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_span_is_named_for_its_layer_at_debug_with_every_field_empty_until_recorded() {
        let spans = Spans::default();
        tracing::subscriber::with_default(spans.clone(), || {
            let span = crate::layer_span!("api_key", extra = 7);
            Decision::refused(GatewayResponseType::InvalidApiKey)
                .with_detail("unknown")
                .record(&span);
            record_key_id(&span, "k-1");
            record_principal(&span, "user-7");
            record_plan_id(&span, "gold");
            let _quiet = crate::layer_span!("quota");
        });
        let spans = spans.0.lock().expect("no test panicked holding the lock");
        let (name, level, fields) = &spans[0];
        assert_eq!(name, "portcullis.api_key");
        assert_eq!(*level, tracing::Level::DEBUG);
        assert_eq!(
            field(fields, "(declared)"),
            Some("layer,outcome,reason,detail,key_id,principal,plan_id,extra")
        );
        assert_eq!(field(fields, "layer"), Some("api_key"));
        assert_eq!(field(fields, "extra"), Some("7"));
        assert_eq!(field(fields, "outcome"), Some("refused"));
        assert_eq!(field(fields, "reason"), Some("INVALID_API_KEY"));
        assert_eq!(field(fields, "detail"), Some("unknown"));
        assert_eq!(field(fields, "key_id"), Some("k-1"));
        assert_eq!(field(fields, "principal"), Some("user-7"));
        assert_eq!(field(fields, "plan_id"), Some("gold"));
        // Nothing recorded: only `layer` has a value.
        let (name, _, fields) = &spans[1];
        assert_eq!(name, "portcullis.quota");
        assert_eq!(field(fields, "layer"), Some("quota"));
        for empty in [
            "outcome",
            "reason",
            "detail",
            "key_id",
            "principal",
            "plan_id",
        ] {
            assert_eq!(field(fields, empty), None, "{empty}");
        }
    }

    #[test]
    fn decisions_say_allowed_or_refused_with_a_gateway_response_type() {
        let allowed = Decision::allowed();
        assert_eq!(
            (
                allowed.outcome().as_str(),
                allowed.reason(),
                allowed.detail()
            ),
            ("allowed", "OK", None)
        );
        let open = Decision::fail_open().with_detail("store_error");
        assert_eq!(
            (open.outcome().as_str(), open.reason(), open.detail()),
            ("allowed", "STORE_ERROR", Some("store_error"))
        );
        for kind in GatewayResponseType::ALL {
            let refused = Decision::refused(*kind);
            assert_eq!(refused.outcome(), Outcome::Refused);
            assert_eq!(refused.reason(), kind.as_str());
        }
        assert_eq!(
            Decision::refused(GatewayResponseType::Throttled).reason(),
            "THROTTLED"
        );
    }
}
