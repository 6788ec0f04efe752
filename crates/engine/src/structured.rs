//! Artefacts the model writes under a JSON schema rather than as a character's reply (a
//! quest's write-up, a character drafted for writers): one generation, read as the schema's
//! type. The schema is enforced while decoding; reading it back still fails, naming why,
//! when a backend ignored it.

use lore_gen::{Conversation, GenError, GenParams, Generation, Session};
use serde::de::DeserializeOwned;

/// Why a structured artefact could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StructuredError {
    /// The backend failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// The text is not the schema's JSON.
    #[error("{0}")]
    Parse(#[from] serde_json::Error),
}

/// Generates `conversation` under `params` (whose `structured` names the schema) in
/// `session`, and reads the text as a `T`.
pub(crate) fn generate_structured<T: DeserializeOwned>(
    session: &mut dyn Session,
    conversation: &Conversation,
    params: &GenParams,
) -> Result<(T, Generation), StructuredError> {
    let generation = session.generate(conversation, params, &mut |_| true)?;
    let value = serde_json::from_str(&generation.text)?;
    Ok((value, generation))
}
