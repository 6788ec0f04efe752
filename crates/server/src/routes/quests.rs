//! Quests over HTTP: offers planned over canon and the session and written up by the model,
//! the player's answers, game events, and the session's event stream.
//!
//! Every change holds the session (no turn runs meanwhile) and is recorded in one transaction:
//! the quest log (`sessions.player_state`), the session facts it leaves (so the character can
//! talk about it), and the events its client is told, which are then sent to live listeners.
//! A quest that fails is replaced, where its giver still has one to give, by a new offer.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt, stream};
use lore_engine::{MemoryKind, World};
use lore_quest::{
    LogError, LoggedQuest, Progress, QuestLog, QuestProgress, Status, WorldState, event,
};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::auth::Caller;
use crate::db::{DbError, MemoryRow, QuestRecord, now_ms};
use crate::error::{ApiError, ApiJson};
use crate::runner::{Held, Hot};
use crate::sessions::{hold, memory_fact, read_log, session_ended, session_graph, visible_session};
use crate::state::App;
use crate::turn::SSE_HEARTBEAT;
use crate::wire::{
    ErrorBody, EvidenceOut, GameEventIn, QuestChangeOut, QuestOut, QuestsOut, SessionEventOut,
    StepOut, WriteUpOut,
};

type AppState = State<Arc<App>>;

fn name_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn quest_out(quest: &LoggedQuest) -> QuestOut {
    let (status, reason) = match &quest.status {
        Status::Offered => ("offered", None),
        Status::Refused => ("refused", None),
        Status::Running => ("running", None),
        Status::Completed => ("completed", None),
        Status::Failed(reason) => ("failed", Some(reason.clone())),
    };
    QuestOut {
        id: quest.id,
        giver: quest.giver.clone(),
        motivation: name_of(&quest.motivation),
        strategy: quest.strategy.clone(),
        style: name_of(&quest.style),
        status: status.into(),
        reason,
        done: quest.done,
        steps: quest
            .steps
            .iter()
            .map(|s| StepOut {
                action: s.action.verb.clone(),
                targets: s.action.targets.clone(),
                text: s.text.clone(),
                proof: s
                    .proof
                    .iter()
                    .map(|e| EvidenceOut {
                        iri: e.iri.clone(),
                        says: e.says.clone(),
                    })
                    .collect(),
            })
            .collect(),
        replaces: quest.replaces,
        write_up: quest.write_up.as_ref().map(|w| WriteUpOut {
            title: w.title.clone(),
            hook: w.hook.clone(),
            lines: w.lines.clone(),
            written_by: w.written_by.clone(),
            provenance: w
                .provenance
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
        }),
    }
}

/// What one request changes: the log as it will be, and the facts and events it leaves.
struct Update {
    log: QuestLog,
    graph: String,
    first_seq: i64,
    line: i64,
    facts: Vec<MemoryRow>,
    events: Vec<SessionEventOut>,
}

impl Update {
    fn new(id: &str, hot: &Hot) -> Update {
        Update {
            log: hot.quests.clone(),
            graph: session_graph(id),
            first_seq: hot.row.memory_facts,
            // Facts of an update belong to the next transcript line: recalled once that line
            // has left the prompt, like what the player said then.
            line: hot.row.turns * 2,
            facts: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The IRI the next fact will have.
    fn next_fact(&self) -> String {
        let seq = self.first_seq + self.facts.len() as i64;
        format!("{}#m{seq}", self.graph)
    }

    /// Records `event`'s text as a session fact about `entities` and tells the client.
    fn note(&mut self, memory: MemoryKind, mut event: SessionEventOut, entities: Vec<String>) {
        event.fact = Some(self.next_fact());
        self.facts.push(MemoryRow {
            seq: self.first_seq + self.facts.len() as i64,
            line: self.line,
            kind: memory.as_str().into(),
            text: event.text.clone(),
            entities: entities.join(" "),
        });
        self.events.push(event);
    }

    fn quest_note(&mut self, kind: &str, quest: usize, step: Option<usize>, text: String) {
        let q = &self.log.quests[quest];
        let mut entities = vec![q.giver.clone()];
        for t in q.steps.iter().flat_map(|s| &s.action.targets) {
            if !entities.contains(t) {
                entities.push(t.clone());
            }
        }
        let reason = match &q.status {
            Status::Failed(reason) => Some(reason.clone()),
            _ => None,
        };
        let event = SessionEventOut {
            quest: Some(quest),
            step,
            reason,
            ..told(kind, text)
        };
        self.note(MemoryKind::Event, event, entities);
    }
}

/// An event of `kind` saying `text`, about no quest in particular; numbered when recorded.
fn told(kind: &str, text: String) -> SessionEventOut {
    SessionEventOut {
        seq: -1,
        kind: kind.into(),
        quest: None,
        step: None,
        reason: None,
        fact: None,
        text,
        created_ms: 0,
    }
}

/// The session's world and what the session needs to act on it.
struct Scene<'a> {
    world: &'a World,
    base: WorldState,
    giver: usize,
    giver_name: String,
    giver_iri: String,
    player: String,
}

impl<'a> Scene<'a> {
    fn new(hot: &'a Hot) -> Scene<'a> {
        let world = hot.planner.world();
        let giver = hot.planner.speaker();
        Scene {
            world,
            base: WorldState::at(world, hot.row.beat),
            giver,
            giver_name: world.entities[giver].name.clone(),
            giver_iri: world.entities[giver].iri.clone(),
            player: hot.planner.options().player_label.to_lowercase(),
        }
    }

    /// Tells the client about each quest that moved, in words the character can recall.
    fn progress(&self, update: &mut Update, moved: &[QuestProgress]) -> Vec<usize> {
        let mut failed = Vec::new();
        for QuestProgress { quest, progress } in moved {
            let strategy = update.log.quests[*quest].strategy.clone();
            let step_text = |s: usize| update.log.quests[*quest].steps[s].text.clone();
            let (kind, step, text) = match progress {
                Progress::StepDone { step } => (
                    "step_done",
                    Some(*step),
                    format!(
                        "The {} did step {} of {}'s request: {}.",
                        self.player,
                        step + 1,
                        self.giver_name,
                        step_text(*step)
                    ),
                ),
                Progress::OutOfOrder { expected, got } => (
                    "step_out_of_order",
                    Some(*got),
                    format!(
                        "The {} did step {} of {}'s request ({}) before step {}.",
                        self.player,
                        got + 1,
                        self.giver_name,
                        step_text(*got),
                        expected + 1
                    ),
                ),
                Progress::Completed => (
                    "quest_completed",
                    None,
                    format!(
                        "The {} did what {} asked: {strategy}.",
                        self.player, self.giver_name
                    ),
                ),
                Progress::Failed { step, reason } => {
                    failed.push(*quest);
                    (
                        "quest_failed",
                        Some(*step),
                        format!(
                            "{}'s request to {strategy} can no longer be done: {reason}.",
                            self.giver_name
                        ),
                    )
                }
                Progress::Possible
                | Progress::Unrelated
                | Progress::Refused { .. }
                | Progress::Ended => continue,
            };
            update.quest_note(kind, *quest, step, text);
        }
        failed
    }

    /// A note when the giver's regard for the player changed its tone.
    fn regard(&self, update: &mut Update, before: Option<&'static str>) {
        let now = update.log.player.tone(&self.giver_iri);
        if now != before {
            let text = match now {
                Some(tone) => format!("{} {tone}.", self.giver_name),
                None => format!(
                    "{} is neutral towards the {}.",
                    self.giver_name, self.player
                ),
            };
            let entities = vec![self.giver_iri.clone()];
            update.note(MemoryKind::Regard, told("regard_changed", text), entities);
        }
    }
}

/// Writes up quest `quest` of `update.log` in the giver's voice (a generation slot, off the
/// async threads, in the session's own backend session, whose cached persona it reuses) and
/// tells the client it is offered.
async fn write_up_and_offer(
    app: &App,
    hot: &mut Hot,
    scene_player: &str,
    giver_name: &str,
    update: &mut Update,
    quest: usize,
) -> Result<(), ApiError> {
    let _slot = app.turns.slot().await?;
    let mut backend = match hot.backend.take() {
        Some(b) => b,
        None => app
            .turns
            .backend()
            .open_session()
            .map_err(ApiError::internal)?,
    };
    let planner = hot.planner.clone();
    let logged = update.log.quests[quest].clone();
    let info = app.turns.backend_info().clone();
    let id = hot.row.id.clone();
    let (write_up, backend) = tokio::task::spawn_blocking(move || {
        let write_up = planner.write_up(&mut *backend, &info, &logged, Some(&id));
        (write_up, backend)
    })
    .await
    .map_err(ApiError::internal)?;
    hot.backend = Some(backend);
    let q = &mut update.log.quests[quest];
    let text = format!(
        "{giver_name} asked the {scene_player} to {}: \"{}\"{}.",
        q.strategy,
        write_up.title,
        match q.replaces {
            Some(old) => format!(", in place of quest {old}"),
            None => String::new(),
        }
    );
    q.write_up = Some(write_up);
    update.quest_note("quest_offered", quest, None, text);
    Ok(())
}

/// Offers replacements for failed quests whose giver has another to give.
async fn replace_failed(
    app: &App,
    hot: &mut Hot,
    update: &mut Update,
    failed: Vec<usize>,
) -> Result<(), ApiError> {
    for old in failed {
        let (quest, player, giver_name) = {
            let scene = Scene::new(hot);
            let seed = update.log.quests.len() as u64;
            match update
                .log
                .offer(scene.world, &scene.base, scene.giver, seed, Some(old))
            {
                Ok(q) => (q.id, scene.player.clone(), scene.giver_name.clone()),
                // The failure's event says why; there is simply nothing to offer instead.
                Err(_) => continue,
            }
        };
        write_up_and_offer(app, hot, &player, &giver_name, update, quest).await?;
    }
    Ok(())
}

/// Records `update` for session `id` and tells live listeners; the session is dropped from
/// memory if another writer got there first.
async fn commit(
    app: &App,
    id: &str,
    held: &mut Held,
    update: Update,
) -> Result<Vec<SessionEventOut>, ApiError> {
    let Some(hot) = held.as_mut() else {
        return Err(ApiError::internal("a warm session vanished"));
    };
    let player_state = serde_json::to_string(&update.log).map_err(ApiError::internal)?;
    let at = now_ms();
    let bodies = update
        .events
        .iter()
        .map(|e| Ok((e.kind.clone(), serde_json::to_string(e)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(ApiError::internal)?;
    let record = QuestRecord {
        session_id: id.to_owned(),
        turns: hot.row.turns,
        memory_start: hot.row.memory_facts,
        player_state: player_state.clone(),
        memory: update.facts.clone(),
        events: bodies,
        at_ms: at,
    };
    let seqs = match app.db.quests.record(&record).await {
        Ok(seqs) => seqs,
        Err(e) => {
            if matches!(e, DbError::Conflict(_)) {
                **held = None;
                app.turns.forget(id);
            }
            return Err(e.into());
        }
    };
    hot.memory
        .extend(update.facts.iter().map(|m| memory_fact(&update.graph, m)));
    hot.row.memory_facts += update.facts.len() as i64;
    hot.row.player_state = player_state;
    hot.row.updated_ms = at;
    hot.quests = update.log;
    let events: Vec<SessionEventOut> = update
        .events
        .into_iter()
        .zip(seqs)
        .map(|(mut e, seq)| {
            e.seq = seq;
            e.created_ms = at;
            e
        })
        .collect();
    app.turns.publish(id, &events);
    Ok(events)
}

/// Holds session `id` for a quest change: its owner only, and not after the rails ended it.
async fn hold_open(app: &App, caller: &Caller, id: &str) -> Result<Held, ApiError> {
    let held = hold(app, caller, id).await?;
    if held.as_ref().is_some_and(|h| h.row.ended_ms.is_some()) {
        return Err(session_ended(id));
    }
    Ok(held)
}

fn hot_mut(held: &mut Held) -> Result<&mut Hot, ApiError> {
    held.as_mut()
        .ok_or_else(|| ApiError::internal("a warm session vanished"))
}

fn log_error(error: LogError) -> ApiError {
    match error {
        LogError::NoQuest(_) => ApiError::not_found("unknown_quest", error.to_string()),
        LogError::NotOffered { .. } => {
            ApiError::new(StatusCode::CONFLICT, "quest_not_offered", error.to_string())
        }
        LogError::NothingToOffer(_) => {
            ApiError::new(StatusCode::CONFLICT, "no_quest", error.to_string())
        }
        LogError::Impossible(_) => {
            ApiError::new(StatusCode::CONFLICT, "impossible_event", error.to_string())
        }
    }
}

/// How an offer varies.
#[derive(Debug, Deserialize)]
pub struct OfferQuery {
    seed: Option<u64>,
}

/// The session's quests, with the player's standing.
#[utoipa::path(get, path = "/v1/sessions/{id}/quests", tag = "quests",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = QuestsOut), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_quests(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<QuestsOut>, ApiError> {
    let row = visible_session(&app, &caller, &id).await?;
    let log = read_log(&row)?;
    Ok(Json(QuestsOut {
        quests: log.quests.iter().map(quest_out).collect(),
        events: log.events.len(),
        regard: log.player.regard,
    }))
}

/// The session's character offers the player a quest: planned over canon at the session's
/// beat and what the session's events changed, every step proven; then written up by the
/// model under a JSON schema (or in the plan's own words if that fails the output rail).
#[utoipa::path(post, path = "/v1/sessions/{id}/quests", tag = "quests",
    params(("id" = String, Path, description = "Session id"),
        ("seed" = Option<u64>, Query, description = "Varies the offer among equally good quests")),
    responses((status = 201, body = QuestChangeOut),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "No quest to give (the giver is dead, distrusts the player, or the world allows none), or the session ended")),
    security(("api_key" = [])))]
pub async fn offer_quest(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<OfferQuery>,
) -> Result<(StatusCode, Json<QuestChangeOut>), ApiError> {
    let mut held = hold_open(&app, &caller, &id).await?;
    let hot = hot_mut(&mut held)?;
    let mut update = Update::new(&id, hot);
    let (quest, player, giver_name) = {
        let scene = Scene::new(hot);
        let moved = update.log.recheck(scene.world, &scene.base);
        scene.progress(&mut update, &moved);
        let seed = query.seed.unwrap_or(update.log.quests.len() as u64);
        let quest = update
            .log
            .offer(scene.world, &scene.base, scene.giver, seed, None)
            .map_err(log_error)?
            .id;
        (quest, scene.player.clone(), scene.giver_name.clone())
    };
    write_up_and_offer(&app, hot, &player, &giver_name, &mut update, quest).await?;
    let out = quest_out(&update.log.quests[quest]);
    let events = commit(&app, &id, &mut held, update).await?;
    Ok((
        StatusCode::CREATED,
        Json(QuestChangeOut {
            quest: Some(out),
            events,
        }),
    ))
}

/// The player accepts or refuses an offered quest. An accepted quest the world no longer
/// allows fails at once, and its giver offers another if they have one.
#[utoipa::path(post, path = "/v1/sessions/{id}/quests/{quest}/{answer}", tag = "quests",
    params(("id" = String, Path, description = "Session id"),
        ("quest" = usize, Path, description = "Quest number in the session"),
        ("answer" = String, Path, description = "`accept` or `refuse`")),
    responses((status = 200, body = QuestChangeOut),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The quest is not waiting for an answer")),
    security(("api_key" = [])))]
pub async fn answer_quest(
    State(app): AppState,
    caller: Caller,
    Path((id, quest, answer)): Path<(String, usize, String)>,
) -> Result<Json<QuestChangeOut>, ApiError> {
    let accept = match answer.as_str() {
        "accept" => true,
        "refuse" => false,
        other => {
            return Err(ApiError::not_found(
                "unknown_route",
                format!("'{other}' is not an answer to a quest; expected accept or refuse"),
            ));
        }
    };
    let mut held = hold_open(&app, &caller, &id).await?;
    let hot = hot_mut(&mut held)?;
    let mut update = Update::new(&id, hot);
    let failed = {
        let scene = Scene::new(hot);
        let tone = update.log.player.tone(&scene.giver_iri);
        let moved = update.log.recheck(scene.world, &scene.base);
        let mut failed = scene.progress(&mut update, &moved);
        if accept {
            let progress = update
                .log
                .accept(scene.world, &scene.base, quest)
                .map_err(log_error)?;
            let strategy = update.log.quests[quest].strategy.clone();
            let text = format!(
                "The {} agreed to {strategy} for {}.",
                scene.player, scene.giver_name
            );
            update.quest_note("quest_accepted", quest, None, text);
            failed.extend(scene.progress(&mut update, &[QuestProgress { quest, progress }]));
        } else {
            update.log.refuse(quest).map_err(log_error)?;
            let strategy = update.log.quests[quest].strategy.clone();
            let text = format!(
                "The {} turned down {}'s request to {strategy}.",
                scene.player, scene.giver_name
            );
            update.quest_note("quest_refused", quest, None, text);
        }
        scene.regard(&mut update, tone);
        failed
    };
    replace_failed(&app, hot, &mut update, failed).await?;
    let out = quest_out(&update.log.quests[quest]);
    let events = commit(&app, &id, &mut held, update).await?;
    Ok(Json(QuestChangeOut {
        quest: Some(out),
        events,
    }))
}

/// Something the player did in the game: recorded as a session fact if the world as the
/// session left it allows it, it advances the running quests it is a step of; every open
/// quest is rechecked, and a failed one is replaced where its giver has another to give.
#[utoipa::path(post, path = "/v1/sessions/{id}/events", tag = "quests",
    params(("id" = String, Path, description = "Session id")),
    request_body = GameEventIn,
    responses((status = 200, body = QuestChangeOut),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The event cannot have happened (the player does not have the item, is not there, the character is dead)"),
        (status = 400, body = ErrorBody, description = "Unknown action or entity, or the wrong number of entities")),
    security(("api_key" = [])))]
pub async fn post_event(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GameEventIn>,
) -> Result<Json<QuestChangeOut>, ApiError> {
    let mut held = hold_open(&app, &caller, &id).await?;
    let hot = hot_mut(&mut held)?;
    let mut update = Update::new(&id, hot);
    let failed = {
        let scene = Scene::new(hot);
        let targets: Vec<&str> = body.targets.iter().map(String::as_str).collect();
        let action = event(scene.world, &body.action, &targets)
            .map_err(|e| ApiError::invalid(format!("field `action`/`targets`: {e}")))?;
        let tone = update.log.player.tone(&scene.giver_iri);
        let fact = update.next_fact();
        let moved = update
            .log
            .event(scene.world, &scene.base, action, fact)
            .map_err(log_error)?;
        let entities = action
            .targets()
            .into_iter()
            .map(|e| scene.world.entities[e].iri.clone())
            .collect();
        let text = format!(
            "The {} did this in the game: {}.",
            scene.player,
            action.describe(scene.world)
        );
        update.note(MemoryKind::Event, told("event_recorded", text), entities);
        let failed = scene.progress(&mut update, &moved);
        scene.regard(&mut update, tone);
        failed
    };
    replace_failed(&app, hot, &mut update, failed).await?;
    let events = commit(&app, &id, &mut held, update).await?;
    Ok(Json(QuestChangeOut {
        quest: None,
        events,
    }))
}

/// Where a stream of session events starts and whether it stays open.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    after: Option<i64>,
    follow: Option<bool>,
}

fn sse(event: &SessionEventOut) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event(event.kind.clone())
        .id(event.seq.to_string())
        .json_data(event)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event")))
}

/// The session's events as Server-Sent Events (`event:` the kind, `id:` its seq): those
/// recorded after `after` (or the `Last-Event-ID` header), then, unless `follow=false`, each
/// new one as it is recorded.
#[utoipa::path(get, path = "/v1/sessions/{id}/events", tag = "quests",
    params(("id" = String, Path, description = "Session id"),
        ("after" = Option<i64>, Query, description = "Only events after this seq"),
        ("follow" = Option<bool>, Query, description = "Stay open for new events (default true)")),
    responses((status = 200, content_type = "text/event-stream", body = SessionEventOut),
        (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn stream_events(
    State(app): AppState,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    visible_session(&app, &caller, &id).await?;
    let after = query.after.or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    });
    // Subscribed before reading what is stored, so nothing recorded in between is missed.
    let live = query
        .follow
        .unwrap_or(true)
        .then(|| app.turns.subscribe(&id));
    let stored: Vec<SessionEventOut> = app
        .db
        .quests
        .events(&id, after)
        .await?
        .into_iter()
        .filter_map(|row| {
            let mut event: SessionEventOut = serde_json::from_str(&row.body).ok()?;
            event.seq = row.seq;
            event.created_ms = row.created_ms;
            Some(event)
        })
        .collect();
    let last = stored.last().map(|e| e.seq).or(after).unwrap_or(-1);
    let replay = stream::iter(stored.iter().map(sse).collect::<Vec<_>>());
    let follow = match live {
        Some(receiver) => BroadcastStream::new(receiver)
            .filter_map(move |event| async move {
                match event {
                    Ok(e) if e.seq > last => Some(sse(&e)),
                    Ok(_) => None,
                    // Fell behind: the client resumes from the stored events.
                    Err(_) => Some(Ok(Event::default()
                        .event("lagged")
                        .data("missed events; reconnect with ?after= the last id seen"))),
                }
            })
            .boxed(),
        None => stream::empty().boxed(),
    };
    Ok(Sse::new(replay.chain(follow)).keep_alive(KeepAlive::new().interval(SSE_HEARTBEAT)))
}
