//! Authenticity: proof that a text came from this engine, and a signed record of what made it.
//!
//! - [`Watermark`]: a keyed green-list watermark in the family of Kirchenbauer et al. (2023).
//!   The sampler in `lore-gen` asks it, at each step, which candidate tokens are green and
//!   adds δ to their logits. [`detect`] needs only the keys and the text's tokens.
//! - [`Keyring`]: watermark keys kept outside canon, in the engine's home directory;
//!   one generates, every key in the ring is tried at detection.
//!
//! The crate knows nothing of models or canon: tokens are plain `u32` ids.

mod detect;
mod error;
mod keyring;
mod watermark;

pub use detect::{Detection, MIN_SCORED_TOKENS, Z_THRESHOLD, detect, p_value, score, z_score};
pub use error::MarkError;
pub use keyring::{KeyState, Keyring, StoredKey};
pub use watermark::{GreenList, Watermark, WatermarkKey, WatermarkSettings};
