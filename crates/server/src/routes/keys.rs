//! API keys of the caller's tenant, for its admins.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::auth::{Caller, Role, check_tenant, create_key};
use crate::db::KeyRow;
use crate::error::{ApiError, ApiJson};
use crate::state::App;
use crate::wire::{CreateKey, CreatedKey, ErrorBody, KeyOut};

type AppState = State<Arc<App>>;

fn key_out(row: KeyRow) -> KeyOut {
    KeyOut {
        id: row.id,
        tenant: row.tenant,
        role: row.role,
        label: row.label,
        created_ms: row.created_ms,
        expires_ms: row.expires_ms,
        revoked_ms: row.revoked_ms,
    }
}

/// Lists the keys of the caller's tenant (admin).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = [KeyOut]), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_keys(
    State(app): AppState,
    caller: Caller,
) -> Result<Json<Vec<KeyOut>>, ApiError> {
    caller.require(Role::Admin)?;
    let keys = app.db.keys.list(Some(&caller.tenant)).await?;
    Ok(Json(keys.into_iter().map(key_out).collect()))
}

/// Makes a key for the caller's tenant (admin). The secret is shown only in this response.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn post_key(
    State(app): AppState,
    caller: Caller,
    ApiJson(request): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    caller.require(Role::Admin)?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::invalid(format!(
            "field `role`: '{}' is not one of player, writer, admin",
            request.role
        ))
    })?;
    check_tenant(&caller.tenant).map_err(ApiError::invalid)?;
    let valid_for = request
        .expires_in_days
        .map(|d| Duration::from_secs(u64::from(d) * 86_400));
    let new = create_key(&app.db, &caller.tenant, role, &request.label, valid_for).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: new.key,
            info: key_out(new.row),
        }),
    ))
}

/// Revokes a key of the caller's tenant (admin).
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_key(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    if !app.db.keys.revoke(&id, Some(&caller.tenant)).await? {
        return Err(ApiError::not_found(
            "unknown_key",
            format!("no active key '{id}' in this tenant"),
        ));
    }
    app.keys.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}
