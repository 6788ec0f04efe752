use std::path::{Path, PathBuf};

/// Why a card, lorebook or export could not be read or written: the file, the place in it (a
/// JSON path such as `$.data.character_book.entries[2].keys`, a PNG chunk or a CHARX entry)
/// and what is wrong there. Nothing is imported when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), at.as_deref().map(|a| format!(": {a}")).unwrap_or_default())]
pub struct CardError {
    /// The file.
    pub file: PathBuf,
    /// Where in the file, when the problem has a place.
    pub at: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl CardError {
    pub(crate) fn new(
        file: &Path,
        at: impl Into<Option<String>>,
        message: impl Into<String>,
    ) -> Self {
        CardError {
            file: file.to_owned(),
            at: at.into(),
            message: message.into(),
        }
    }
}
