//! Evaluations: how well replies are grounded in canon and how well the rails, the output rail
//! and the watermark do their jobs, measured on labelled sets; and the hazard head trained on
//! the public safety sets.
//!
//! - [`grounding`]: whether characters answer canon questions from canon, whole turns on the
//!   model;
//! - [`guard`]: the hazard side of the rails on OpenAI's moderation set and XSTest,
//!   cross-validated, and `lore train guard`'s head;
//! - [`topics`]: the topic rails on hand-written player lines, under every character and
//!   rating tier;
//! - [`replies`]: the output rail on labelled reply sentences;
//! - [`output_rail`]: the output rail on the model's own replies;
//! - [`watermark`]: detection of the watermark, its false positives and its perplexity cost.
//!
//! Each evaluation takes what it measures (a store, an encoder, a backend) and returns a
//! report with its JSON form and a table; it draws nothing and reads no configuration. Figures
//! are reported, never asserted.

mod error;
pub mod grounding;
pub mod guard;
pub mod output_rail;
mod progress;
pub mod replies;
mod sets;
pub mod topics;
pub mod watermark;

pub use error::EvalError;
pub use progress::{Progress, Quiet, Stage};
pub use sets::{REPLY_KINDS, cast, read_player_lines, verdict_kind};
