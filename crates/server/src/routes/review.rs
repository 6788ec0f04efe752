//! The writers' review queue over HTTP: proposals, decisions and the audit log
//! ([`crate::proposals`] does the work).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};
use crate::proposals::{self, AuditQuery, ListQuery};
use crate::state::App;
use crate::wire::{
    AcceptIn, AuditOut, DecisionIn, DraftCharacterIn, ErrorBody, NewProposal, ProposalOut,
    ProposeFact,
};

type Created = (StatusCode, Json<ProposalOut>);

/// Proposes a fact a session learned for canon.
#[utoipa::path(post, path = "/v1/sessions/{id}/proposals", tag = "review",
    params(("id" = String, Path, description = "Session id")),
    request_body = ProposeFact,
    responses((status = 201, body = ProposalOut),
              (status = 404, body = ErrorBody, description = "Unknown session or fact")),
    security(("api_key" = [])))]
pub async fn propose_fact(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProposeFact>,
) -> Result<Created, ApiError> {
    let out = proposals::propose_fact(app, caller, id, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Brings material (an import) to the review queue.
#[utoipa::path(post, path = "/v1/proposals", tag = "review",
    request_body = NewProposal,
    responses((status = 201, body = ProposalOut), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn post_proposal(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<NewProposal>,
) -> Result<Created, ApiError> {
    let out = proposals::post_proposal(app, caller, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Asks the model for a new character of a production, for review.
#[utoipa::path(post, path = "/v1/proposals/character", tag = "review",
    request_body = DraftCharacterIn,
    responses((status = 201, body = ProposalOut), (status = 400, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "The model's draft could not be used (named)"),
              (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn draft_character(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(body): ApiJson<DraftCharacterIn>,
) -> Result<Created, ApiError> {
    let out = proposals::draft_character(app, caller, body).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The review queue: the tenant's proposals, newest first.
#[utoipa::path(get, path = "/v1/proposals", tag = "review",
    params(("status" = Option<String>, Query, description = "pending, deferred, accepted or rejected (default: all)"),
           ("limit" = Option<i64>, Query, description = "At most this many (default 100)")),
    responses((status = 200, body = [ProposalOut]), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_proposals(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ProposalOut>>, ApiError> {
    Ok(Json(proposals::list_proposals(app, caller, query).await?))
}

/// One proposal.
#[utoipa::path(get, path = "/v1/proposals/{id}", tag = "review",
    params(("id" = String, Path, description = "Proposal id")),
    responses((status = 200, body = ProposalOut), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_proposal(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProposalOut>, ApiError> {
    Ok(Json(proposals::get_proposal(app, caller, id).await?))
}

/// Accepts a proposal, as it stands or edited: a commit of canon on the commit it was drafted
/// against.
#[utoipa::path(post, path = "/v1/proposals/{id}/accept", tag = "review",
    params(("id" = String, Path, description = "Proposal id")),
    request_body = AcceptIn,
    responses((status = 200, body = ProposalOut),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Already decided, or a conflict with canon changed since"),
              (status = 422, body = ErrorBody, description = "The rails refuse its text")),
    security(("api_key" = [])))]
pub async fn accept(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AcceptIn>,
) -> Result<Json<ProposalOut>, ApiError> {
    Ok(Json(proposals::accept(app, caller, id, body).await?))
}

/// Rejects a proposal, with the reason.
#[utoipa::path(post, path = "/v1/proposals/{id}/reject", tag = "review",
    params(("id" = String, Path, description = "Proposal id")),
    request_body = DecisionIn,
    responses((status = 200, body = ProposalOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reject(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionIn>,
) -> Result<Json<ProposalOut>, ApiError> {
    Ok(Json(proposals::reject(app, caller, id, body).await?))
}

/// Defers a proposal: it stays open for a later decision.
#[utoipa::path(post, path = "/v1/proposals/{id}/defer", tag = "review",
    params(("id" = String, Path, description = "Proposal id")),
    request_body = DecisionIn,
    responses((status = 200, body = ProposalOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn defer(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionIn>,
) -> Result<Json<ProposalOut>, ApiError> {
    Ok(Json(proposals::defer(app, caller, id, body).await?))
}

/// The tenant's audit log: proposals, decisions and canon changes made through the server.
#[utoipa::path(get, path = "/v1/audit", tag = "review",
    params(("limit" = Option<i64>, Query, description = "At most this many (default 100)")),
    responses((status = 200, body = [AuditOut]), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn audit_log(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditOut>>, ApiError> {
    Ok(Json(proposals::audit_log(app, caller, query).await?))
}
