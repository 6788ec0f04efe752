//! Authenticity: proof that a text came from this engine, and a signed record of what made it.
//!
//! - [`Watermark`]: a keyed green-list watermark in the family of Kirchenbauer et al. (2023).
//!   The sampler in `lore-gen` asks it, at each step, which candidate tokens are green and
//!   adds δ to their logits. [`detect`] needs only the keys and the text's tokens.
//! - [`Provenance`]: what made an artefact (engine, model and its hash, sampling, watermark,
//!   canon revision, prompt hash, session), signed with Ed25519 by a [`Signer`].
//! - [`sidecar`]: a C2PA manifest store beside an exported file, signed with the studio's
//!   certificate, that hashes the file's bytes; and its check.
//! - [`Keyring`] and [`SigningKeys`]: keys kept outside canon, in the engine's keys
//!   directory; the newest active key marks or signs, every key is tried at verification.
//!
//! The crate knows nothing of models or canon: tokens are plain `u32` ids.

mod detect;
mod error;
mod keyring;
pub mod provenance;
pub mod sidecar;
mod watermark;
mod watermark_keys;

pub use detect::{Detection, MIN_SCORED_TOKENS, Z_THRESHOLD, detect, p_value, score, z_score};
pub use error::MarkError;
pub use keyring::{KeySettings, KeyState, Ring, Stored};
pub use provenance::{Provenance, PublicKey, SignedRecord, Signer, SigningKeys, verify_record};
pub use sidecar::{ExportProvenance, SidecarVerdict, StudioCredentials, verify_sidecar};
pub use watermark::{GreenList, Watermark, WatermarkKey, WatermarkSettings};
pub use watermark_keys::{Keyring, StoredKey, WatermarkParams};
