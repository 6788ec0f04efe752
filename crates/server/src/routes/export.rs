//! A stored session's conversation as text with a signed C2PA sidecar.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lore_engine::ExportFormat;
use lore_mark::ExportProvenance;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::export::{EXPORT_MEDIA_TYPE, session_export};
use crate::sessions::visible_session;
use crate::state::App;
use crate::wire::ErrorBody;

/// What an export holds.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormatParam {
    /// Both sides, turn by turn.
    #[default]
    Transcript,
    /// The character's replies alone.
    Replies,
}

/// The export's query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `transcript` (default) or `replies`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub format: FormatParam,
}

/// An export and its sidecar.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportOut {
    /// The file's text.
    pub text: String,
    /// Its media type.
    pub media_type: String,
    /// Base64 of the C2PA manifest store to save beside it as `FILE.c2pa`.
    pub c2pa: String,
    /// What the sidecar records: the export's record and its replies' signed records.
    #[schema(value_type = Object)]
    pub provenance: ExportProvenance,
}

/// A session's conversation as text, with a signed C2PA sidecar that hashes its bytes.
#[utoipa::path(get, path = "/v1/sessions/{id}/export", tag = "authenticity",
    params(("id" = String, Path, description = "Session id"), ExportQuery),
    responses((status = 200, body = ExportOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The session has no turns yet"),
              (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_export(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Json<ExportOut>, ApiError> {
    let row = visible_session(&app, &caller, &id).await?;
    let Some(credentials) = &app.verifier.c2pa else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_credentials",
            "this server has no C2PA credentials to sign exports with",
        ));
    };
    let served = app.catalog().production(&row.tenant, &row.production)?;
    let format = match query.format {
        FormatParam::Transcript => ExportFormat::Transcript,
        FormatParam::Replies => ExportFormat::Replies,
    };
    let catalog = app.catalog();
    let player = &catalog.options().player_label;
    let export = session_export(&app.db, &row, &served.world, player, format).await?;
    if export.text.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "empty_session",
            format!("session {id} has no turns yet: there is nothing to export"),
        ));
    }
    // Signing takes a fraction of a millisecond (`lore bench sidecar`): no blocking thread.
    let c2pa = credentials
        .sign_sidecar(
            export.text.as_bytes(),
            EXPORT_MEDIA_TYPE,
            &format!("{id}.txt"),
            &export.provenance,
        )
        .map_err(ApiError::internal)?;
    Ok(Json(ExportOut {
        text: export.text,
        media_type: EXPORT_MEDIA_TYPE.into(),
        c2pa: BASE64.encode(c2pa),
        provenance: export.provenance,
    }))
}
