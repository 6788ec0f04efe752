//! What can go wrong in the engine.

use lore_canon::CanonError;
use lore_canon::consent::ConsentRefusal;
use lore_gen::GenError;
use lore_guard::GuardError;

/// What went wrong in a turn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Canon could not be read or resolved.
    #[error(transparent)]
    Canon(#[from] CanonError),
    /// The backend failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// The policy cannot be enforced as written.
    #[error(transparent)]
    Policy(#[from] GuardError),
    /// The player sent nothing to answer.
    #[error("the player's line is empty")]
    EmptyInput,
    /// The character's performer did not consent to this use of their likeness.
    #[error(transparent)]
    Consent(#[from] ConsentRefusal),
    /// The model's draft of a character could not be used.
    #[error("{0}")]
    Draft(String),
}
