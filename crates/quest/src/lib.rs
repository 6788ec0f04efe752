//! Quests that follow from the world: planned symbolically over canon at one beat, never
//! invented by a model.
//!
//! - [`WorldState`]: who and what is where, who holds what and who is alive at a beat, each
//!   with the canon fact that says so.
//! - [`plan`]: a quest giver's motivation (after Doran and Parberry's analysis of quests)
//!   expands through a strategy into steps from a vocabulary of [`Action`]s; roles are bound
//!   only to entities that satisfy the steps' preconditions, and every step carries its proof.
//! - [`PlayerModel`]: what a player chose before, which steers the choice among valid quests.
//! - [`simulate`]: replays a quest's steps against the state, checking every precondition
//!   and applying every postcondition. The planner never calls it: it is the check.
//! - [`QuestLog`]: a session's quests in play, stored with it by IRI: offers, answers, and
//!   game [`event`]s, which advance steps (out of order ones are said so, impossible ones
//!   refused); the session's events change the state later quests are planned in, and a
//!   changed world fails an open quest with the reason (the caller may offer a replacement).

mod plan;
mod player;
mod simulate;
mod state;
mod track;

pub use plan::{Action, Motivation, Quest, Step, plan, quests};
pub use player::{Choice, DISTRUST, PlayerModel, Style};
pub use simulate::{Failure, simulate};
pub use state::{Evidence, WorldState};
pub use track::{
    EventError, LogError, LoggedAction, LoggedEvent, LoggedQuest, LoggedStep, Progress, QuestLog,
    QuestProgress, Status, WriteUp, event,
};
