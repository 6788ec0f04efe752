//! Running turns: admission, the per-session state kept warm, generation off the async
//! threads, durable recording, and the events a client receives.
//!
//! A turn is admitted only while fewer than `max_in_flight` turns are admitted (else 503 with
//! Retry-After), then waits for its session (turns of one session run in order) and for a
//! generation slot. The input rail, the plan and generation run in one trip to a blocking
//! thread (the session travels with it) and stream deltas through a bounded channel; when
//! the client goes away the channel closes and generation stops at the next token. A turn is
//! recorded (transcript line pair and new memories, one transaction) before its final event
//! is sent; a cancelled or failed turn records nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use lore_engine::{
    EngineError, History, MemoryFact, MemoryKind, OutputReport, Repair, TurnPlanner,
    generate_checked,
};
use lore_gen::{Backend, BackendInfo, Generation, Role as LineRole, Session, StopReason, Turn};
use lore_guard::Action;
use lore_mark::SignedRecord;
use lore_quest::QuestLog;
use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::auth::Caller;
use crate::db::{MemoryRow, SessionRow, TurnRecord, TurnRow, now_ms};
use crate::error::ApiError;
use crate::state::App;
use crate::wire::{OutputRailOut, RailOut, SessionEventOut, Timing, TurnOut, Usage};

/// How often an SSE stream sends a comment while nothing else is due. The output rail holds
/// a reply back until a sentence is whole and checked; a write is how a server notices that a
/// client left, so the heartbeat keeps a departed client's generation from running on.
pub const SSE_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(500);

/// Events a slow live listener may fall behind by before it is told to resume from the
/// stored events.
const EVENT_BACKLOG: usize = 256;

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

/// A session kept in memory between turns: the tail of its transcript, its memory, its
/// quests and its backend session (which holds the evaluated prompt prefix).
pub(crate) struct Hot {
    pub(crate) row: SessionRow,
    pub(crate) planner: Arc<TurnPlanner>,
    offset: usize,
    lines: Vec<Turn>,
    pub(crate) memory: Vec<MemoryFact>,
    pub(crate) quests: QuestLog,
    pub(crate) backend: Option<Box<dyn Session>>,
}

/// A session held for one request: no turn or quest update of it runs meanwhile.
pub(crate) type Held = tokio::sync::OwnedMutexGuard<Option<Hot>>;

struct HotEntry {
    session: Arc<tokio::sync::Mutex<Option<Hot>>>,
    used: u64,
}

/// Limits and settings of the turn runner.
#[derive(Debug, Clone)]
pub struct TurnLimits {
    /// Turns admitted at once (generating plus waiting); more get 503.
    pub max_in_flight: usize,
    /// Turns generating at once.
    pub generation_slots: usize,
    /// Sessions kept warm in memory.
    pub max_hot_sessions: usize,
}

/// Runs turns for every session.
pub struct Turns {
    backend: Arc<dyn Backend>,
    backend_info: BackendInfo,
    limits: TurnLimits,
    hot: Mutex<HashMap<String, HotEntry>>,
    clock: AtomicU64,
    in_flight: Arc<AtomicUsize>,
    slots: Arc<Semaphore>,
    closing: AtomicBool,
    abort: Arc<AtomicBool>,
    /// Live listeners of each session's events.
    listeners: Mutex<HashMap<String, broadcast::Sender<SessionEventOut>>>,
}

/// Releases an admission when the turn ends, however it ends.
struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A signed record as stored with its turn.
fn provenance_json(record: Option<&SignedRecord>) -> Result<Option<String>, ApiError> {
    record
        .map(serde_json::to_string)
        .transpose()
        .map_err(ApiError::internal)
}

/// The IRI of a session's own graph.
pub fn session_graph(id: &str) -> String {
    format!("urn:lore:session:{id}")
}

impl Turns {
    /// A runner over `backend`.
    pub fn new(backend: Arc<dyn Backend>, limits: TurnLimits) -> Turns {
        Turns {
            backend_info: backend.info(),
            backend,
            slots: Arc::new(Semaphore::new(limits.generation_slots.max(1))),
            limits,
            hot: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            closing: AtomicBool::new(false),
            abort: Arc::new(AtomicBool::new(false)),
            listeners: Mutex::new(HashMap::new()),
        }
    }

    /// What the backend runs.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// What the backend runs, as records state it.
    pub fn backend_info(&self) -> &BackendInfo {
        &self.backend_info
    }

    /// Turns admitted now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Sessions kept warm now.
    pub fn hot_sessions(&self) -> usize {
        self.hot.lock().map_or(0, |h| h.len())
    }

    /// Refuses new turns from now on (shutdown has begun), and ends the live event streams
    /// (their clients resume from the stored events elsewhere).
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Stops turns in flight at their next token; they record nothing.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    /// Forgets a session's warm state (after it was deleted).
    pub fn forget(&self, id: &str) {
        if let Ok(mut hot) = self.hot.lock() {
            hot.remove(id);
        }
    }

    fn entry(&self, id: &str) -> Arc<tokio::sync::Mutex<Option<Hot>>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = hot.get_mut(id) {
            entry.used = tick;
            return entry.session.clone();
        }
        if hot.len() >= self.limits.max_hot_sessions.max(1) {
            evict(&mut hot, self.limits.max_hot_sessions * 9 / 10);
        }
        let session = Arc::new(tokio::sync::Mutex::new(None));
        hot.insert(
            id.to_owned(),
            HotEntry {
                session: session.clone(),
                used: tick,
            },
        );
        session
    }

    /// Waits for a generation slot.
    pub(crate) async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("generation slots closed"))
    }

    /// Tells the live listeners of session `id` what was recorded.
    pub(crate) fn publish(&self, id: &str, events: &[SessionEventOut]) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = listeners.get(id) {
            for event in events {
                if sender.send(event.clone()).is_err() {
                    // Nobody listens any more.
                    listeners.remove(id);
                    break;
                }
            }
        }
    }

    /// A live feed of session `id`'s events from now on.
    pub(crate) fn subscribe(&self, id: &str) -> broadcast::Receiver<SessionEventOut> {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if self.closing.load(Ordering::Acquire) {
            // Its sender dropped at once: the stream ends after what is stored.
            return broadcast::channel(1).1;
        }
        listeners
            .entry(id.to_owned())
            .or_insert_with(|| broadcast::channel(EVENT_BACKLOG).0)
            .subscribe()
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
            Some(s) if s.row.tenant == caller.tenant && s.row.owner_key == caller.key_id => {
                Ok(guard)
            }
            Some(_) => Err(unknown_session(id)),
            None => Err(ApiError::internal("a warm session vanished")),
        }
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
        if turns.closing.load(Ordering::Acquire) {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the server is shutting down; retry on another replica or after restart",
                5,
            ));
        }
        if turns.in_flight.fetch_add(1, Ordering::AcqRel) >= turns.limits.max_in_flight {
            turns.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::unavailable(
                "busy",
                format!(
                    "{} turns are already in flight; retry shortly",
                    turns.limits.max_in_flight
                ),
                1,
            ));
        }
        let admitted = Admitted(turns.in_flight.clone());
        app.metrics.queue_depth.inc();
        let queued = QueueSlot(app.clone());
        let started = Instant::now();
        let guard = Turns::hold(app, caller, id).await?;
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
}

/// Counts a turn in the queue-depth gauge until it gets a generation slot (or ends).
struct QueueSlot(Arc<App>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.metrics.queue_depth.dec();
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

fn evict(hot: &mut HashMap<String, HotEntry>, keep: usize) {
    // Only idle sessions go: one whose lock is held is mid-turn.
    let mut idle: Vec<(u64, String)> = hot
        .iter()
        .filter(|(_, e)| Arc::strong_count(&e.session) == 1)
        .map(|(id, e)| (e.used, id.clone()))
        .collect();
    idle.sort_unstable();
    let excess = hot.len().saturating_sub(keep);
    for (_, id) in idle.into_iter().take(excess) {
        hot.remove(&id);
    }
}

/// Reads a session into memory: its row, the transcript lines its prompt still keeps, and
/// its whole memory.
async fn load(app: &App, id: &str) -> Result<Hot, ApiError> {
    let row = app
        .db
        .session(id)
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
        .memory(id)
        .await?
        .iter()
        .map(|m| memory_fact(&session_graph(id), m))
        .collect();
    let quests = crate::quests::read_log(&row)?;
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
    // Consent can lapse, or canon change, while a session is open.
    if let Err(e) = hot
        .planner
        .check_likeness(&hot.row.likeness(), &lore_canon::consent::today())
    {
        metrics.turn("consent_refused");
        return Err(ApiError::from_engine(e));
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

/// The input rail, then (if it allows the line) the plan, generation through the output
/// rail, provenance and what the session learned: everything of a turn but its record.
/// Runs on a blocking thread; replies stream to `events` as they pass the output rail.
fn decide(
    app: &App,
    id: &str,
    guard: &mut Held,
    input: &str,
    events: &mpsc::Sender<TurnEvent>,
) -> Result<Decided, ApiError> {
    let turns = &app.turns;
    let metrics = &app.metrics;
    let Some(hot) = guard.as_mut() else {
        return Err(ApiError::internal("a warm session vanished"));
    };
    let plan_started = Instant::now();
    let input_rail = hot.planner.check_input(input).map_err(ApiError::internal)?;
    if input_rail.action != Action::Allow {
        let reply = hot.planner.rail_reply(&input_rail, input);
        let provenance = hot.planner.provenance(
            &turns.backend_info,
            None,
            &Generation::scripted(reply.clone()),
            Some(id),
        );
        let rails = RailOut::from_decision("input", &input_rail);
        let plan_time = plan_started.elapsed();
        metrics.stage("plan", plan_time.as_secs_f64());
        let _ = events.blocking_send(TurnEvent::Delta(reply.clone()));
        let record = TurnRecord {
            session_id: id.to_owned(),
            turn: TurnRow {
                turn: hot.row.turns,
                // Kept verbatim for audit; later prompts see the withheld line instead.
                input: input.trim().to_owned(),
                reply: reply.clone(),
                recalled: "[]".into(),
                facts_used: "[]".into(),
                created_ms: now_ms(),
                rails: serde_json::to_string(&rails).map_err(ApiError::internal)?,
                output_rail: "{}".into(),
                provenance: provenance_json(provenance.as_ref())?,
            },
            memory: Vec::new(),
            ends_session: input_rail.action == Action::EndSession,
            memory_start: hot.row.memory_facts,
        };
        let player_line = Turn {
            role: LineRole::Player,
            text: hot.planner.withheld_line(),
            recalled: Vec::new(),
        };
        let out = TurnOut {
            session: id.to_owned(),
            turn: record.turn.turn,
            reply,
            facts_used: Vec::new(),
            rails,
            output_rail: OutputRailOut::from_report(&OutputReport::clean(), false),
            provenance,
            finish_reason: "rails".into(),
            usage: Usage {
                prompt_tokens: 0,
                evaluated_tokens: 0,
                completion_tokens: 0,
            },
            timing: Timing {
                queue_ms: 0.0,
                plan_ms: ms(plan_time),
                first_token_ms: 0.0,
                generate_ms: 0.0,
                commit_ms: 0.0,
            },
        };
        return Ok(Decided {
            record,
            player_line,
            learned: Vec::new(),
            out,
            outcome: input_rail.action.name(),
        });
    }
    let history = History {
        offset: hot.offset,
        lines: &hot.lines,
        memory: &hot.memory,
    };
    let (mut conversation, grounding) = hot.planner.plan(input, &history);
    let plan_time = plan_started.elapsed();
    metrics.stage("plan", plan_time.as_secs_f64());
    let mut backend = match hot.backend.take() {
        Some(b) => b,
        None => turns.backend.open_session().map_err(ApiError::internal)?,
    };
    let mut on_text = |text: &str| {
        !turns.abort.load(Ordering::Acquire)
            && if text.is_empty() {
                // Only asked whether the client is still there.
                !events.is_closed()
            } else {
                events
                    .blocking_send(TurnEvent::Delta(text.to_owned()))
                    .is_ok()
            }
    };
    metrics.generating.inc();
    // Only sentences the output rail passes reach `on_text`.
    let result = generate_checked(
        &hot.planner,
        backend.as_mut(),
        &conversation,
        &hot.planner.options().generation,
        input,
        &mut on_text,
    );
    metrics.generating.dec();
    hot.backend = Some(backend);
    let (generation, output) = match result {
        Ok(checked) => (checked.generation, checked.output),
        Err(EngineError::Gen(e)) => {
            metrics.turn("failed");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "generation_failed",
                e.to_string(),
            ));
        }
        Err(e) => {
            metrics.turn("failed");
            return Err(ApiError::from_engine(e));
        }
    };
    if output.repair != Repair::None {
        metrics.output_repair(output.repair.name());
    }
    if generation.stop == StopReason::Cancelled {
        metrics.turn("cancelled");
        return Err(cancelled());
    }
    metrics.stage("first_token", generation.time_to_first_token.as_secs_f64());
    let generate_time = generation.prompt_time + generation.generation_time;
    metrics.stage("generate", generate_time.as_secs_f64());
    metrics.tokens.inc_by(generation.generated_tokens as u64);
    if generation.tokens_per_second() > 0.0 {
        metrics
            .tokens_per_second
            .observe(generation.tokens_per_second());
    }

    // Signed over the whole prompt, before the player's line is moved into the history.
    let provenance = hot.planner.provenance(
        &turns.backend_info,
        Some(&conversation),
        &generation,
        Some(id),
    );
    let line = hot.offset + hot.lines.len();
    let graph = session_graph(id);
    let first_seq = usize::try_from(hot.row.memory_facts).unwrap_or(0);
    let learned = hot.planner.remember(&graph, line, first_seq, input);
    let facts_used: Vec<String> = grounding.iter().map(|f| f.iri.clone()).collect();
    let player_line = conversation.turns.pop().unwrap_or(Turn {
        role: LineRole::Player,
        text: input.trim().to_owned(),
        recalled: Vec::new(),
    });
    let record = TurnRecord {
        session_id: id.to_owned(),
        turn: TurnRow {
            turn: hot.row.turns,
            input: player_line.text.clone(),
            reply: generation.text.clone(),
            recalled: serde_json::to_string(&player_line.recalled).map_err(ApiError::internal)?,
            facts_used: serde_json::to_string(&facts_used).map_err(ApiError::internal)?,
            created_ms: now_ms(),
            rails: "[]".into(),
            output_rail: serde_json::to_string(&OutputRailOut::from_report(&output, true))
                .map_err(ApiError::internal)?,
            provenance: provenance_json(provenance.as_ref())?,
        },
        memory: learned
            .iter()
            .zip(first_seq..)
            .map(|(m, seq)| MemoryRow {
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                line: i64::try_from(m.line).unwrap_or(i64::MAX),
                kind: m.kind.as_str().to_owned(),
                text: m.text.clone(),
                entities: m.entities.join(" "),
            })
            .collect(),
        ends_session: false,
        memory_start: hot.row.memory_facts,
    };
    let out = TurnOut {
        session: id.to_owned(),
        turn: record.turn.turn,
        reply: generation.text.clone(),
        facts_used,
        rails: Vec::new(),
        output_rail: OutputRailOut::from_report(&output, false),
        provenance,
        finish_reason: match generation.stop {
            StopReason::Stop => "stop",
            StopReason::EndOfTurn => "end_of_turn",
            StopReason::Length => "length",
            StopReason::Cancelled => "cancelled",
        }
        .to_owned(),
        usage: Usage {
            prompt_tokens: generation.prompt_tokens,
            evaluated_tokens: generation.evaluated_tokens,
            completion_tokens: generation.generated_tokens,
        },
        timing: Timing {
            queue_ms: 0.0,
            plan_ms: ms(plan_time),
            first_token_ms: ms(generation.time_to_first_token),
            generate_ms: ms(generate_time),
            commit_ms: 0.0,
        },
    };
    Ok(Decided {
        record,
        player_line,
        learned,
        out,
        outcome: "completed",
    })
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
    if let Err(e) = app.db.record_turn(record).await {
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
