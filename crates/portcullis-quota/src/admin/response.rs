//! What the admin service answers: errors as API Gateway renders its own,
//! and API Gateway's JSON representations of plans and keys.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use portcullis_core::plan::{ThrottleSettings, UsagePlan};
use portcullis_core::response::X_AMZN_ERROR_TYPE;
use serde::Serialize;

use super::directory::PlanKey;
use crate::usage::UsageError;

/// An admin error, rendered as API Gateway renders its own.
#[derive(Debug)]
pub(super) struct AdminError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
    allow: Option<&'static str>,
}

impl AdminError {
    pub(super) fn new(
        status: StatusCode,
        error_type: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            allow: None,
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    pub(super) fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowedException",
                "Method Not Allowed",
            )
        }
    }

    pub(super) fn into_response(self) -> Response<Full<Bytes>> {
        let mut response =
            json_response(self.status, &serde_json::json!({ "message": self.message }));
        response
            .headers_mut()
            .insert(X_AMZN_ERROR_TYPE, HeaderValue::from_static(self.error_type));
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<UsageError> for AdminError {
    fn from(error: UsageError) -> Self {
        match error {
            UsageError::Store(source) => {
                tracing::error!(layer = "quota_admin", error = %source, "quota store error");
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerErrorException",
                    "Internal server error",
                )
            }
            other => AdminError::bad_request(other.to_string()),
        }
    }
}

pub(super) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    // Serialising our own view types into a Vec cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn ok<T: Serialize>(value: &T) -> Result<Response<Full<Bytes>>, AdminError> {
    Ok(json_response(StatusCode::OK, value))
}

/// API Gateway's JSON representation of a [`UsagePlan`] (its `UsagePlan`
/// shape, with the wire names: `apiStages`, `burstLimit`, `rateLimit`),
/// as GetUsagePlan answers it; serialize it with serde.
///
/// The usage admin service answers with it, and so does the control
/// plane's management API (with the plan's tags beside it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanView<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    api_stages: Vec<StageView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttle: Option<ThrottleView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaView>,
}

/// API Gateway's `ApiStage`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StageView<'a> {
    api_id: &'a str,
    stage: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    throttle: BTreeMap<String, ThrottleView>,
}

/// API Gateway's `ThrottleSettings`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThrottleView {
    burst_limit: u32,
    rate_limit: f64,
}

impl From<&ThrottleSettings> for ThrottleView {
    fn from(t: &ThrottleSettings) -> Self {
        Self {
            burst_limit: t.burst_limit().get(),
            rate_limit: t.rate_limit(),
        }
    }
}

/// API Gateway's `QuotaSettings`.
#[derive(Debug, Serialize)]
struct QuotaView {
    limit: u64,
    offset: u64,
    period: String,
}

impl<'a> UsagePlanView<'a> {
    /// `plan` as API Gateway represents it.
    #[must_use]
    pub fn of(plan: &'a UsagePlan) -> Self {
        Self {
            id: plan.id(),
            name: plan.name(),
            description: plan.description(),
            api_stages: plan
                .api_stages()
                .iter()
                .map(|stage| StageView {
                    api_id: &stage.api_id,
                    stage: &stage.stage,
                    throttle: stage
                        .throttle
                        .iter()
                        .map(|(selector, t)| (selector.to_string(), t.into()))
                        .collect(),
                })
                .collect(),
            throttle: plan.throttle().map(Into::into),
            quota: plan.quota().map(|q| QuotaView {
                limit: q.limit(),
                offset: q.offset(),
                period: q.period().to_string(),
            }),
        }
    }
}

/// API Gateway's `UsagePlanKey` (without the key's value).
#[derive(Serialize)]
pub(super) struct KeyView {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl KeyView {
    pub(super) fn of(key: PlanKey) -> Self {
        Self {
            id: key.id,
            kind: "API_KEY",
            name: key.name,
        }
    }
}
