//! The writers' review queue: material that would change canon waits here for a writer.
//!
//! A proposal is a change of canon (N-Quads to add and remove) drafted against a commit, with
//! its source: a fact a session learned (proposed by the session's owner or an admin, with the
//! transcript around it and the reply's provenance), a character the model drafted at a
//! writer's request (with the draft's signed record), or an import a writer brings.
//! The production's rails judge its text when it is proposed and again when a writer edits it;
//! a proposal they refuse cannot be accepted as it stands. Writers accept (optionally editing:
//! acceptance is a commit of canon, carrying the proposal's provenance), reject with a reason,
//! or defer. Decisions are serialised, and a proposal is decided once: a second decision gets
//! 409. Every proposal, decision and canon change made here goes into the audit log.

use std::sync::Arc;

use axum::http::StatusCode;
use lore_canon::{Base, Change, CharacterDraft, CommitMeta, FactDraft};
use lore_guard::{Action, Rails};
use oxigraph::model::{Quad, Term};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role, random_hex};
use crate::catalog::{Served, local_id};
use crate::commits::{actor, audit_entry, blocking, change_out, parse_statements, writable_meta};
use crate::db::{Decision, ProposalRow, now_ms};
use crate::error::ApiError;
use crate::sessions::{session_graph, visible_session};
use crate::state::App;
use crate::wire::{
    AcceptIn, AuditOut, DecisionIn, DraftCharacterIn, NewProposal, ProposalOut, ProposalSource,
    ProposeFact, RailOut,
};

/// Proposals or audit entries listed when no limit is given.
const DEFAULT_LIMIT: i64 = 100;

/// What the rails said about a proposal's text, as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RailsVerdict {
    blocked: bool,
    fired: Vec<RailOut>,
}

/// The production's rails on every literal a change adds.
fn judge(app: &App, served: &Served, change: &Change) -> Result<RailsVerdict, ApiError> {
    let semantic = app.catalog().options().semantic.clone();
    let rails =
        Rails::for_production(&served.world, semantic.as_ref()).map_err(ApiError::internal)?;
    let mut verdict = RailsVerdict::default();
    for quad in &change.added {
        if let Term::Literal(text) = &quad.object {
            let decision = rails.check(text.value()).map_err(ApiError::internal)?;
            verdict.blocked |= decision.action != Action::Allow;
            verdict
                .fired
                .extend(RailOut::from_decision("proposal", &decision));
        }
    }
    Ok(verdict)
}

fn nquads(quads: &[Quad]) -> String {
    quads.iter().map(|q| format!("{q} .\n")).collect()
}

fn read_nquads(text: &str) -> Result<Vec<Quad>, ApiError> {
    oxigraph::io::RdfParser::from_format(oxigraph::io::RdfFormat::NQuads)
        .for_slice(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(ApiError::internal)
}

fn proposal_out(row: ProposalRow) -> Result<ProposalOut, ApiError> {
    let rails: RailsVerdict = serde_json::from_str(&row.rails).map_err(ApiError::internal)?;
    let change = Change::new(read_nquads(&row.additions)?, read_nquads(&row.removals)?);
    Ok(ProposalOut {
        production: local_id(&row.production).to_owned(),
        source: serde_json::from_str(&row.source).map_err(ApiError::internal)?,
        change: change_out(&change),
        rails_blocked: rails.blocked,
        rails: rails.fired,
        id: row.id,
        kind: row.kind,
        summary: row.summary,
        status: row.status,
        base: row.base,
        reason: row.reason,
        reviewer: row.reviewer,
        commit: row.commit_id,
        created_ms: row.created_ms,
        decided_ms: row.decided_ms,
    })
}

/// Drafts, judges and stores a proposal.
async fn propose(
    app: &Arc<App>,
    caller: &Caller,
    served: Arc<Served>,
    kind: &str,
    summary: String,
    source: ProposalSource,
    change: Change,
) -> Result<ProposalOut, ApiError> {
    if change.is_empty() {
        return Err(ApiError::invalid("the proposal changes nothing"));
    }
    let writable = app.catalog().writable_graphs(&caller.tenant);
    if let Some(graph) = change.graphs().into_iter().find(|g| !writable.contains(g)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "graph_not_writable",
            format!("the proposal changes <{graph}>, which this tenant's writers may not change"),
        ));
    }
    let store = app.store.clone();
    let base = blocking(move || store.revision()).await?;
    let judged = {
        let (app, served, change) = (app.clone(), served.clone(), change.clone());
        tokio::task::spawn_blocking(move || judge(&app, &served, &change))
            .await
            .map_err(ApiError::internal)??
    };
    let row = ProposalRow {
        id: format!("p_{}", random_hex(8)),
        tenant: caller.tenant.clone(),
        production: served.world.production.iri.clone(),
        kind: kind.to_owned(),
        summary,
        source: serde_json::to_string(&source).map_err(ApiError::internal)?,
        additions: nquads(&change.added),
        removals: nquads(&change.removed),
        base,
        rails: serde_json::to_string(&judged).map_err(ApiError::internal)?,
        status: "pending".to_owned(),
        reason: None,
        reviewer: None,
        commit_id: None,
        created_ms: now_ms(),
        decided_ms: None,
    };
    let audit = audit_entry(
        caller,
        "proposal_created",
        &row.id,
        serde_json::json!({"kind": kind, "summary": row.summary, "rails_blocked": judged.blocked}),
    );
    app.db.review.insert_proposal(&row, &audit).await?;
    proposal_out(row)
}

/// Proposes a fact a session learned for canon.
pub(crate) async fn propose_fact(
    app: Arc<App>,
    caller: Caller,
    id: String,
    body: ProposeFact,
) -> Result<ProposalOut, ApiError> {
    let session = visible_session(&app, &caller, &id).await?;
    let graph = session_graph(&id);
    let memory = app.db.sessions.memory(&id).await?;
    let fact = memory
        .iter()
        .find(|m| format!("{graph}#m{}", m.seq) == body.fact)
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_fact",
                format!(
                    "session '{id}' has no fact <{}>; its facts are {graph}#m0 to #m{}",
                    body.fact,
                    memory.len().saturating_sub(1)
                ),
            )
        })?;
    let served = app
        .catalog()
        .production_by_iri(&session.tenant, &session.production)
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_production",
                "the session's production is no longer served",
            )
        })?;
    // The turn the fact came from, for the writer to read it in context; a game event's
    // fact comes after a turn, so the turn before it.
    let at = fact.line / 2;
    let turn = app
        .db
        .sessions
        .turns(&id, (at - 1).max(0)..at + 1)
        .await?
        .into_iter()
        .take_while(|t| t.turn <= at)
        .last();
    let name = format!("{}-{}", id.trim_start_matches("s_"), fact.seq);
    let about: Vec<String> = fact
        .entities
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let draft = FactDraft {
        production: &served.world.production,
        name: &name,
        statement: &fact.text,
        about: &about,
        known_by: Some(&session.character),
        valid_from: session.beat,
    };
    let change = Change::new(
        draft
            .quads()
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        [],
    );
    let provenance = turn.as_ref().and_then(|t| t.provenance.clone());
    let model = provenance
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|record| {
            let payload: serde_json::Value =
                serde_json::from_str(record["payload"].as_str()?).ok()?;
            payload["model"].as_str().map(str::to_owned)
        });
    let source = ProposalSource {
        session: Some(id.clone()),
        fact: Some(body.fact.clone()),
        excerpt: turn.map(|t| vec![t.input, t.reply]).unwrap_or_default(),
        model,
        provenance,
        proposed_by: actor(&caller),
    };
    let summary = body.summary.unwrap_or_else(|| fact.text.clone());
    let out = propose(
        &app,
        &caller,
        served,
        "session_fact",
        summary,
        source,
        change,
    )
    .await?;
    Ok(out)
}

/// Brings material (an import) to the review queue.
pub(crate) async fn post_proposal(
    app: Arc<App>,
    caller: Caller,
    body: NewProposal,
) -> Result<ProposalOut, ApiError> {
    caller.require(Role::Writer)?;
    if body.summary.trim().is_empty() {
        return Err(ApiError::invalid(
            "field `summary`: say what the material is",
        ));
    }
    let served = app.catalog().production(&caller.tenant, &body.production)?;
    let change = Change::new(
        parse_statements("add", &body.add)?,
        parse_statements("remove", &body.remove)?,
    );
    let source = ProposalSource {
        proposed_by: actor(&caller),
        ..ProposalSource::default()
    };
    let out = propose(
        &app,
        &caller,
        served,
        "import",
        body.summary,
        source,
        change,
    )
    .await?;
    Ok(out)
}

/// Longest brief for a drafted character, in bytes.
const MAX_BRIEF_BYTES: usize = 1000;

/// Asks the model for a new character of a production, for review.
pub(crate) async fn draft_character(
    app: Arc<App>,
    caller: Caller,
    body: DraftCharacterIn,
) -> Result<ProposalOut, ApiError> {
    caller.require(Role::Writer)?;
    let brief = body.brief.trim().to_owned();
    if brief.is_empty() || brief.len() > MAX_BRIEF_BYTES {
        return Err(ApiError::invalid(format!(
            "field `brief`: say what character the writers want, in at most {MAX_BRIEF_BYTES} bytes"
        )));
    }
    let served = app.catalog().production(&caller.tenant, &body.production)?;
    let slot = app.turns.slot().await?;
    let drafted = {
        let (app, served, brief) = (app.clone(), served.clone(), brief.clone());
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut session = app
                .turns
                .backend()
                .open_session()
                .map_err(|e| ApiError::from_engine(e.into()))?;
            lore_engine::draft_character(
                &served.world,
                app.catalog().options(),
                session.as_mut(),
                app.turns.backend_info(),
                &brief,
                body.seed,
            )
            .map_err(ApiError::from_engine)
        })
        .await
        .map_err(ApiError::internal)??
    };
    let draft = CharacterDraft {
        production: &served.world.production,
        name: &drafted.name,
        persona: &drafted.persona,
        speech_style: &drafted.speech_style,
        sample_line: &drafted.sample_line,
    };
    let change = Change::new(
        draft
            .quads()
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        [],
    );
    let source = ProposalSource {
        excerpt: vec![format!("Brief: {brief}")],
        model: Some(app.turns.backend_info().model.clone()),
        provenance: drafted.provenance.clone(),
        proposed_by: actor(&caller),
        ..ProposalSource::default()
    };
    let summary = format!("New character: {}", drafted.name);
    let out = propose(
        &app,
        &caller,
        served.clone(),
        "character",
        summary,
        source,
        change,
    )
    .await?;
    Ok(out)
}

/// `?status=&limit=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
}

impl ListQuery {
    /// The proposals with `status`.
    pub(crate) fn status(status: &str) -> Self {
        Self {
            status: Some(status.to_owned()),
            limit: None,
        }
    }
}

/// The review queue: the tenant's proposals, newest first.
pub(crate) async fn list_proposals(
    app: Arc<App>,
    caller: Caller,
    query: ListQuery,
) -> Result<Vec<ProposalOut>, ApiError> {
    caller.require(Role::Writer)?;
    if let Some(status) = &query.status
        && !["pending", "deferred", "accepted", "rejected"].contains(&status.as_str())
    {
        return Err(ApiError::invalid(format!(
            "`status={status}`: use pending, deferred, accepted or rejected"
        )));
    }
    let rows = app
        .db
        .review
        .proposals(
            &caller.tenant,
            query.status.as_deref(),
            query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 1000),
        )
        .await?;
    rows.into_iter().map(proposal_out).collect()
}

async fn open_proposal(app: &App, caller: &Caller, id: &str) -> Result<ProposalRow, ApiError> {
    app.db
        .review
        .proposal(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_proposal", format!("no proposal '{id}'")))
}

/// One proposal.
pub(crate) async fn get_proposal(
    app: Arc<App>,
    caller: Caller,
    id: String,
) -> Result<ProposalOut, ApiError> {
    caller.require(Role::Writer)?;
    proposal_out(open_proposal(&app, &caller, &id).await?)
}

fn already_decided(row: &ProposalRow) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "already_decided",
        format!(
            "proposal '{}' was already {} by {}",
            row.id,
            row.status,
            row.reviewer.as_deref().unwrap_or("someone")
        ),
    )
}

/// Accepts a proposal, as it stands or edited: a commit of canon on the commit it was drafted
/// against.
pub(crate) async fn accept(
    app: Arc<App>,
    caller: Caller,
    id: String,
    body: AcceptIn,
) -> Result<ProposalOut, ApiError> {
    caller.require(Role::Writer)?;
    // One decision at a time: a proposal cannot be accepted twice, nor accepted and rejected.
    let _deciding = app.reviews.lock().await;
    let row = open_proposal(&app, &caller, &id).await?;
    if !["pending", "deferred"].contains(&row.status.as_str()) {
        return Err(already_decided(&row));
    }
    let edited = body.add.is_some() || body.remove.is_some();
    let change = Change::new(
        match &body.add {
            Some(add) => parse_statements("add", add)?,
            None => read_nquads(&row.additions)?,
        },
        match &body.remove {
            Some(remove) => parse_statements("remove", remove)?,
            None => read_nquads(&row.removals)?,
        },
    );
    let served = app
        .catalog()
        .production_by_iri(&caller.tenant, &row.production)
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_production",
                "the proposal's production is no longer served",
            )
        })?;
    let verdict: RailsVerdict = if edited {
        let (app, served, change) = (app.clone(), served.clone(), change.clone());
        tokio::task::spawn_blocking(move || judge(&app, &served, &change))
            .await
            .map_err(ApiError::internal)??
    } else {
        serde_json::from_str(&row.rails).map_err(ApiError::internal)?
    };
    if verdict.blocked {
        let nodes: Vec<&str> = verdict.fired.iter().map(|f| f.label.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rails_blocked",
            format!(
                "the rails refuse this text ({}); edit it before accepting",
                nodes.join(", ")
            ),
        ));
    }
    let source: ProposalSource = serde_json::from_str(&row.source).map_err(ApiError::internal)?;
    let message = body
        .message
        .unwrap_or_else(|| format!("Accept proposal {}: {}", row.id, row.summary));
    let meta = CommitMeta {
        provenance: source.provenance.clone(),
        ..writable_meta(&app, &caller, message)
    };
    let store = app.store.clone();
    let base = Base::Commit(row.base.clone());
    let accepted = change.clone();
    let commit = blocking(move || store.commit_change(&base, meta, accepted)).await?;
    let decision = Decision {
        status: "accepted",
        reason: None,
        reviewer: actor(&caller),
        commit_id: Some(commit.id.clone()),
        additions: nquads(&change.added),
        removals: nquads(&change.removed),
        at_ms: now_ms(),
    };
    let audit = audit_entry(
        &caller,
        "proposal_accepted",
        &row.id,
        serde_json::json!({"commit": commit.id, "edited": edited}),
    );
    if !app.db.review.decide(&row.id, &decision, &audit).await? {
        // Decisions are serialised above, so only another server on the same database gets
        // here; the commit stands and names the proposal in its message.
        return Err(already_decided(&open_proposal(&app, &caller, &id).await?));
    }
    let reloading = app.clone();
    blocking(move || reloading.reload_catalog()).await?;
    proposal_out(open_proposal(&app, &caller, &id).await?)
}

async fn decide(
    app: &Arc<App>,
    caller: &Caller,
    id: &str,
    status: &'static str,
    reason: Option<String>,
) -> Result<ProposalOut, ApiError> {
    caller.require(Role::Writer)?;
    let _deciding = app.reviews.lock().await;
    let row = open_proposal(app, caller, id).await?;
    let decision = Decision {
        status,
        reason: reason.clone(),
        reviewer: actor(caller),
        commit_id: None,
        additions: row.additions.clone(),
        removals: row.removals.clone(),
        at_ms: now_ms(),
    };
    let audit = audit_entry(
        caller,
        &format!("proposal_{status}"),
        id,
        serde_json::json!({ "reason": reason }),
    );
    if !app.db.review.decide(id, &decision, &audit).await? {
        return Err(already_decided(&row));
    }
    proposal_out(open_proposal(app, caller, id).await?)
}

/// Rejects a proposal, with the reason.
pub(crate) async fn reject(
    app: Arc<App>,
    caller: Caller,
    id: String,
    body: DecisionIn,
) -> Result<ProposalOut, ApiError> {
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("field `reason`: say why the proposal is rejected"))?;
    decide(&app, &caller, &id, "rejected", Some(reason)).await
}

/// Defers a proposal: it stays open for a later decision.
pub(crate) async fn defer(
    app: Arc<App>,
    caller: Caller,
    id: String,
    body: DecisionIn,
) -> Result<ProposalOut, ApiError> {
    decide(&app, &caller, &id, "deferred", body.reason).await
}

/// `?limit=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<i64>,
}

/// The tenant's audit log: proposals, decisions and canon changes made through the server.
pub(crate) async fn audit_log(
    app: Arc<App>,
    caller: Caller,
    query: AuditQuery,
) -> Result<Vec<AuditOut>, ApiError> {
    caller.require(Role::Writer)?;
    let rows = app
        .db
        .review
        .audit_log(
            &caller.tenant,
            query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 1000),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditOut {
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            created_ms: r.created_ms,
        })
        .collect())
}
