//! [`WafRefusal`]: why the WAF refused a request.

use std::sync::Arc;

use portcullis_core::refusal::Refusal;
use portcullis_core::trace::Decision;
use portcullis_core::{GatewayResponse, GatewayResponseType};

use crate::engine::BlockResponse;

/// Why the WAF refused a request, as [`Refusal`] describes it.
///
/// A refusal's response carries it in its extensions (a block also carries
/// the [`WafOutcome`](crate::WafOutcome), which names the rule):
///
/// - **blocked** (`detail` `blocked`): a Block rule or the default action
///   blocked the request. The gateway response is `WAF_FILTERED`, with the
///   rule's custom response (status, headers, body) when it sets one;
/// - **unreadable body** (`detail` `unreadable_body`): the body failed while
///   the WAF read it for inspection. The gateway response is
///   `BAD_REQUEST_BODY`.
#[derive(Clone, Debug)]
pub struct WafRefusal {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Blocked { custom: Option<Arc<BlockResponse>> },
    UnreadableBody,
}

impl WafRefusal {
    /// A block, with the rule's custom response if it has one.
    pub(crate) fn blocked(custom: Option<Arc<BlockResponse>>) -> Self {
        Self {
            kind: Kind::Blocked { custom },
        }
    }

    /// A body that failed while it was read.
    pub(crate) fn unreadable_body() -> Self {
        Self {
            kind: Kind::UnreadableBody,
        }
    }

    /// Whether the web ACL blocked the request (rather than its body failing
    /// to read).
    #[must_use]
    pub fn is_blocked(&self) -> bool {
        matches!(self.kind, Kind::Blocked { .. })
    }

    /// Whether the blocking rule set a custom response.
    #[must_use]
    pub fn has_custom_response(&self) -> bool {
        matches!(self.kind, Kind::Blocked { custom: Some(_) })
    }
}

impl Refusal for WafRefusal {
    fn gateway_response(&self) -> GatewayResponse {
        match &self.kind {
            Kind::Blocked { custom } => {
                let mut response = GatewayResponse::new(GatewayResponseType::WafFiltered);
                if let Some(block) = custom {
                    response = response
                        .with_status(block.status)
                        .with_headers(block.headers.clone());
                    if let Some((content_type, body)) = &block.body {
                        response = response.with_body(content_type.clone(), body.clone());
                    }
                }
                response
            }
            Kind::UnreadableBody => GatewayResponse::new(GatewayResponseType::BadRequestBody),
        }
    }

    fn detail(&self) -> &'static str {
        match self.kind {
            Kind::Blocked { .. } => "blocked",
            Kind::UnreadableBody => "unreadable_body",
        }
    }

    /// As the provided method decides, without rendering a custom response.
    fn decision(&self) -> Decision {
        let kind = match self.kind {
            Kind::Blocked { .. } => GatewayResponseType::WafFiltered,
            Kind::UnreadableBody => GatewayResponseType::BadRequestBody,
        };
        Decision::refused(kind).with_detail(self.detail())
    }
}
