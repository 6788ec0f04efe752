//! Canon's history over HTTP, for writers: the log, a commit and its change, diffs, edits and
//! reverts, each limited to the caller's tenant.
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
use lore_canon::{Base, CanonError, Change, Commit, CommitMeta};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::Quad;
use serde::Deserialize;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson};
use crate::state::App;
use crate::wire::{ChangeOut, CommitDetail, CommitOut, ErrorBody, NewCommit};

/// Commits listed when no limit is given.
const DEFAULT_LOG_LIMIT: usize = 100;

/// How a canon error reads on the wire.
pub(crate) fn canon_error(error: CanonError) -> ApiError {
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

fn commit_out(commit: Commit, readable: &[String]) -> CommitOut {
    CommitOut {
        graphs: commit
            .graphs
            .into_iter()
            .filter(|g| readable.contains(g))
            .collect(),
        id: commit.id,
        sequence: commit.sequence,
        parent: commit.parent,
        based_on: commit.based_on,
        author: commit.author,
        time: commit.time,
        message: commit.message,
        provenance: commit.provenance,
        reverts: commit.reverts,
        added: commit.added,
        removed: commit.removed,
    }
}

pub(crate) fn change_out(change: &Change) -> ChangeOut {
    let lines = |quads: &[Quad]| quads.iter().map(|q| format!("{q} .")).collect();
    ChangeOut {
        added: lines(&change.added),
        removed: lines(&change.removed),
    }
}

/// Runs canon work off the async threads (RocksDB blocks).
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CanonError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(canon_error)
}

/// The commit `rev` names, if the caller's tenant may see it.
async fn visible_commit(app: &Arc<App>, caller: &Caller, rev: &str) -> Result<Commit, ApiError> {
    let store = app.store.clone();
    let rev_owned = rev.to_owned();
    let commit = blocking(move || store.commit(&rev_owned)).await?;
    let readable = app.catalog().graphs(&caller.tenant);
    if commit.graphs.iter().any(|g| readable.contains(g)) {
        Ok(commit)
    } else {
        Err(ApiError::not_found(
            "unknown_commit",
            format!("no commit '{rev}' changed this tenant's canon"),
        ))
    }
}

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
    caller.require(Role::Writer)?;
    let store = app.store.clone();
    let log = blocking(move || store.log()).await?;
    let readable = app.catalog().graphs(&caller.tenant);
    Ok(Json(
        log.into_iter()
            .filter(|c| c.graphs.iter().any(|g| readable.contains(g)))
            .take(query.limit.unwrap_or(DEFAULT_LOG_LIMIT))
            .map(|c| commit_out(c, &readable))
            .collect(),
    ))
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
    caller.require(Role::Writer)?;
    let commit = visible_commit(&app, &caller, &rev).await?;
    let store = app.store.clone();
    let id = commit.id.clone();
    let change = blocking(move || store.change(&id)).await?;
    let readable = app.catalog().graphs(&caller.tenant);
    Ok(Json(CommitDetail {
        change: change_out(&change.within(&readable)),
        commit: commit_out(commit, &readable),
    }))
}

/// `?from=&to=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    pub(crate) from: String,
    pub(crate) to: String,
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
    caller.require(Role::Writer)?;
    let store = app.store.clone();
    let from = Some(query.from).filter(|f| !f.eq_ignore_ascii_case("root"));
    let change = blocking(move || store.diff(from.as_deref(), &query.to)).await?;
    Ok(Json(change_out(
        &change.within(&app.catalog().graphs(&caller.tenant)),
    )))
}

/// Parses the statements of field `field`.
pub(crate) fn parse_statements(field: &str, lines: &[String]) -> Result<Vec<Quad>, ApiError> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let text = line.trim();
            let text = if text.ends_with('.') {
                text.to_owned()
            } else {
                format!("{text} .")
            };
            let mut quads = RdfParser::from_format(RdfFormat::NQuads)
                .for_slice(text.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ApiError::invalid(format!(
                        "field `{field}[{i}]`: not an N-Quads statement: {e}"
                    ))
                })?;
            match (quads.pop(), quads.is_empty()) {
                (Some(quad), true) => Ok(quad),
                _ => Err(ApiError::invalid(format!(
                    "field `{field}[{i}]`: give exactly one N-Quads statement"
                ))),
            }
        })
        .collect()
}

/// A commit by `caller`, limited to the graphs its tenant's writers may change.
pub(crate) fn writable_meta(app: &App, caller: &Caller, message: String) -> CommitMeta {
    CommitMeta {
        scope: Some(app.catalog().writable_graphs(&caller.tenant)),
        ..CommitMeta::new(format!("key {}", caller.key_id), message)
    }
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
    caller.require(Role::Writer)?;
    if edit.message.trim().is_empty() {
        return Err(ApiError::invalid("field `message`: say why canon changes"));
    }
    let change = Change::new(
        parse_statements("add", &edit.add)?,
        parse_statements("remove", &edit.remove)?,
    );
    let base = match edit.base.trim() {
        b if b.eq_ignore_ascii_case("root") => Base::Root,
        b => Base::Commit(b.to_owned()),
    };
    let meta = writable_meta(&app, &caller, edit.message);
    let store = app.store.clone();
    let commit = blocking(move || store.commit_change(&base, meta, change)).await?;
    committed(app, &caller, "canon_commit", commit).await
}

/// `?with_dependents=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevertQuery {
    #[serde(default)]
    with_dependents: bool,
}

impl RevertQuery {
    /// A revert, of the commit alone or with its dependents.
    pub(crate) fn new(with_dependents: bool) -> Self {
        Self { with_dependents }
    }
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
    caller.require(Role::Writer)?;
    let target = visible_commit(&app, &caller, &rev).await?;
    let with_dependents = query.with_dependents;
    let meta = writable_meta(&app, &caller, String::new());
    let store = app.store.clone();
    let commit = blocking(move || store.revert(&target.id, meta, with_dependents)).await?;
    committed(app, &caller, "canon_revert", commit).await
}

/// Audits the commit and serves the new canon, then answers with the commit.
async fn committed(
    app: Arc<App>,
    caller: &Caller,
    action: &str,
    commit: Commit,
) -> Result<(StatusCode, Json<CommitOut>), ApiError> {
    crate::review::audit_commit(&app, caller, action, &commit).await?;
    let reloading = app.clone();
    blocking(move || reloading.reload_catalog()).await?;
    let readable = app.catalog().graphs(&caller.tenant);
    Ok((StatusCode::CREATED, Json(commit_out(commit, &readable))))
}
