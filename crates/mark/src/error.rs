use std::path::PathBuf;

/// What can go wrong with keys and records.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is not what we wrote.
    #[error("{path}: not a Lorekeeper key file: {reason}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its place in the file.
        reason: String,
    },
    /// No key has this id.
    #[error("no watermark key with id {0:?}; `lore keys watermark list` shows them")]
    UnknownKey(String),
    /// The c2pa crate could not make or sign a manifest.
    #[error("C2PA: {0}")]
    C2pa(String),
    /// Settings outside what the watermark can use.
    #[error("watermark settings: {0}")]
    BadSettings(String),
}
