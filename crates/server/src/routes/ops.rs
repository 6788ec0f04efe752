//! Operations: liveness, readiness and Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::App;
use crate::wire::ErrorBody;

type AppState = State<Arc<App>>;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: canon is loaded, the database answers and shutdown has not begun.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(app): AppState) -> Result<Json<serde_json::Value>, ApiError> {
    if !app.ready.load(Ordering::Acquire) {
        return Err(ApiError::unavailable(
            "not_ready",
            "the server is starting or stopping",
            1,
        ));
    }
    app.db.ping().await?;
    Ok(Json(serde_json::json!({
        "status": "ready",
        "in_flight": app.turns.in_flight(),
        "warm_sessions": app.turns.hot_sessions(),
    })))
}

/// Prometheus metrics (admin).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain"), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn metrics(State(app): AppState, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response())
}
