//! The player model: what this player chose before, which steers the choice among the quests
//! the world allows.

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

/// What a player chose before.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlayerModel {
    /// Quests offered, oldest first.
    pub history: Vec<Choice>,
}

impl PlayerModel {
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
