//! The one place errors become HTTP responses:
//! `{"error": "<ErrorType>", "message": "...", "status_code": N}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use hangar_runtime::RuntimeError;

/// An error answered to a REST client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Error type name, e.g. `ProviderNotFoundError`.
    pub kind: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// The body of every REST error response (and of the 401/403/413 answers on
/// `/mcp`, which come from the same middleware).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "error": "ProviderNotFoundError",
    "message": "provider 'math' not found",
    "status_code": 404
}))]
pub struct ErrorBody {
    /// Error type name, e.g. `ProviderNotFoundError`, `ValidationError`.
    pub error: String,
    /// Human-readable description.
    pub message: String,
    /// The HTTP status code, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status_code: u16,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 422 naming the offending field or parameter.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", message)
    }

    /// 404 for an unknown route.
    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route for {path}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.kind.to_owned(),
            message: self.message,
            status_code: self.status.as_u16(),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let (status, kind) = match &e {
            RuntimeError::NotFound(_) => (StatusCode::NOT_FOUND, "ProviderNotFoundError"),
            RuntimeError::AlreadyExists(_) => (StatusCode::CONFLICT, "ProviderAlreadyExistsError"),
            RuntimeError::InvalidSpec(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ValidationError"),
            RuntimeError::Removed(_) => (StatusCode::CONFLICT, "ProviderRemovedError"),
            RuntimeError::InUse { .. } => (StatusCode::CONFLICT, "InUseError"),
            RuntimeError::GroupNotFound(_) => (StatusCode::NOT_FOUND, "GroupNotFoundError"),
            RuntimeError::MemberNotFound { .. } => (StatusCode::NOT_FOUND, "MemberNotFoundError"),
            RuntimeError::Spawn { .. }
            | RuntimeError::StartTimeout { .. }
            | RuntimeError::Upstream(_) => (StatusCode::BAD_GATEWAY, "ProviderStartError"),
            RuntimeError::AtCapacity { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "ProviderCapacityError")
            }
            RuntimeError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "StorageError"),
            RuntimeError::AppendOnly(_) => (StatusCode::CONFLICT, "AppendOnlyStreamError"),
            RuntimeError::Subscription { .. } => (StatusCode::BAD_GATEWAY, "SubscriptionError"),
        };
        Self::new(status, kind, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let kind = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
            StatusCode::UNPROCESSABLE_ENTITY => "ValidationError",
            _ => "BadRequest",
        };
        Self::new(status, kind, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::validation(r.body_text())
    }
}
