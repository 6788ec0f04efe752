//! Canon: the studio's world as a typed RDF graph.
//!
//! This crate owns everything that reads or writes canon and nothing else: it knows no
//! model, no prompt format, no terminal and no wire format.
//!
//! - [`vocab`]: the `lore:` vocabulary (its Turtle is compiled in) and IRI constants.
//! - [`CanonStore`]: the on-disk Oxigraph store; atomic imports, read-only SPARQL, and the
//!   history of canon: every change a [`Commit`] (log, diff, revert, canon as of a commit,
//!   conflicting edits refused).
//! - [`World`]: one production's canon, layered over the shared graphs it extends,
//!   read into memory once so that a turn never waits on the store.
//! - [`Retriever`]: what one character may use at one beat of story time, and the
//!   per-turn lookup of facts for a player's words (the deterministic half of a turn).
//! - [`lint`]: `lore check`'s findings, each with a place and a fix.
//! - [`policy`]: the moral knowledge graph of a production (read into its [`World`]).
//! - [`consent`]: portrayals and the likeness consent their performers gave.
//! - [`cache`]: derived files kept between runs (stable keys, writes no reader sees half of).
//! - [`FactDraft`]: a session's fact drafted as canon, for a writer's review.
//!
//! Secrets and writer-only notes are kept out of prompts by construction: [`World`]
//! never reads `lore:writerNote`, and [`Retriever`] only hands out facts the speaking
//! character knows at the session's beat.

pub mod cache;
mod commit;
pub mod consent;
mod draft;
mod error;
mod history;
pub mod lint;
mod names;
pub mod policy;
mod production;
mod resolve;
mod retrieve;
mod store;
pub mod vocab;
mod world;

pub use commit::{Base, Change, Commit, CommitMeta};
pub use draft::{CharacterDraft, FactDraft};
pub use error::{CanonError, SyntaxError};
pub use history::ImportReport;
pub use names::{fold_name, local_name};
pub use production::{Production, productions};
pub use resolve::Resolved;
pub use retrieve::{NameIndex, Reason, Retrieved, Retriever, StandingContext};
pub use store::{CanonStore, QueryOutput, read_quads};
pub use world::{
    Beat, Claim, Entity, EntityId, EntityKind, Fact, FactId, Relationship, Span, World,
};
