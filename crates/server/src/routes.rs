//! The Lorekeeper API: catalog, sessions, turns, keys, health and metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::mpsc;

use lore_canon::consent::LikenessUse;
use lore_engine::LikenessScope;

use crate::auth::{Caller, Role, check_tenant, create_key, random_hex};
use crate::catalog::{Served, characters, local_id};
use crate::db::{KeyRow, SessionRow, now_ms};
use crate::error::{ApiError, ApiJson};
use crate::state::App;
use crate::turns::{TurnEvent, Turns, session_graph, unknown_session};
use crate::wire::{
    CharacterOut, CreateKey, CreateSession, CreatedKey, ErrorBody, KeyOut, MemoryOut,
    ProductionOut, RailKind, RailsCheckIn, RailsCheckOut, SessionDetail, SessionOut,
    TranscriptTurn, TurnIn, TurnOut,
};

type AppState = State<Arc<App>>;

fn production_out(served: &Served) -> ProductionOut {
    let p = &served.world.production;
    ProductionOut {
        id: served.id.clone(),
        iri: p.iri.clone(),
        title: p.title.clone(),
        rating: p.rating_label.clone(),
        premise: p.premise.clone(),
        characters: characters(&served.world).count(),
    }
}

fn character_out(served: &Served, entity: &lore_canon::Entity) -> CharacterOut {
    let id = local_id(&entity.iri).to_owned();
    CharacterOut {
        model: format!("{}/{id}", served.id),
        id,
        iri: entity.iri.clone(),
        name: entity.name.clone(),
        aliases: entity.aliases.clone(),
        persona: entity.persona.clone(),
    }
}

/// Lists the productions of the caller's tenant.
#[utoipa::path(get, path = "/v1/productions", tag = "catalog",
    responses((status = 200, body = [ProductionOut]), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_productions(State(app): AppState, caller: Caller) -> Json<Vec<ProductionOut>> {
    Json(
        app.catalog()
            .productions(&caller.tenant)
            .map(|s| production_out(s))
            .collect(),
    )
}

/// One production of the caller's tenant.
#[utoipa::path(get, path = "/v1/productions/{production}", tag = "catalog",
    params(("production" = String, Path, description = "Production id, IRI or title")),
    responses((status = 200, body = ProductionOut), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_production(
    State(app): AppState,
    caller: Caller,
    Path(production): Path<String>,
) -> Result<Json<ProductionOut>, ApiError> {
    let served = app.catalog().production(&caller.tenant, &production)?;
    Ok(Json(production_out(&served)))
}

/// The characters of a production.
#[utoipa::path(get, path = "/v1/productions/{production}/characters", tag = "catalog",
    params(("production" = String, Path, description = "Production id, IRI or title")),
    responses((status = 200, body = [CharacterOut]), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_characters(
    State(app): AppState,
    caller: Caller,
    Path(production): Path<String>,
) -> Result<Json<Vec<CharacterOut>>, ApiError> {
    let served = app.catalog().production(&caller.tenant, &production)?;
    Ok(Json(
        characters(&served.world)
            .map(|(_, e)| character_out(&served, e))
            .collect(),
    ))
}

/// One character of a production.
#[utoipa::path(get, path = "/v1/productions/{production}/characters/{character}",
    tag = "catalog",
    params(("production" = String, Path, description = "Production id, IRI or title"),
           ("character" = String, Path, description = "Character id, IRI, name or alias")),
    responses((status = 200, body = CharacterOut), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_character(
    State(app): AppState,
    caller: Caller,
    Path((production, character)): Path<(String, String)>,
) -> Result<Json<CharacterOut>, ApiError> {
    let served = app.catalog().production(&caller.tenant, &production)?;
    let resolved = app.catalog().resolve(&served, &character, None)?;
    Ok(Json(character_out(
        &served,
        &served.world.entities[resolved.character],
    )))
}

/// Tries a line on a character's rails, for trust-and-safety staff and writers checking the
/// policy: what the input rail would decide on it as a player's line, or the output rail on it
/// as a sentence of the character's reply (the policy and the canon check at the story time).
/// Nothing is generated, stored or logged for audit.
#[utoipa::path(post, path = "/v1/productions/{production}/characters/{character}/rails",
    tag = "rails",
    params(("production" = String, Path, description = "Production id, IRI or title"),
           ("character" = String, Path, description = "Character id, IRI, name or alias")),
    request_body = RailsCheckIn,
    responses((status = 200, body = RailsCheckOut), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn try_rails(
    State(app): AppState,
    caller: Caller,
    Path((production, character)): Path<(String, String)>,
    ApiJson(body): ApiJson<RailsCheckIn>,
) -> Result<Json<RailsCheckOut>, ApiError> {
    // Players may not probe the policy for what slips past it.
    caller.require(Role::Writer)?;
    let served = app.catalog().production(&caller.tenant, &production)?;
    let resolved = app
        .catalog()
        .resolve(&served, &character, body.at.as_deref())?;
    // Building the rails (the first time a character is met) and the embedding layer are CPU
    // work.
    tokio::task::spawn_blocking(move || {
        let planner = app
            .catalog()
            .planner(&served, resolved)
            .map_err(ApiError::from_engine)?;
        let out = match body.rail {
            RailKind::Input => RailsCheckOut::input(
                &planner
                    .try_input(&body.text)
                    .map_err(ApiError::from_engine)?,
            ),
            RailKind::Output => RailsCheckOut::output(
                &planner
                    .check_sentence(&body.text)
                    .map_err(ApiError::from_engine)?,
            ),
        };
        Ok(Json(out))
    })
    .await
    .map_err(|e| ApiError::internal(format!("rails thread: {e}")))?
}

fn session_out(app: &App, row: &SessionRow) -> SessionOut {
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
    app.db.insert_session(&row).await?;
    Ok(row)
}

/// Opens a session for a player with a character at a story time.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_session(
    State(app): AppState,
    caller: Caller,
    ApiJson(request): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    let row = open_session(&app, &caller, &request, None).await?;
    Ok((StatusCode::CREATED, Json(session_out(&app, &row))))
}

/// Query of the session list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Only this player's sessions.
    pub player: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Lists the caller's sessions (an admin: every session of its tenant), newest first.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = [SessionOut])),
    security(("api_key" = [])))]
pub async fn list_sessions(
    State(app): AppState,
    caller: Caller,
    query: Result<Query<SessionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<SessionOut>>, ApiError> {
    let Query(query) = query?;
    let owner = (caller.role != Role::Admin).then_some(caller.key_id.as_str());
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows = app
        .db
        .sessions(&caller.tenant, owner, query.player.as_deref(), limit)
        .await?;
    Ok(Json(rows.iter().map(|r| session_out(&app, r)).collect()))
}

/// The session `id` if the caller may see it: its owner, or an admin of its tenant.
pub(crate) async fn visible_session(
    app: &App,
    caller: &Caller,
    id: &str,
) -> Result<SessionRow, ApiError> {
    let unknown = || unknown_session(id);
    let row = app.db.session(id).await?.ok_or_else(unknown)?;
    let visible = row.tenant == caller.tenant
        && (row.owner_key == caller.key_id || caller.role == Role::Admin);
    if visible { Ok(row) } else { Err(unknown()) }
}

/// A session with its transcript and memory.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = SessionDetail), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_session(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let row = visible_session(&app, &caller, &id).await?;
    let transcript = app
        .db
        .turns(&id, 0..i64::MAX)
        .await?
        .into_iter()
        .map(|t| TranscriptTurn {
            turn: t.turn,
            input: t.input,
            reply: t.reply,
            facts_used: serde_json::from_str(&t.facts_used).unwrap_or_default(),
            created_ms: t.created_ms,
        })
        .collect();
    let graph = session_graph(&id);
    let memory = app
        .db
        .memory(&id)
        .await?
        .into_iter()
        .map(|m| MemoryOut {
            iri: format!("{graph}#m{}", m.seq),
            kind: m.kind,
            text: m.text,
            line: m.line,
            entities: m.entities.split_whitespace().map(str::to_owned).collect(),
        })
        .collect();
    Ok(Json(SessionDetail {
        session: session_out(&app, &row),
        transcript,
        memory,
    }))
}

/// Deletes a session with its transcript and memory.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_session(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible_session(&app, &caller, &id).await?;
    app.db.delete_session(&id).await?;
    app.turns.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the client asked for Server-Sent Events.
pub(crate) fn wants_stream(headers: &HeaderMap, flag: bool) -> bool {
    flag || headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Waits for a turn's final object.
pub(crate) async fn finish(mut events: mpsc::Receiver<TurnEvent>) -> Result<TurnOut, ApiError> {
    while let Some(event) = events.recv().await {
        match event {
            TurnEvent::Delta(_) => {}
            TurnEvent::Final(out) => return Ok(*out),
            TurnEvent::Error(e) => return Err(e),
        }
    }
    Err(ApiError::internal("the turn ended without a result"))
}

/// Turns a receiver of items into a stream.
pub(crate) fn receiver_stream<T>(receiver: mpsc::Receiver<T>) -> impl Stream<Item = T> {
    futures_util::stream::unfold(
        receiver,
        |mut r| async move { r.recv().await.map(|x| (x, r)) },
    )
}

fn sse_event(event: TurnEvent) -> Result<Event, Infallible> {
    let (name, data) = match event {
        TurnEvent::Delta(text) => ("delta", serde_json::json!({ "text": text })),
        TurnEvent::Final(out) => ("final", serde_json::to_value(&*out).unwrap_or_default()),
        TurnEvent::Error(e) => ("error", e.body()),
    };
    Ok(Event::default().event(name).data(data.to_string()))
}

/// Plays a turn. With `stream` (or `Accept: text/event-stream`) the reply streams as SSE:
/// `delta` events (`{"text": ...}`), then one `final` event (a TurnOut) or one `error` event.
#[utoipa::path(post, path = "/v1/sessions/{id}/turns", tag = "sessions", request_body = TurnIn,
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = TurnOut,
               description = "The finished turn, or an SSE stream when asked for"),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn post_turn(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<TurnIn>,
) -> Result<Response, ApiError> {
    let events = Turns::start(&app, &caller, &id, request.input).await?;
    if wants_stream(&headers, request.stream) {
        let stream = futures_util::StreamExt::map(receiver_stream(events), sse_event);
        Ok(Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(crate::turns::SSE_HEARTBEAT))
            .into_response())
    } else {
        Ok(Json(finish(events).await?).into_response())
    }
}

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
    let keys = app.db.keys(Some(&caller.tenant)).await?;
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
    if !app.db.revoke_key(&id, Some(&caller.tenant)).await? {
        return Err(ApiError::not_found(
            "unknown_key",
            format!("no active key '{id}' in this tenant"),
        ));
    }
    app.keys.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

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
