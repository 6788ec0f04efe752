//! Authenticity over HTTP: the public signing keys, and verification of a text's watermark,
//! provenance record and C2PA sidecar.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use lore_mark::PublicKey;

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::state::App;
use crate::verifier::{VerifyIn, VerifyOut};
use crate::wire::ErrorBody;

/// The public keys provenance records are signed with (retired keys too: what they signed
/// stays verifiable).
#[utoipa::path(get, path = "/v1/provenance/keys", tag = "authenticity",
    responses((status = 200, body = [Object])),
    security(("api_key" = [])))]
pub async fn public_keys(State(app): State<Arc<App>>, _caller: Caller) -> Json<Vec<PublicKey>> {
    Json(app.verifier.public_keys.clone())
}

/// Checks a text for this installation's watermark and, when given, its provenance record.
#[utoipa::path(post, path = "/v1/verify", tag = "authenticity", request_body = VerifyIn,
    responses((status = 200, body = VerifyOut), (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn verify(
    State(app): State<Arc<App>>,
    _caller: Caller,
    ApiJson(request): ApiJson<VerifyIn>,
) -> Result<Json<VerifyOut>, ApiError> {
    tokio::task::spawn_blocking(move || app.verifier.check(request).map(Json))
        .await
        .map_err(ApiError::internal)?
}
