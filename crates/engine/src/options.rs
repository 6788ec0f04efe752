//! What a session may do, and what its client does with the replies.

use std::sync::Arc;

use lore_canon::consent::LikenessUse;
use lore_gen::GenParams;
use lore_guard::Semantic;
use lore_mark::Signer;

/// What a session may do per turn.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Most facts retrieved for one player line.
    pub facts_per_turn: usize,
    /// Most earlier lines kept in the prompt (player and character lines both count).
    pub history_lines: usize,
    /// The label the player's lines go under.
    pub player_label: String,
    /// Generation settings.
    pub generation: GenParams,
    /// Replies written side by side per turn, of which the output rail keeps the one that
    /// passes and that canon bears out best; 1 streams a single reply as it passes.
    pub candidates: usize,
    /// The rails' embedding layer; without it the rails match policy terms only.
    pub semantic: Option<Arc<Semantic>>,
    /// Signs each reply's provenance record; without it replies carry none.
    pub signer: Option<Signer>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            facts_per_turn: 6,
            history_lines: 16,
            player_label: "Visitor".into(),
            generation: GenParams::default(),
            candidates: 1,
            semantic: None,
            signer: None,
        }
    }
}

/// What a client does with a character's replies, for likeness consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikenessScope {
    /// The uses: text always; voice when replies are spoken, image when the character is shown.
    pub uses: Vec<LikenessUse>,
    /// Where the audience is (ISO 3166-1 alpha-2), when the client says.
    pub territory: Option<String>,
}

impl LikenessScope {
    /// Text, plus `uses` (each once), in `territory`.
    pub fn new(
        uses: impl IntoIterator<Item = LikenessUse>,
        territory: Option<String>,
    ) -> LikenessScope {
        let mut scope = LikenessScope {
            uses: vec![LikenessUse::Text],
            territory,
        };
        for u in uses {
            if !scope.uses.contains(&u) {
                scope.uses.push(u);
            }
        }
        scope
    }
}

impl Default for LikenessScope {
    fn default() -> Self {
        LikenessScope::new([], None)
    }
}
