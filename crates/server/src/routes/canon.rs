//! Canon's history over HTTP, for writers: the log, a commit and its change, diffs, edits and
//! reverts, each limited to the caller's tenant ([`crate::commits`] does the work).
//!
//! A writer reads the commits that changed a graph its tenant's productions read, and sees
//! only those graphs' part of each change. It may change only the graphs its productions read
//! and no other tenant's do. Every edit names the commit it was made against; edits that touch
//! what others changed since are refused (409) with the triples named. After a commit the
//! served canon is loaded again; sessions use it from their next turn.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::auth::Caller;
use crate::commits;
use crate::error::{ApiError, ApiJson};
use crate::state::App;
use crate::wire::{ChangeOut, CommitDetail, CommitOut, ErrorBody, NewCommit};

/// `?limit=`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    limit: Option<usize>,
}

/// Canon's history as the caller's tenant sees it, newest first.
#[utoipa::path(get, path = "/v1/canon/commits", tag = "canon",
    params(("limit" = Option<usize>, Query, description = "At most this many (default 100)")),
    responses((status = 200, body = [CommitOut]), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_commits(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(query): Query<LogQuery>,
) -> Result<Json<Vec<CommitOut>>, ApiError> {
    Ok(Json(commits::list_commits(app, caller, query.limit).await?))
}

/// One commit and its change in the caller's graphs.
#[utoipa::path(get, path = "/v1/canon/commits/{commit}", tag = "canon",
    params(("commit" = String, Path, description = "Commit id, unique prefix, head or head~N")),
    responses((status = 200, body = CommitDetail), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_commit(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(rev): Path<String>,
) -> Result<Json<CommitDetail>, ApiError> {
    Ok(Json(commits::get_commit(app, caller, rev).await?))
}

/// `?from=&to=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: String,
    to: String,
}

/// What changed in the caller's graphs from canon as of `from` (`root`: before the first
/// commit) to canon as of `to`.
#[utoipa::path(get, path = "/v1/canon/diff", tag = "canon",
    params(("from" = String, Query, description = "A commit, or root"),
           ("to" = String, Query, description = "A commit")),
    responses((status = 200, body = ChangeOut), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn diff(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(query): Query<DiffQuery>,
) -> Result<Json<ChangeOut>, ApiError> {
    Ok(Json(
        commits::diff(app, caller, query.from, query.to).await?,
    ))
}

/// Commits a writer's edit of canon.
#[utoipa::path(post, path = "/v1/canon/commits", tag = "canon",
    request_body = NewCommit,
    responses((status = 201, body = CommitOut),
              (status = 400, body = ErrorBody, description = "A malformed statement, or no change"),
              (status = 403, body = ErrorBody, description = "A graph the tenant may not change"),
              (status = 409, body = ErrorBody, description = "A conflict with commits since the base, or a removal canon does not hold")),
    security(("api_key" = [])))]
pub async fn post_commit(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(edit): ApiJson<NewCommit>,
) -> Result<(StatusCode, Json<CommitOut>), ApiError> {
    let commit = commits::post_commit(app, caller, edit).await?;
    Ok((StatusCode::CREATED, Json(commit)))
}

/// `?with_dependents=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevertQuery {
    #[serde(default)]
    with_dependents: bool,
}

/// Reverts a commit (and, when asked, the later commits that depend on it).
#[utoipa::path(post, path = "/v1/canon/commits/{commit}/revert", tag = "canon",
    params(("commit" = String, Path, description = "Commit id, unique prefix, head or head~N"),
           ("with_dependents" = Option<bool>, Query, description = "Also revert the later commits that changed the same triples, in the same commit")),
    responses((status = 201, body = CommitOut),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Later commits depend on it")),
    security(("api_key" = [])))]
pub async fn revert(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(rev): Path<String>,
    Query(query): Query<RevertQuery>,
) -> Result<(StatusCode, Json<CommitOut>), ApiError> {
    let commit = commits::revert(app, caller, rev, query.with_dependents).await?;
    Ok((StatusCode::CREATED, Json(commit)))
}
