//! Guard: the rails around a turn.
//!
//! Player text and replies are first normalised into [`normalize::View`]s, so that spelling a
//! word with homoglyphs, zero-width characters, leetspeak, spaced letters, base64 or rot13 does
//! not hide it; then every view is checked against the policy's terms ([`lexicon::Lexicon`]),
//! and [`Rails`] turns what was found into a [`Decision`] that cites the policy nodes.
//! [`CanonCheck`] reads the sentences of a reply against canon: leaked secrets, the dead
//! spoken of as alive, family ties and places canon does not have.

mod cache;
pub mod canon_check;
pub mod encoder;
pub mod eval;
pub mod head;
mod int8;
mod layer;
pub mod lexicon;
pub mod normalize;
pub mod rails;
pub mod semantic;
pub mod topics;
mod tune;

pub use canon_check::{CanonCheck, Finding, Problem, Restriction, Support, support};
pub use rails::{Action, Audience, Decision, Fired, GuardError, Layer, Rail, Rails, Rule};
pub use semantic::{HazardHead, Semantic};
