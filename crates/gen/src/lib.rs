//! Generation: turning a conversation into a character's next line, token by token.
//!
//! One trait, [`Backend`], with two implementations beside it: [`EmbeddedBackend`] runs any
//! GGUF file in-process through llama.cpp, and [`OpenAiBackend`] talks to any
//! OpenAI-compatible server. The engine only sees the trait.
//!
//! The crate also owns the parts of generation that must be ours rather than the runtime's:
//! - [`Sampler`]: token choice from raw logits, where the watermark is applied;
//! - [`StopScanner`]: the stop rules that keep a base model from speaking for anyone else,
//!   applied to the stream so that no held-back text is ever shown and then retracted;
//! - [`schema`]: structured output, a JSON Schema subset enforced during decoding;
//! - [`prompt`]: one [`Conversation`] rendered either as a transcript for base models or as
//!   chat messages for models with a chat template.
//!
//! Sessions keep their evaluated tokens: a turn re-evaluates only what differs from the
//! previous prompt, so turn n>1 pays for its new tokens, not for the persona.

mod embedded;
mod error;
mod openai;
pub mod prompt;
mod sampler;
pub mod schema;
mod stop;
mod tokenizer;

use std::time::Duration;

use lore_mark::{Watermark, WatermarkSettings};

pub use embedded::{EmbeddedBackend, EmbeddedConfig, MAX_CANDIDATES, PromptStyle, llama_backend};
pub use error::GenError;
pub use openai::{OpenAiBackend, OpenAiConfig};
pub use prompt::{Conversation, Role, Turn};
pub use sampler::{DryConfig, RunRole, RunRoles, Sampler, SamplerConfig};
pub use schema::{Schema, Structured};
pub use stop::StopScanner;
pub use tokenizer::GgufTokenizer;

/// What a generation may do.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Most tokens to generate for one reply. With stop rules on, the embedded backend lets a
    /// reply that is mid-sentence run up to 24 tokens further to finish it.
    pub max_tokens: usize,
    /// Token choice.
    pub sampler: SamplerConfig,
    /// Apply stop strings and end-of-turn tokens. Off only for benchmarks that must
    /// generate exactly `max_tokens`.
    pub stop_rules: bool,
    /// The watermark to mark sampled tokens with; backends that do not sample themselves
    /// ignore it and say so in [`Generation::watermark`].
    pub watermark: Option<Watermark>,
    /// JSON the reply must be, enforced while decoding; stop strings do not apply to it.
    pub structured: Option<Structured>,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_tokens: 96,
            sampler: SamplerConfig::default(),
            stop_rules: true,
            watermark: None,
            structured: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop rule fired (another speaker, end of the paragraph).
    Stop,
    /// The model ended its turn.
    EndOfTurn,
    /// `max_tokens` was reached.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

/// One finished reply and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The reply, with stop text removed.
    pub text: String,
    /// Tokens in the whole prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens actually evaluated this turn (the rest came from the session's cache).
    pub evaluated_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// From the call to the first token of the reply.
    pub time_to_first_token: Duration,
    /// Time spent evaluating the prompt.
    pub prompt_time: Duration,
    /// Time spent generating after the first token.
    pub generation_time: Duration,
    /// Why it ended.
    pub stop: StopReason,
    /// What the reply's tokens were watermarked with; `None` when no watermark was asked
    /// for or the backend chose the tokens itself.
    pub watermark: Option<WatermarkSettings>,
}

impl Generation {
    /// A generation that produced nothing and cost nothing, ending for `stop`.
    pub fn nothing(stop: StopReason) -> Generation {
        Generation {
            text: String::new(),
            prompt_tokens: 0,
            evaluated_tokens: 0,
            generated_tokens: 0,
            time_to_first_token: Duration::ZERO,
            prompt_time: Duration::ZERO,
            generation_time: Duration::ZERO,
            stop,
            watermark: None,
        }
    }

    /// What a scripted line (a deflection, a refusal) reports: its text, and no model's
    /// work, so no tokens and no watermark.
    pub fn scripted(text: String) -> Generation {
        Generation {
            text,
            ..Generation::nothing(StopReason::Stop)
        }
    }

    /// Generated tokens per second, after the first.
    pub fn tokens_per_second(&self) -> f64 {
        let secs = self.generation_time.as_secs_f64();
        if self.generated_tokens > 1 && secs > 0.0 {
            (self.generated_tokens - 1) as f64 / secs
        } else {
            0.0
        }
    }
}

/// What a backend runs, for provenance and for `lore chat --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// `embedded` or `openai`.
    pub kind: &'static str,
    /// The model's name or path.
    pub model: String,
    /// Whether prompts are rendered with the model's chat template.
    pub chat_template: bool,
    /// SHA-256 of the model file, when the model runs here.
    pub model_sha256: Option<String>,
}

/// How likely a model finds a text: the perplexity is `exp(nll / tokens)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TextScore {
    /// Tokens scored.
    pub tokens: usize,
    /// Their summed negative log-likelihood, in nats.
    pub nll: f64,
}

/// A source of generated text.
pub trait Backend: Send + Sync {
    /// What this backend runs.
    fn info(&self) -> BackendInfo;
    /// Starts a session: a conversation whose evaluated prefix is kept between turns.
    fn open_session(&self) -> Result<Box<dyn Session>, GenError>;
}

/// One conversation with a backend.
pub trait Session: Send {
    /// Generates the next line of `conversation`'s character. `on_text` receives the reply
    /// as it streams (stop text never reaches it) and returns `false` to cancel.
    fn generate(
        &mut self,
        conversation: &Conversation,
        params: &GenParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GenError>;

    /// Several replies to `conversation`, one per entry of `samplers` (which stand in for
    /// `params.sampler`), none of them streamed, for a caller that chooses among them.
    /// `keep_going` is asked between tokens; `false` cancels, and every reply then ends
    /// [`StopReason::Cancelled`]. This default writes them one after another; a backend that
    /// can decode them side by side (the embedded one) does, for far less than their sum.
    fn generate_candidates(
        &mut self,
        conversation: &Conversation,
        params: &GenParams,
        samplers: &[SamplerConfig],
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<Generation>, GenError> {
        samplers
            .iter()
            .map(|sampler| {
                let params = GenParams {
                    sampler: sampler.clone(),
                    ..params.clone()
                };
                self.generate(conversation, &params, &mut |_| keep_going())
            })
            .collect()
    }

    /// How likely the model finds `continuation` as the character's next line: the measure
    /// of what the watermark costs in quality. Backends that cannot say return
    /// [`GenError::Unsupported`].
    fn score(
        &mut self,
        conversation: &Conversation,
        continuation: &str,
    ) -> Result<TextScore, GenError> {
        let _ = (conversation, continuation);
        Err(GenError::Unsupported("scoring a text"))
    }
}
