//! Engine: one character session, from the player's words to a streamed, grounded reply.
//!
//! A [`CharacterSession`] binds a production's [`World`], a speaking character and a beat of
//! story time to a generation [`Session`](lore_gen::Session). Each turn it retrieves what the
//! character knows about what the player said, assembles the prompt (the persona prefix stays
//! byte-identical between turns so the backend reuses its evaluation), and streams the reply.
//!
//! It also drafts characters for writers ([`draft_character`]): material for the review
//! queue, never canon by itself.
//!
//! The engine knows neither terminals nor HTTP: the CLI and the server drive it.

mod draft;
mod export;
mod memory;
mod preamble;
mod provenance;
mod quest;
mod reply;
mod session;

pub use draft::{DraftedCharacter, character_request, character_schema, draft_character};
pub use export::{Export, ExportFormat, ExportSource, ExportTurn, export};
pub use lore_canon::World;
pub use memory::{MemoryFact, MemoryKind};
pub use preamble::preamble;
pub use quest::{plan_write_up, write_up_schema};
pub use reply::{CheckedReply, OutputReport, Repair, SentenceVerdict, generate_checked, sentences};
pub use session::{
    CharacterSession, EngineError, History, LikenessScope, SessionOptions, TurnContext,
    TurnPlanner, TurnResult,
};
