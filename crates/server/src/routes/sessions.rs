//! Sessions and their turns: open, list, read, delete, and play a turn (streamed as
//! Server-Sent Events when asked).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson};
use crate::sessions::{open_session, session_graph, session_out, visible_session};
use crate::state::App;
use crate::turn::{SSE_HEARTBEAT, TurnEvent, finish, receiver_stream, start, wants_stream};
use crate::wire::{
    CreateSession, ErrorBody, MemoryOut, SessionDetail, SessionOut, TranscriptTurn, TurnIn, TurnOut,
};

type AppState = State<Arc<App>>;

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
        .sessions
        .list(&caller.tenant, owner, query.player.as_deref(), limit)
        .await?;
    Ok(Json(rows.iter().map(|r| session_out(&app, r)).collect()))
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
        .sessions
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
        .sessions
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
    app.db.sessions.delete(&id).await?;
    app.turns.forget(&id);
    Ok(StatusCode::NO_CONTENT)
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
    let events = start(&app, &caller, &id, request.input).await?;
    if wants_stream(&headers, request.stream) {
        let stream = futures_util::StreamExt::map(receiver_stream(events), sse_event);
        Ok(Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(SSE_HEARTBEAT))
            .into_response())
    } else {
        Ok(Json(finish(events).await?).into_response())
    }
}
