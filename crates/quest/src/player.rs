//! The player model: what this player chose before, which steers the choice among the quests
//! the world allows.

use std::collections::BTreeMap;

/// How a quest is mostly played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// Fighting, guarding, capturing.
    Combat,
    /// Asking, listening, persuading, delivering.
    Talk,
    /// Spying, lifting, going unseen.
    Stealth,
    /// Going places, finding and using things.
    Exploration,
}

impl Style {
    /// Every style.
    pub const ALL: [Style; 4] = [
        Style::Combat,
        Style::Talk,
        Style::Stealth,
        Style::Exploration,
    ];
}

/// One quest a player was offered, and what they did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Choice {
    /// The strategy of the quest (`"spy on a rival"`).
    pub strategy: String,
    /// Its style.
    pub style: Style,
    /// The IRIs of the entities it was about.
    pub targets: Vec<String>,
    /// Whether the player took it up.
    pub accepted: bool,
}

/// Regard at or below which a character offers the player no quest.
pub const DISTRUST: f64 = -1.5;

/// What a player chose before, and how each character regards them for it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlayerModel {
    /// Quests offered, oldest first.
    pub history: Vec<Choice>,
    /// Character IRI → regard for the player: 0 at first, raised by quests done for them,
    /// lowered by quests turned down. Sets the character's tone, and at [`DISTRUST`] they
    /// offer nothing more.
    #[serde(default)]
    pub regard: BTreeMap<String, f64>,
}

impl PlayerModel {
    /// Records an answer to an offer.
    pub fn chose(&mut self, choice: Choice) {
        self.history.push(choice);
    }

    /// Moves `character`'s regard for the player by `by`.
    pub fn regard(&mut self, character: &str, by: f64) {
        *self.regard.entry(character.to_owned()).or_default() += by;
    }

    /// How `character` regards the player (0: neutral).
    pub fn regard_of(&self, character: &str) -> f64 {
        self.regard.get(character).copied().unwrap_or(0.0)
    }

    /// The character's regard in words, for the prompt: how they speak to the player.
    pub fn tone(&self, character: &str) -> Option<&'static str> {
        let regard = self.regard_of(character);
        match regard {
            r if r >= 2.0 => Some("trusts the player and is warm towards them"),
            r if r >= 1.0 => Some("is grateful to the player"),
            r if r <= DISTRUST => Some("distrusts the player and is curt with them"),
            r if r < 0.0 => Some("is cool towards the player"),
            _ => None,
        }
    }

    /// How much this player likes `style`: accepted quests of the style raise it, refused ones
    /// lower it; 1 for a player with no history.
    pub fn preference(&self, style: Style) -> f64 {
        let mut weight: f64 = 1.0;
        for choice in self.history.iter().filter(|c| c.style == style) {
            weight += if choice.accepted { 0.5 } else { -0.4 };
        }
        weight.max(0.05)
    }

    /// How often this player has already been offered `strategy`, or a quest about `target`:
    /// repeats are less welcome.
    pub fn seen(&self, strategy: &str, targets: &[String]) -> f64 {
        self.history
            .iter()
            .map(|c| {
                let same = f64::from(u8::from(c.strategy == strategy));
                let overlap = targets.iter().filter(|t| c.targets.contains(t)).count() as f64;
                same + 0.5 * overlap
            })
            .sum()
    }
}
