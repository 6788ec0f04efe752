//! The sessions layer, below every route: opening a session, finding one the caller may see,
//! holding one warm for a request (no turn or quest change of it runs meanwhile), and reading
//! what is stored with it.

use axum::http::StatusCode;
use lore_canon::consent::LikenessUse;
use lore_engine::{LikenessScope, MemoryFact, MemoryKind};
use lore_gen::{Role as LineRole, Turn};
use lore_quest::QuestLog;

use crate::auth::{Caller, Role, random_hex};
use crate::catalog::local_id;
use crate::db::{MemoryRow, SessionRow, now_ms};
use crate::error::ApiError;
use crate::runner::{Held, Hot};
use crate::state::App;
use crate::wire::{CreateSession, RailOut, SessionOut};

/// The IRI of a session's own graph.
pub fn session_graph(id: &str) -> String {
    format!("urn:lore:session:{id}")
}

/// Session `id`, warm, held for `caller`, its owner (else: unknown session).
pub(crate) async fn hold(app: &App, caller: &Caller, id: &str) -> Result<Held, ApiError> {
    let hot = app.turns.entry(id);
    let mut guard = hot.lock_owned().await;
    // A session warm from before a commit of canon is read again over the new canon.
    let revision = app.catalog().revision.clone();
    if guard
        .as_ref()
        .is_none_or(|h| h.planner.world().canon_revision != revision)
    {
        *guard = Some(load(app, id).await?);
    }
    match guard.as_ref() {
        Some(s) if s.row.tenant == caller.tenant && s.row.owner_key == caller.key_id => Ok(guard),
        Some(_) => Err(unknown_session(id)),
        None => Err(ApiError::internal("a warm session vanished")),
    }
}

/// A stored fact of session graph `graph`, as the engine recalls it.
pub(crate) fn memory_fact(graph: &str, m: &MemoryRow) -> MemoryFact {
    MemoryFact::new(
        format!("{graph}#m{}", m.seq),
        usize::try_from(m.line).unwrap_or(0),
        MemoryKind::parse(&m.kind).unwrap_or(MemoryKind::Said),
        m.text.clone(),
        m.entities.split_whitespace().map(str::to_owned).collect(),
    )
}

/// A session the rails ended takes no more turns or quest changes.
pub(crate) fn session_ended(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "session_ended",
        format!("session '{id}' was ended by the rails; start a new session"),
    )
}

/// A session the caller cannot see, whether or not it exists.
pub(crate) fn unknown_session(id: &str) -> ApiError {
    ApiError::not_found("unknown_session", format!("no session '{id}' for this key"))
}

/// Reads a session into memory: its row, the transcript lines its prompt still keeps, and
/// its whole memory.
async fn load(app: &App, id: &str) -> Result<Hot, ApiError> {
    let row = app
        .db
        .sessions
        .get(id)
        .await?
        .ok_or_else(|| unknown_session(id))?;
    let served = app
        .catalog()
        .production_by_iri(&row.tenant, &row.production)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::GONE,
                "production_gone",
                format!("session '{id}' belongs to a production that is no longer served"),
            )
        })?;
    let character = served.world.entity(&row.character).ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "character_gone",
            format!("session '{id}' speaks as a character no longer in canon"),
        )
    })?;
    let planner = app
        .catalog()
        .planner(
            &served,
            lore_canon::Resolved {
                character,
                beat: row.beat,
            },
        )
        .map_err(ApiError::from_engine)?;
    let total_lines = usize::try_from(row.turns).unwrap_or(0) * 2;
    let first_turn = planner.window_start(total_lines) / 2;
    let mut lines = Vec::new();
    for turn in app
        .db
        .sessions
        .turns(id, i64::try_from(first_turn).unwrap_or(0)..i64::MAX)
        .await?
    {
        let recalled: Vec<String> = serde_json::from_str(&turn.recalled).unwrap_or_default();
        // A line the input rail blocked never reaches a prompt.
        let blocked = serde_json::from_str::<Vec<RailOut>>(&turn.rails)
            .map_or(true, |rails| rails.iter().any(|r| r.rail == "input"));
        lines.push(Turn {
            role: LineRole::Player,
            text: if blocked {
                planner.withheld_line()
            } else {
                turn.input
            },
            recalled,
        });
        lines.push(Turn {
            role: LineRole::Character,
            text: turn.reply,
            recalled: Vec::new(),
        });
    }
    let memory = app
        .db
        .sessions
        .memory(id)
        .await?
        .iter()
        .map(|m| memory_fact(&session_graph(id), m))
        .collect();
    let quests = read_log(&row)?;
    Ok(Hot {
        row,
        planner,
        quests,
        offset: first_turn * 2,
        lines,
        memory,
        backend: None,
    })
}

/// The quest log stored with a session.
pub(crate) fn read_log(row: &SessionRow) -> Result<QuestLog, ApiError> {
    serde_json::from_str(&row.player_state).map_err(|e| {
        ApiError::internal(format!(
            "session '{}': its stored quest log does not read: {e}",
            row.id
        ))
    })
}

/// A session as the API shows it.
pub(crate) fn session_out(app: &App, row: &SessionRow) -> SessionOut {
    let served = app
        .catalog()
        .production_by_iri(&row.tenant, &row.production);
    SessionOut {
        id: row.id.clone(),
        player: row.player.clone(),
        production: served.map_or_else(|| local_id(&row.production).to_owned(), |s| s.id.clone()),
        character: local_id(&row.character).to_owned(),
        at: row.at.clone(),
        beat: row.beat,
        uses: row
            .likeness()
            .uses
            .iter()
            .map(|u| u.name().to_owned())
            .collect(),
        territory: row.territory.clone(),
        turns: row.turns,
        memory_facts: row.memory_facts,
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
    }
}

/// The likeness request of a new session: text always, plus the uses the client names.
fn likeness_scope(request: &CreateSession) -> Result<LikenessScope, ApiError> {
    let uses = request
        .uses
        .iter()
        .enumerate()
        .map(|(i, name)| {
            LikenessUse::parse(name).ok_or_else(|| {
                ApiError::invalid(format!(
                    "field `uses[{i}]`: '{name}' is not a use (text, voice or image)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let territory = match &request.territory {
        Some(t) if t.len() != 2 || !t.bytes().all(|b| b.is_ascii_alphabetic()) => {
            return Err(ApiError::invalid(format!(
                "field `territory`: '{t}' is not an ISO 3166-1 alpha-2 code such as GB"
            )));
        }
        t => t.as_ref().map(|t| t.to_ascii_uppercase()),
    };
    Ok(LikenessScope::new(uses, territory))
}

/// Opens a session for `player`; with `conversation`, one an OpenAI-compatible client stands for.
pub(crate) async fn open_session(
    app: &App,
    caller: &Caller,
    request: &CreateSession,
    conversation: Option<String>,
) -> Result<SessionRow, ApiError> {
    if request.player.trim().is_empty() || request.player.len() > 256 {
        return Err(ApiError::invalid("field `player`: expected 1 to 256 bytes"));
    }
    let served = app
        .catalog()
        .production(&caller.tenant, &request.production)?;
    let resolved = app
        .catalog()
        .resolve(&served, &request.character, request.at.as_deref())?;
    let likeness = likeness_scope(request)?;
    // Refused before the session exists, so a client learns at once what consent lacks.
    app.catalog()
        .planner(&served, resolved)
        .map_err(ApiError::from_engine)?
        .check_likeness(&likeness, &lore_canon::consent::today())
        .map_err(ApiError::from_engine)?;
    let now = now_ms();
    let row = SessionRow {
        id: random_hex(12),
        tenant: caller.tenant.clone(),
        owner_key: caller.key_id.clone(),
        player: request.player.clone(),
        production: served.world.production.iri.clone(),
        character: served.world.entities[resolved.character].iri.clone(),
        beat: resolved.beat,
        at: request.at.clone(),
        conversation,
        turns: 0,
        memory_facts: 0,
        player_state: "{}".into(),
        created_ms: now,
        updated_ms: now,
        ended_ms: None,
        likeness_uses: SessionRow::uses_column(&likeness),
        territory: likeness.territory,
    };
    app.db.sessions.insert(&row).await?;
    Ok(row)
}

/// The session `id` if the caller may see it: its owner, or an admin of its tenant.
pub(crate) async fn visible_session(
    app: &App,
    caller: &Caller,
    id: &str,
) -> Result<SessionRow, ApiError> {
    let unknown = || unknown_session(id);
    let row = app.db.sessions.get(id).await?.ok_or_else(unknown)?;
    let visible = row.tenant == caller.tenant
        && (row.owner_key == caller.key_id || caller.role == Role::Admin);
    if visible { Ok(row) } else { Err(unknown()) }
}
