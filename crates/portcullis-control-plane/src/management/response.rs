//! Answers and errors, rendered as API Gateway renders them.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use portcullis_core::response::X_AMZN_ERROR_TYPE;
use portcullis_quota::usage::{Usage, UsageError};
use serde::Serialize;

use crate::error::StoreError;

/// `Retry-After` of a 503: a store that was unreachable is probed again
/// several times a second, so one second is enough to find it back.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error, rendered as API Gateway renders its own.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        error_type: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
        }
    }

    pub(super) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    pub(super) fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = json(self.status, &serde_json::json!({ "message": self.message }));
        let headers = response.headers_mut();
        headers.insert(X_AMZN_ERROR_TYPE, HeaderValue::from_static(self.error_type));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // ServiceUnavailableException's `retryAfterSeconds` member.
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::Backend(source) => {
                tracing::error!(layer = "management", error = %source, "control-plane store failed");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerErrorException",
                    "Internal server error",
                );
            }
            StoreError::Unavailable(_) | StoreError::Unreachable(_) => {
                // Down or overloaded: retrying later is the remedy, so the
                // caller's SDK gets ServiceUnavailableException (503) with
                // `Retry-After`, not an internal error. The store's own
                // message stays in the log.
                tracing::warn!(layer = "management", %error, "control-plane store unavailable");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "Service Unavailable: the control-plane store cannot be reached; retry later",
                );
            }
            _ => {}
        }
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, error.error_type(), error.to_string())
    }
}

impl From<UsageError> for ApiError {
    fn from(error: UsageError) -> Self {
        match error {
            UsageError::Store(source) => {
                // The engine's errors are the store's.
                match source.downcast::<StoreError>() {
                    Ok(store) => ApiError::from(*store),
                    Err(other) => ApiError::from(StoreError::Backend(other)),
                }
            }
            other => ApiError::bad(other.to_string()),
        }
    }
}

pub(super) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    // Serialising our own view types into a Vec cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn accepted() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// A usage answer with the model's `values` and the usage admin's `items`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageView<'a> {
    usage_plan_id: &'a str,
    start_date: String,
    end_date: String,
    values: &'a BTreeMap<String, Vec<[u64; 2]>>,
    items: &'a BTreeMap<String, Vec<[u64; 2]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<&'a str>,
}

pub(super) fn usage_response(usage: &Usage) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        &UsageView {
            usage_plan_id: &usage.usage_plan_id,
            start_date: usage.start_date.to_string(),
            end_date: usage.end_date.to_string(),
            values: &usage.items,
            items: &usage.items,
            position: usage.position.as_deref(),
        },
    )
}
