//! Canon written through the server: a writer's edit or revert, an accepted proposal. Each is a
//! commit limited to the graphs the caller's tenant may change, recorded in the audit log, after
//! which the served canon is loaded again (sessions use it from their next turn).

use std::sync::Arc;

use lore_canon::{Base, CanonError, Change, Commit, CommitMeta};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::Quad;

use crate::auth::{Caller, Role, random_hex};
use crate::db::{AuditRow, now_ms};
use crate::error::ApiError;
use crate::state::App;
use crate::wire::{ChangeOut, CommitDetail, CommitOut, NewCommit};

/// A commit as the API shows it, naming only the graphs the caller's tenant reads.
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
        .map_err(ApiError::from_canon)
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

/// Who did it, as the audit log and commits name them.
pub(crate) fn actor(caller: &Caller) -> String {
    format!("key {}", caller.key_id)
}

/// An audit entry of `caller`'s `action` on `target`, now.
pub(crate) fn audit_entry(
    caller: &Caller,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> AuditRow {
    AuditRow {
        id: random_hex(12),
        tenant: caller.tenant.clone(),
        actor: actor(caller),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.to_string(),
        created_ms: now_ms(),
    }
}

/// Commits listed when no limit is given.
const DEFAULT_LOG_LIMIT: usize = 100;

/// Canon's history as the caller's tenant sees it, newest first, at most `limit` commits.
pub(crate) async fn list_commits(
    app: Arc<App>,
    caller: Caller,
    limit: Option<usize>,
) -> Result<Vec<CommitOut>, ApiError> {
    caller.require(Role::Writer)?;
    let store = app.store.clone();
    let log = blocking(move || store.log()).await?;
    let readable = app.catalog().graphs(&caller.tenant);
    Ok(log
        .into_iter()
        .filter(|c| c.graphs.iter().any(|g| readable.contains(g)))
        .take(limit.unwrap_or(DEFAULT_LOG_LIMIT))
        .map(|c| commit_out(c, &readable))
        .collect())
}

/// Commit `rev` and its change in the caller's graphs.
pub(crate) async fn get_commit(
    app: Arc<App>,
    caller: Caller,
    rev: String,
) -> Result<CommitDetail, ApiError> {
    caller.require(Role::Writer)?;
    let commit = visible_commit(&app, &caller, &rev).await?;
    let store = app.store.clone();
    let id = commit.id.clone();
    let change = blocking(move || store.change(&id)).await?;
    let readable = app.catalog().graphs(&caller.tenant);
    Ok(CommitDetail {
        change: change_out(&change.within(&readable)),
        commit: commit_out(commit, &readable),
    })
}

/// What changed in the caller's graphs from canon as of `from` (`root`: before the first
/// commit) to canon as of `to`.
pub(crate) async fn diff(
    app: Arc<App>,
    caller: Caller,
    from: String,
    to: String,
) -> Result<ChangeOut, ApiError> {
    caller.require(Role::Writer)?;
    let store = app.store.clone();
    let from = Some(from).filter(|f| !f.eq_ignore_ascii_case("root"));
    let change = blocking(move || store.diff(from.as_deref(), &to)).await?;
    Ok(change_out(
        &change.within(&app.catalog().graphs(&caller.tenant)),
    ))
}

/// Commits a writer's edit of canon.
pub(crate) async fn post_commit(
    app: Arc<App>,
    caller: Caller,
    edit: NewCommit,
) -> Result<CommitOut, ApiError> {
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

/// Reverts commit `rev` (with `with_dependents`, also the later commits that depend on it).
pub(crate) async fn revert(
    app: Arc<App>,
    caller: Caller,
    rev: String,
    with_dependents: bool,
) -> Result<CommitOut, ApiError> {
    caller.require(Role::Writer)?;
    let target = visible_commit(&app, &caller, &rev).await?;
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
) -> Result<CommitOut, ApiError> {
    audit_commit(&app, caller, action, &commit).await?;
    let reloading = app.clone();
    blocking(move || reloading.reload_catalog()).await?;
    let readable = app.catalog().graphs(&caller.tenant);
    Ok(commit_out(commit, &readable))
}

/// Records a change of canon made through the server in the audit log.
pub(crate) async fn audit_commit(
    app: &App,
    caller: &Caller,
    action: &str,
    commit: &lore_canon::Commit,
) -> Result<(), ApiError> {
    let entry = audit_entry(
        caller,
        action,
        &commit.id,
        serde_json::json!({"message": commit.message, "added": commit.added, "removed": commit.removed, "reverts": commit.reverts}),
    );
    Ok(app.db.review.audit(&entry).await?)
}
