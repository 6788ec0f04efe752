//! The turn runner's state, shared by every request: admission (how many turns are in flight),
//! generation slots, the sessions kept warm between turns, and the live listeners of each
//! session's events. It knows nothing of routes or of how a turn is played.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lore_engine::{MemoryFact, TurnPlanner};
use lore_gen::{Backend, BackendInfo, Session, Turn};
use lore_quest::QuestLog;
use tokio::sync::{Semaphore, broadcast};

use crate::db::SessionRow;
use crate::error::ApiError;
use crate::wire::SessionEventOut;

/// Events a slow live listener may fall behind by before it is told to resume from the
/// stored events.
const EVENT_BACKLOG: usize = 256;

/// A session kept in memory between turns: the tail of its transcript, its memory, its
/// quests and its backend session (which holds the evaluated prompt prefix).
pub(crate) struct Hot {
    pub(crate) row: SessionRow,
    pub(crate) planner: Arc<TurnPlanner>,
    /// How many transcript lines are not in `lines`.
    pub(crate) offset: usize,
    /// The transcript lines later prompts can still show.
    pub(crate) lines: Vec<Turn>,
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
pub(crate) struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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

    /// The lock of session `id`'s warm state, made (empty) if it has none.
    pub(crate) fn entry(&self, id: &str) -> Arc<tokio::sync::Mutex<Option<Hot>>> {
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

    /// Admits one more turn, unless the server is shutting down or `max_in_flight` turns are
    /// already admitted; the admission ends when the returned value is dropped.
    pub(crate) fn admit(&self) -> Result<Admitted, ApiError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the server is shutting down; retry on another replica or after restart",
                5,
            ));
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.limits.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::unavailable(
                "busy",
                format!(
                    "{} turns are already in flight; retry shortly",
                    self.limits.max_in_flight
                ),
                1,
            ));
        }
        Ok(Admitted(self.in_flight.clone()))
    }

    /// Whether turns in flight are to stop at their next token.
    pub(crate) fn aborting(&self) -> &AtomicBool {
        &self.abort
    }
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
