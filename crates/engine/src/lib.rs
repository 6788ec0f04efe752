//! Engine: one character's turn, from the player's words to a streamed, grounded, signed
//! reply.
//!
//! - [`play_turn`] runs a whole turn (likeness consent, the input rail, retrieval and the
//!   prompt, generation through the output rail with repair, provenance, what the session
//!   learns) and streams the reply through a [`TurnSink`]; it returns one [`TurnOutcome`].
//!   The terminal ([`CharacterSession`]) and every server route that plays a turn call it
//!   and only translate the outcome.
//! - [`TurnPlanner`]: what one character at one beat knows and may say; it plans each
//!   prompt (the persona prefix stays byte-identical between turns so the backend reuses its
//!   evaluation) and is the output rail's [`SentenceCheck`].
//! - [`generate_checked`]: the output rail, which knows only a [`SentenceCheck`].
//! - Artefacts the model writes under a JSON schema: quest write-ups
//!   ([`TurnPlanner::write_up`]) and characters drafted for writers ([`draft_character`]),
//!   material for the review queue, never canon by itself.
//! - [`export`]: a session's text with its provenance, for a C2PA sidecar.
//!
//! The engine knows neither terminals nor HTTP: the CLI and the server drive it.

mod draft;
mod error;
mod export;
mod meaning;
mod memory;
mod options;
mod output_rail;
mod planner;
mod preamble;
mod provenance;
mod quest;
mod session;
mod structured;
mod turn;

pub use draft::{DraftedCharacter, character_request, character_schema, draft_character};
pub use error::EngineError;
pub use export::{Export, ExportFormat, ExportSource, ExportTurn, export};
pub use lore_canon::World;
pub use memory::{MemoryFact, MemoryKind};
pub use options::{LikenessScope, SessionOptions};
pub use output_rail::{
    Candidates, CheckedReply, OutputReport, Repair, SentenceCheck, SentenceVerdict, TurnSink,
    generate_checked, sentences,
};
pub use planner::{History, TurnContext, TurnPlanner};
pub use preamble::preamble;
pub use quest::{plan_write_up, write_up_schema};
pub use session::CharacterSession;
pub use turn::{TurnOutcome, TurnRequest, play_turn};
