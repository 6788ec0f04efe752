//! Interop with the community's character formats: Character Card V1/V2/V3 (JSON, PNG with
//! `ccv3`/`chara` chunks, CHARX archives), `lorebook_v3` and SillyTavern world info.
//!
//! - [`read`]: a file's bytes to a [`Document`], every field's type checked, errors naming
//!   the file and the JSON path, PNG chunk or archive entry.
//! - [`card_to_canon`], [`lorebook_to_canon`]: a document as the quads of its own graph, with
//!   a report of what became what; [`card_from_canon`], [`lorebook_from_canon`]: back again.
//! - [`card_json`], [`card_png`], [`card_charx`], [`lorebook_json`]: the files.
//!
//! Nothing here touches a store except through [`lore_canon::CanonStore`]; the CLI decides
//! where a document goes and commits it.

pub mod charx;
mod document;
mod error;
#[cfg(feature = "canon")]
mod mapping;
pub mod png;
mod write;

pub use charx::AssetFile;
pub use document::{BookFormat, Card, Document, Lorebook, Spec, read};
pub use error::CardError;
#[cfg(feature = "canon")]
pub use mapping::{
    Mapped, Placement, card_from_canon, card_to_canon, lorebook_from_canon, lorebook_to_canon,
    lorebooks, names,
};
pub use write::{card_charx, card_json, card_png, lorebook_json, pretty};
