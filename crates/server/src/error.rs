//! Errors as the wire shows them: a status, a stable code and a message naming what is wrong.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use lore_canon::CanonError;

use crate::db::DbError;

/// An error response: `{"error": {"code": "...", "message": "..."}}`.
///
/// Codes are stable identifiers clients may match on; messages are for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, snake_case identifier.
    pub code: &'static str,
    /// What went wrong, naming the field, value or resource.
    pub message: String,
    /// Seconds a client should wait before retrying (503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with code `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 for a resource the caller cannot see (whether or not it exists elsewhere).
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 403: the key is valid but its role may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 401: no valid key.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 503 with a `Retry-After`.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 500: a fault of ours; the message is logged, the client gets a generic one.
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// What the engine refused or failed at: a likeness-consent refusal is the client's
    /// (403, citing the consent record); policy the engine cannot enforce is the studio's.
    pub fn from_engine(error: lore_engine::EngineError) -> ApiError {
        match error {
            lore_engine::EngineError::Consent(refusal) => ApiError::new(
                StatusCode::FORBIDDEN,
                "likeness_consent",
                refusal.to_string(),
            ),
            lore_engine::EngineError::Draft(reason) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "draft_failed",
                format!("{reason}; try another seed or brief"),
            ),
            lore_engine::EngineError::Policy(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "policy_invalid",
                e.to_string(),
            ),
            other => ApiError::internal(other),
        }
    }

    /// How a canon error reads on the wire.
    pub fn from_canon(error: CanonError) -> ApiError {
        let message = error.to_string();
        match error {
            CanonError::UnknownCommit { .. } => ApiError::not_found("unknown_commit", message),
            CanonError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            CanonError::NotHeld { .. } => ApiError::new(StatusCode::CONFLICT, "not_held", message),
            CanonError::RevertBlocked { .. } => {
                ApiError::new(StatusCode::CONFLICT, "revert_blocked", message)
            }
            CanonError::OutsideScope { .. } | CanonError::ReservedGraph { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "graph_not_writable", message)
            }
            CanonError::NoChange => ApiError::new(StatusCode::BAD_REQUEST, "no_change", message),
            CanonError::AmbiguousCommit { .. } | CanonError::AddedAndRemoved { .. } => {
                ApiError::invalid(message)
            }
            other => ApiError::internal(other),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match &rejection {
            JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is over the server's limit",
                )
            }
            other => ApiError::new(other.status(), "invalid_request", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::invalid(rejection.body_text())
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> ApiError {
        match error {
            DbError::Unavailable(reason) => ApiError::unavailable(
                "database_unavailable",
                format!("the session database is unavailable: {reason}"),
                5,
            ),
            DbError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            other => ApiError::internal(other),
        }
    }
}

/// Extracts a JSON body, turning every way it can be wrong into an [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}
