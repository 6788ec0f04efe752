//! What can go wrong in an evaluation: a set that does not read (named by file and line), a
//! store or model that is not there, or a failure of the part being measured.

use std::path::PathBuf;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a set is not in the set's format.
    #[error("{}:{line}: {message}", path.display())]
    Set {
        /// The set.
        path: PathBuf,
        /// Its 1-based line number (0 when the whole file is at fault).
        line: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// What the evaluation needs is missing or its options do not fit.
    #[error("{0}")]
    Invalid(String),
    /// A failure of the part measured, at a line of a set.
    #[error("{}:{line}: {source}", path.display())]
    AtLine {
        /// The set.
        path: PathBuf,
        /// Its 1-based line number.
        line: usize,
        /// The failure.
        source: Box<EvalError>,
    },
    /// Canon could not be read.
    #[error(transparent)]
    Canon(#[from] lore_canon::CanonError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] lore_engine::EngineError),
    /// The rails failed.
    #[error(transparent)]
    Guard(#[from] lore_guard::GuardError),
    /// The rails' encoder failed.
    #[error(transparent)]
    Encoder(#[from] lore_guard::encoder::EncoderError),
    /// The model failed.
    #[error(transparent)]
    Gen(#[from] lore_gen::GenError),
    /// A safety set could not be read.
    #[error(transparent)]
    SafetySet(#[from] lore_guard::eval::EvalError),
    /// The watermark could not be made.
    #[error(transparent)]
    Mark(#[from] lore_mark::MarkError),
}

impl EvalError {
    /// Reading or writing `path` failed.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EvalError {
        let path = path.into();
        move |source| EvalError::Io { path, source }
    }

    /// A line of set `path` is malformed.
    pub(crate) fn set(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        EvalError::Set {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    /// `self` happened at line `line` of set `path`.
    pub(crate) fn at(self, path: impl Into<PathBuf>, line: usize) -> Self {
        EvalError::AtLine {
            path: path.into(),
            line,
            source: Box::new(self),
        }
    }
}
