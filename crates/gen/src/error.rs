use std::path::PathBuf;

/// Everything that can go wrong generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// The model file does not exist.
    #[error("model file {path} not found; run scripts/fetch-model.sh or pass --model PATH")]
    ModelMissing {
        /// The path given.
        path: PathBuf,
    },
    /// The file is not a GGUF model.
    #[error("{path} is not a GGUF model (it does not start with the GGUF magic bytes)")]
    NotGguf {
        /// The path given.
        path: PathBuf,
    },
    /// llama.cpp could not load the model (truncated or unsupported file).
    #[error(
        "cannot load model {path}: {reason}; the file may be truncated or of an unsupported architecture"
    )]
    ModelLoad {
        /// The path given.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The model runtime failed during a turn.
    #[error("model runtime error: {0}")]
    Runtime(String),
    /// The prompt does not fit the context window.
    #[error(
        "the prompt needs {needed} tokens but the context holds {n_ctx}; shorten canon or raise n_ctx"
    )]
    ContextFull {
        /// Prompt plus reply tokens.
        needed: usize,
        /// The context size.
        n_ctx: usize,
    },
    /// A remote backend could not be reached or refused the request.
    #[error("remote backend {url}: {reason}")]
    Remote {
        /// The endpoint.
        url: String,
        /// What happened.
        reason: String,
    },
    /// A remote backend sent something that is not the OpenAI streaming format.
    #[error("remote backend {url} sent invalid data: {reason}")]
    RemoteProtocol {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// Structured output reached its token budget before its value was complete.
    #[error("{name}: the structured output was not complete after {max_tokens} tokens")]
    Unfinished {
        /// The schema's name.
        name: String,
        /// The budget.
        max_tokens: usize,
    },
    /// A remote backend's structured output does not match the schema.
    #[error("{name}: the output does not match its schema: {reason}")]
    Unstructured {
        /// The schema's name.
        name: String,
        /// Where and how it fails.
        reason: String,
    },
    /// The embedded model's worker thread is gone.
    #[error("the embedded model worker stopped")]
    WorkerGone,
    /// The backend cannot do this.
    #[error("this backend does not support {0}")]
    Unsupported(&'static str),
}
