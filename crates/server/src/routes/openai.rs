//! OpenAI-compatible routes: every character is a model, every conversation a session.
//!
//! Model ids read `<production>/<character>`. A request's messages map onto a session: the
//! `X-Lore-Session` header names one outright; otherwise the session is the one this key
//! opened for the same model and the same first user message (created on first use). Only the
//! last message, which must be the user's, is played: the session already holds the earlier
//! turns. Generation settings (temperature, max tokens) are the server's, since the studio, not
//! the client, decides how its characters speak; other OpenAI fields are accepted and ignored.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::catalog::{characters, local_id};
use crate::db::{SessionRow, now_ms};
use crate::error::{ApiError, ApiJson};
use crate::sessions::{open_session, unknown_session};
use crate::state::App;
use crate::turn::{SSE_HEARTBEAT, TurnEvent, finish, receiver_stream, start, wants_stream};
use crate::wire::{CreateSession, ErrorBody};

/// Header naming the session a chat completion plays in.
pub const SESSION_HEADER: &str = "x-lore-session";
/// Header giving the story time of a session a chat completion opens.
pub const AT_HEADER: &str = "x-lore-at";
/// Header giving the audience's territory (ISO 3166-1 alpha-2), for likeness consent.
pub const TERRITORY_HEADER: &str = "x-lore-territory";

/// Lists one model per character of the caller's productions.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "OpenAI model list")),
    security(("api_key" = [])))]
pub async fn models(State(app): State<Arc<App>>, caller: Caller) -> Json<Value> {
    let data: Vec<Value> = app
        .catalog()
        .productions(&caller.tenant)
        .flat_map(|served| {
            characters(&served.world)
                .map(|(_, e)| {
                    json!({
                        "id": format!("{}/{}", served.id, local_id(&e.iri)),
                        "object": "model",
                        "created": 0,
                        "owned_by": served.tenant,
                        "name": e.name,
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

/// A chat message: only `role` and `content` matter here.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

/// The fields of a chat completion request that Lorekeeper reads.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    stream_options: Option<Value>,
}

fn text_of(content: &Value, index: usize) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        _ => Err(ApiError::invalid(format!(
            "messages[{index}].content: expected a string or an array of text parts"
        ))),
    }
}

async fn session_for(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    request: &ChatRequest,
) -> Result<SessionRow, ApiError> {
    let (production, character) = request.model.split_once('/').ok_or_else(|| {
        ApiError::not_found(
            "unknown_model",
            format!(
                "model '{}': expected <production>/<character>; GET /v1/models lists them",
                request.model
            ),
        )
    })?;
    let served = app.catalog().production(&caller.tenant, production)?;
    let resolved = app.catalog().resolve(&served, character, None)?;
    let character_iri = &served.world.entities[resolved.character].iri;
    if let Some(id) = headers.get(SESSION_HEADER) {
        let id = id
            .to_str()
            .map_err(|_| ApiError::invalid(format!("header {SESSION_HEADER}: not text")))?;
        let unknown = || unknown_session(id);
        let row = app.db.sessions.get(id).await?.ok_or_else(unknown)?;
        if row.tenant != caller.tenant || row.owner_key != caller.key_id {
            return Err(unknown());
        }
        if &row.character != character_iri || row.production != served.world.production.iri {
            return Err(ApiError::invalid(format!(
                "session '{id}' talks to another character than model '{}'",
                request.model
            )));
        }
        return Ok(row);
    }
    let first_user = request
        .messages
        .iter()
        .position(|m| m.role == "user")
        .map(|i| text_of(&request.messages[i].content, i))
        .transpose()?
        .unwrap_or_default();
    let user = request.user.clone().unwrap_or_default();
    let mut hash = Sha256::new();
    for part in [caller.key_id.as_str(), &request.model, &user, &first_user] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let conversation: String = hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(row) = app
        .db
        .sessions
        .for_conversation(&caller.key_id, &conversation)
        .await?
    {
        return Ok(row);
    }
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::invalid(format!("header {name}: not text")))
            })
            .transpose()
    };
    let at = header(AT_HEADER)?;
    let territory = header(TERRITORY_HEADER)?;
    let create = CreateSession {
        production: served.id.clone(),
        character: local_id(character_iri).to_owned(),
        player: if user.is_empty() {
            "openai".into()
        } else {
            user
        },
        at,
        uses: Vec::new(),
        territory,
    };
    match open_session(app, caller, &create, Some(conversation.clone())).await {
        Ok(row) => Ok(row),
        // Two first requests of one conversation raced: use the winner's session.
        Err(e) if e.status == StatusCode::CONFLICT => app
            .db
            .sessions
            .for_conversation(&caller.key_id, &conversation)
            .await?
            .ok_or(e),
        Err(e) => Err(e),
    }
}

/// Talks to a character through the OpenAI chat completions protocol, streaming or not.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    responses((status = 200, description = "OpenAI chat completion (or chunk stream)"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn chat_completions(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid(
            "field `n`: a character gives one reply per turn",
        ));
    }
    let last = request
        .messages
        .len()
        .checked_sub(1)
        .ok_or_else(|| ApiError::invalid("field `messages`: empty"))?;
    if request.messages[last].role != "user" {
        return Err(ApiError::invalid(format!(
            "messages[{last}].role: the last message must be the user's, not '{}'",
            request.messages[last].role
        )));
    }
    let input = text_of(&request.messages[last].content, last)?;
    let session = session_for(&app, &caller, &headers, &request).await?;
    let events = start(&app, &caller, &session.id, input).await?;
    let id = format!("chatcmpl-{}-{}", session.id, session.turns);
    let created = now_ms() / 1000;
    let model = request.model.clone();
    let session_header = HeaderValue::from_str(&session.id).map_err(ApiError::internal)?;
    let mut response = if wants_stream(&headers, request.stream) {
        let include_usage = request
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let chunk = move |delta: Value, finish: Value, usage: Option<Value>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            });
            if let Some(usage) = usage {
                c["usage"] = usage;
            }
            Event::default().data(c.to_string())
        };
        let opening = chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
            None,
        );
        let body = receiver_stream(events).flat_map(move |event| {
            let events: Vec<Event> = match event {
                TurnEvent::Delta(text) => {
                    vec![chunk(json!({ "content": text }), Value::Null, None)]
                }
                TurnEvent::Final(out) => {
                    let usage = include_usage.then(|| usage_of(&out));
                    vec![
                        chunk(json!({}), json!(finish_reason(&out.finish_reason)), usage),
                        Event::default().data("[DONE]"),
                    ]
                }
                TurnEvent::Error(e) => {
                    vec![Event::default().event("error").data(e.body().to_string())]
                }
            };
            futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>))
        });
        let stream = futures_util::stream::iter([Ok(opening)]).chain(body);
        Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(SSE_HEARTBEAT))
            .into_response()
    } else {
        let out = finish(events).await?;
        Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": out.reply },
                "finish_reason": finish_reason(&out.finish_reason),
            }],
            "usage": usage_of(&out),
            "lore": { "session": out.session, "turn": out.turn, "facts_used": out.facts_used },
        }))
        .into_response()
    };
    response
        .headers_mut()
        .insert(SESSION_HEADER, session_header);
    Ok(response)
}

fn finish_reason(ours: &str) -> &'static str {
    if ours == "length" { "length" } else { "stop" }
}

fn usage_of(out: &crate::wire::TurnOut) -> Value {
    json!({
        "prompt_tokens": out.usage.prompt_tokens,
        "completion_tokens": out.usage.completion_tokens,
        "total_tokens": out.usage.prompt_tokens + out.usage.completion_tokens,
    })
}
