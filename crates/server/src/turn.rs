//! Playing a turn over HTTP: admission (else 503 with Retry-After), the session held (turns
//! of one session run in order), a generation slot, then one trip to a blocking thread where
//! the engine plays the whole turn ([`play_turn`]) and streams deltas through a bounded
//! channel; when the client goes away the channel closes and generation stops at the next
//! token. A turn is recorded (transcript line pair and new memories, one transaction) before
//! its final event is sent; a cancelled or failed turn records nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use futures_util::Stream;
use lore_engine::{
    EngineError, History, MemoryFact, Repair, TurnOutcome, TurnRequest, TurnSink, play_turn,
};
use lore_gen::{Generation, Role as LineRole, StopReason, Turn};
use lore_guard::Action;
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::db::{MemoryRow, TurnRecord, TurnRow, now_ms};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::runner::{Held, Hot};
use crate::sessions::{hold, session_ended, session_graph};
use crate::state::App;
use crate::wire::{OutputRailOut, RailOut, Timing, TurnOut, Usage};

/// How often an SSE stream sends a comment while nothing else is due. The output rail holds
/// a reply back until a sentence is whole and checked; a write is how a server notices that a
/// client left, so the heartbeat keeps a departed client's generation from running on.
pub const SSE_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(500);

/// Longest player line, in bytes.
pub const MAX_INPUT_BYTES: usize = 4096;

/// What a client receives during a turn.
#[derive(Debug)]
pub enum TurnEvent {
    /// A piece of the reply.
    Delta(String),
    /// The finished, recorded turn.
    Final(Box<TurnOut>),
    /// The turn failed after it started streaming.
    Error(ApiError),
}

/// Starts a turn of session `id` for `caller`. Errors found before anything streams
/// (unknown session, bad input, full queue) come back here, as a status code.
pub async fn start(
    app: &Arc<App>,
    caller: &Caller,
    id: &str,
    input: String,
) -> Result<mpsc::Receiver<TurnEvent>, ApiError> {
    let turns = &app.turns;
    if input.trim().is_empty() {
        return Err(ApiError::invalid(
            "field `input`: the player's line is empty",
        ));
    }
    if input.len() > MAX_INPUT_BYTES {
        return Err(ApiError::invalid(format!(
            "field `input`: {} bytes, over the limit of {MAX_INPUT_BYTES}",
            input.len()
        )));
    }
    let admitted = turns.admit()?;
    app.metrics.queue_depth.inc();
    let queued = QueueSlot(app.clone());
    let started = Instant::now();
    let guard = hold(app, caller, id).await?;
    app.metrics.stage("load", started.elapsed().as_secs_f64());
    let (events, receiver) = mpsc::channel(64);
    let app = app.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let _admitted = admitted;
        let outcome = run(&app, &id, guard, queued, input, &events).await;
        match outcome {
            Ok(out) => {
                let _ = events.send(TurnEvent::Final(Box::new(out))).await;
            }
            Err(error) => {
                if error.status == StatusCode::CONFLICT {
                    app.turns.forget(&id);
                }
                let _ = events.send(TurnEvent::Error(error)).await;
            }
        }
    });
    Ok(receiver)
}

/// Counts a turn in the queue-depth gauge until it gets a generation slot (or ends).
struct QueueSlot(Arc<App>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.metrics.queue_depth.dec();
    }
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

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A turn decided on a blocking thread, ready to be recorded.
struct Decided {
    record: TurnRecord,
    /// The player's line as later prompts show it.
    player_line: Turn,
    learned: Vec<MemoryFact>,
    /// What the client gets once the record is committed (its queue and commit times are
    /// filled in by `run`).
    out: TurnOut,
    /// The outcome the turn metrics count.
    outcome: &'static str,
}

async fn run(
    app: &Arc<App>,
    id: &str,
    mut guard: Held,
    queued: QueueSlot,
    input: String,
    events: &mpsc::Sender<TurnEvent>,
) -> Result<TurnOut, ApiError> {
    let metrics = &app.metrics;
    let queue_started = Instant::now();
    let slot = app.turns.slot().await?;
    drop(queued);
    let queue_time = queue_started.elapsed();
    metrics.stage("queue", queue_time.as_secs_f64());
    let Some(hot) = guard.as_mut() else {
        return Err(ApiError::internal("a warm session vanished"));
    };
    if events.is_closed() {
        metrics.turn("cancelled");
        return Err(cancelled());
    }
    if hot.row.ended_ms.is_some() {
        return Err(session_ended(id));
    }
    // The rails' embedding layer, retrieval and generation are CPU work or blocking I/O:
    // one trip to a blocking thread for all of them, the session travelling with it.
    let job = {
        let app = app.clone();
        let id = id.to_owned();
        let events = events.clone();
        tokio::task::spawn_blocking(move || {
            let decided = decide(&app, &id, &mut guard, &input, &events);
            (guard, decided)
        })
    };
    let (mut guard, decided) = job
        .await
        .map_err(|e| ApiError::internal(format!("turn thread: {e}")))?;
    // The slot bounds generation, not the wait for the group commit.
    drop(slot);
    let Decided {
        record,
        player_line,
        learned,
        mut out,
        outcome,
    } = decided?;
    let Some(hot) = guard.as_mut() else {
        return Err(ApiError::internal("a warm session vanished"));
    };
    out.timing.queue_ms = ms(queue_time);
    match commit_turn(app, hot, record, player_line, learned).await {
        Ok(took) => out.timing.commit_ms = ms(took),
        Err(e) => {
            *guard = None;
            return Err(e);
        }
    }
    metrics.turn(outcome);
    Ok(out)
}

/// The turn's replies as they pass the output rail, to the client's event stream; a client
/// that left, or a server aborting its turns, cancels the turn.
struct EventSink<'a> {
    events: &'a mpsc::Sender<TurnEvent>,
    abort: &'a AtomicBool,
}

impl TurnSink for EventSink<'_> {
    fn send(&mut self, text: &str) -> bool {
        !self.abort.load(Ordering::Acquire)
            && self
                .events
                .blocking_send(TurnEvent::Delta(text.to_owned()))
                .is_ok()
    }

    fn keep_going(&mut self) -> bool {
        !self.abort.load(Ordering::Acquire) && !self.events.is_closed()
    }
}

/// Plays the turn in the engine ([`play_turn`]) and translates its outcome into the record
/// to commit and the client's final event. Runs on a blocking thread; replies stream to
/// `events` as they pass the output rail.
fn decide(
    app: &App,
    id: &str,
    guard: &mut Held,
    input: &str,
    events: &mpsc::Sender<TurnEvent>,
) -> Result<Decided, ApiError> {
    let metrics = &app.metrics;
    let Some(hot) = guard.as_mut() else {
        return Err(ApiError::internal("a warm session vanished"));
    };
    let outcome = play(app, id, hot, input, events)?;
    metrics.stage("plan", outcome.plan_time.as_secs_f64());
    if outcome.output.repair != Repair::None {
        metrics.output_repair(outcome.output.repair.name());
    }
    if outcome.cancelled() {
        metrics.turn("cancelled");
        return Err(cancelled());
    }
    if !outcome.blocked() {
        count_generation(metrics, &outcome.generation);
    }
    let record = turn_record(id, hot, input, &outcome)?;
    let out = turn_out(id, record.turn.turn, &outcome);
    Ok(Decided {
        record,
        outcome: if outcome.blocked() {
            outcome.input_rail.action.name()
        } else {
            "completed"
        },
        player_line: outcome.player_line,
        learned: outcome.learned,
        out,
    })
}

/// The engine's turn in session `id`'s own backend session, streaming to `events`; a failed
/// turn is counted and answered as the API answers it.
fn play(
    app: &App,
    id: &str,
    hot: &mut Hot,
    input: &str,
    events: &mpsc::Sender<TurnEvent>,
) -> Result<TurnOutcome, ApiError> {
    let (turns, metrics) = (&app.turns, &app.metrics);
    let mut backend = match hot.backend.take() {
        Some(b) => b,
        None => turns.backend().open_session().map_err(ApiError::internal)?,
    };
    let graph = session_graph(id);
    let likeness = hot.row.likeness();
    let request = TurnRequest {
        input,
        history: History {
            offset: hot.offset,
            lines: &hot.lines,
            memory: &hot.memory,
        },
        likeness: &likeness,
        session: Some(id),
        graph: &graph,
    };
    let mut sink = EventSink {
        events,
        abort: turns.aborting(),
    };
    metrics.generating.inc();
    let played = play_turn(
        &hot.planner,
        backend.as_mut(),
        turns.backend_info(),
        request,
        &mut sink,
    );
    metrics.generating.dec();
    hot.backend = Some(backend);
    played.map_err(|e| match e {
        EngineError::Consent(_) => {
            metrics.turn("consent_refused");
            ApiError::from_engine(e)
        }
        EngineError::Gen(e) => {
            metrics.turn("failed");
            ApiError::new(StatusCode::BAD_GATEWAY, "generation_failed", e.to_string())
        }
        e => {
            metrics.turn("failed");
            ApiError::from_engine(e)
        }
    })
}

/// Counts what generating a reply cost.
fn count_generation(metrics: &Metrics, generation: &Generation) {
    metrics.stage("first_token", generation.time_to_first_token.as_secs_f64());
    metrics.stage("generate", generate_time(generation).as_secs_f64());
    metrics.tokens.inc_by(generation.generated_tokens as u64);
    if generation.tokens_per_second() > 0.0 {
        metrics
            .tokens_per_second
            .observe(generation.tokens_per_second());
    }
}

fn generate_time(generation: &Generation) -> Duration {
    generation.prompt_time + generation.generation_time
}

/// The input rail's decision as the wire shows it: empty when it allowed the line.
fn input_rail_out(outcome: &TurnOutcome) -> Vec<RailOut> {
    if outcome.blocked() {
        RailOut::from_decision("input", &outcome.input_rail)
    } else {
        Vec::new()
    }
}

/// `value` as the JSON text a column stores.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

/// The row that records `outcome` as the next turn of `hot`'s session, with its memories.
fn turn_record(
    id: &str,
    hot: &Hot,
    input: &str,
    outcome: &TurnOutcome,
) -> Result<TurnRecord, ApiError> {
    let first_seq = hot.row.memory_facts;
    Ok(TurnRecord {
        session_id: id.to_owned(),
        turn: TurnRow {
            turn: hot.row.turns,
            // A blocked line is kept verbatim for audit; later prompts see the withheld line.
            input: input.trim().to_owned(),
            reply: outcome.reply.clone(),
            recalled: json(&outcome.player_line.recalled)?,
            facts_used: json(&outcome.facts_used)?,
            created_ms: now_ms(),
            rails: json(&input_rail_out(outcome))?,
            output_rail: if outcome.blocked() {
                "{}".into()
            } else {
                json(&OutputRailOut::from_report(&outcome.output, true))?
            },
            provenance: outcome.provenance.as_ref().map(json).transpose()?,
        },
        memory: outcome
            .learned
            .iter()
            .zip(first_seq..)
            .map(|(m, seq)| MemoryRow {
                seq,
                line: i64::try_from(m.line).unwrap_or(i64::MAX),
                kind: m.kind.as_str().to_owned(),
                text: m.text.clone(),
                entities: m.entities.join(" "),
            })
            .collect(),
        ends_session: outcome.input_rail.action == Action::EndSession,
        memory_start: first_seq,
    })
}

/// The client's final event for turn `turn` of session `id` (its queue and commit times are
/// filled in once known).
fn turn_out(id: &str, turn: i64, outcome: &TurnOutcome) -> TurnOut {
    let generation = &outcome.generation;
    let (finish_reason, usage, first_token_ms, generate_ms) = if outcome.blocked() {
        ("rails", Usage::default(), 0.0, 0.0)
    } else {
        let finish = match generation.stop {
            StopReason::Stop => "stop",
            StopReason::EndOfTurn => "end_of_turn",
            StopReason::Length => "length",
            StopReason::Cancelled => "cancelled",
        };
        let usage = Usage {
            prompt_tokens: generation.prompt_tokens,
            evaluated_tokens: generation.evaluated_tokens,
            completion_tokens: generation.generated_tokens,
        };
        (
            finish,
            usage,
            ms(generation.time_to_first_token),
            ms(generate_time(generation)),
        )
    };
    TurnOut {
        session: id.to_owned(),
        turn,
        reply: outcome.reply.clone(),
        facts_used: outcome.facts_used.clone(),
        rails: input_rail_out(outcome),
        output_rail: OutputRailOut::from_report(&outcome.output, false),
        provenance: outcome.provenance.clone(),
        finish_reason: finish_reason.to_owned(),
        usage,
        timing: Timing {
            queue_ms: 0.0,
            plan_ms: ms(outcome.plan_time),
            first_token_ms,
            generate_ms,
            commit_ms: 0.0,
        },
    }
}

/// Records a turn durably, then moves the warm session on; returns the time the commit took.
/// On failure the warm copy may be ahead of or behind the database, so the caller drops it
/// (it is reloaded next time).
async fn commit_turn(
    app: &App,
    hot: &mut Hot,
    record: TurnRecord,
    player_line: Turn,
    learned: Vec<MemoryFact>,
) -> Result<std::time::Duration, ApiError> {
    let started = Instant::now();
    let reply = record.turn.reply.clone();
    let ends = record.ends_session;
    // The database stamps the session with the turn's time; the warm copy agrees.
    let at = record.turn.created_ms;
    if let Err(e) = app.db.sessions.record_turn(record).await {
        app.metrics
            .turn(if matches!(e, crate::db::DbError::Conflict(_)) {
                "conflict"
            } else {
                "failed"
            });
        return Err(e.into());
    }
    let took = started.elapsed();
    app.metrics.stage("commit", took.as_secs_f64());
    hot.row.turns += 1;
    hot.row.memory_facts += i64::try_from(learned.len()).unwrap_or(0);
    hot.row.updated_ms = at;
    if ends {
        hot.row.ended_ms = Some(at);
    }
    hot.memory.extend(learned);
    hot.lines.push(player_line);
    hot.lines.push(Turn {
        role: LineRole::Character,
        text: reply,
        recalled: Vec::new(),
    });
    // Keep only what later prompts can still show.
    let start = hot.planner.window_start(hot.offset + hot.lines.len());
    if start > hot.offset {
        hot.lines.drain(..start - hot.offset);
        hot.offset = start;
    }
    Ok(took)
}

fn cancelled() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cancelled",
        "the turn was cancelled (client gone or server shutting down); nothing was recorded",
    )
}
