//! One conversation, rendered for base models (a transcript) or chat models (messages).

use std::borrow::Cow;

/// Who said a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The player.
    Player,
    /// The character the session speaks as.
    Character,
}

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub text: String,
    /// For a player's turn: canon the character recalls on hearing it.
    #[serde(default)]
    pub recalled: Vec<String>,
}

/// Everything a backend needs to write the character's next line. Read from JSON where a
/// fixed conversation is wanted (`lore bench generation`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// The speaking character's name.
    pub character: String,
    /// The name the player's lines go under.
    pub player: String,
    /// Names of other characters of the world: lines under these names end the reply.
    pub others: Vec<String>,
    /// Words the reply must stop before: what gave away a reply the output rail withheld.
    #[serde(default)]
    pub avoid: Vec<String>,
    /// Persona, scene and standing facts: the stable prefix of every prompt.
    pub preamble: String,
    /// The lines so far, ending with the player's line to answer.
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// The prompt for a base model: the preamble, then a transcript that ends with the
    /// character's name, so the model's continuation is the character's line.
    ///
    /// Recalled canon is set before the player's line as the character's thought, so it
    /// stays part of the transcript (and of the cached prefix) in later turns.
    pub fn transcript(&self) -> String {
        let mut out = String::with_capacity(self.preamble.len() + 256 * self.turns.len());
        out.push_str(&self.preamble);
        out.push_str("\n\n");
        for turn in &self.turns {
            match turn.role {
                Role::Player => {
                    if !turn.recalled.is_empty() {
                        out.push_str(&format!(
                            "({} recalls: {})\n",
                            self.character,
                            turn.recalled.join(" ")
                        ));
                    }
                    out.push_str(&format!("{}: {}\n", self.player, turn.text));
                }
                Role::Character => out.push_str(&format!("{}: {}\n", self.character, turn.text)),
            }
        }
        out.push_str(&format!("{}:", self.character));
        out
    }

    /// The transcript's stop rules: a line break ends the reply (a reply is one paragraph),
    /// and so does any speaker label, so the model never writes the player's or anyone
    /// else's lines.
    pub fn stop_strings(&self) -> Vec<String> {
        let mut stops = vec![
            "\n".to_owned(),
            format!("{}:", self.player),
            format!("{}:", self.character),
        ];
        stops.extend(self.others.iter().map(|o| format!("{o}:")));
        stops.extend(self.avoid.iter().cloned());
        stops
    }

    /// The conversation as chat messages `(role, content)` with roles `system`, `user`
    /// and `assistant`, for chat templates and OpenAI-compatible servers.
    pub fn messages(&self) -> Vec<(&'static str, Cow<'_, str>)> {
        let mut messages = vec![(
            "system",
            format!(
                "{}\n\nYou are {}. Reply in character, in one short paragraph, speaking only as {}.",
                self.preamble, self.character, self.character
            )
            .into(),
        )];
        for turn in &self.turns {
            match turn.role {
                Role::Player => {
                    let content = if turn.recalled.is_empty() {
                        Cow::Borrowed(turn.text.as_str())
                    } else {
                        Cow::Owned(format!(
                            "[{} recalls: {}]\n{}",
                            self.character,
                            turn.recalled.join(" "),
                            turn.text
                        ))
                    };
                    messages.push(("user", content));
                }
                Role::Character => messages.push(("assistant", Cow::Borrowed(&turn.text))),
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Conversation {
        Conversation {
            character: "Odile".into(),
            player: "Player".into(),
            others: vec!["Pip".into()],
            avoid: Vec::new(),
            preamble: "PREAMBLE".into(),
            turns: vec![
                Turn {
                    role: Role::Player,
                    text: "hi".into(),
                    recalled: vec![],
                },
                Turn {
                    role: Role::Character,
                    text: "Evening, love.".into(),
                    recalled: vec![],
                },
                Turn {
                    role: Role::Player,
                    text: "Where is Pip?".into(),
                    recalled: vec!["Pip sleeps in the loft.".into()],
                },
            ],
        }
    }

    #[test]
    fn transcript_ends_with_the_characters_label() {
        let t = conversation().transcript();
        assert!(t.starts_with("PREAMBLE\n\n"));
        assert!(t.ends_with("Player: Where is Pip?\nOdile:"));
        assert!(t.contains("(Odile recalls: Pip sleeps in the loft.)\nPlayer: Where is Pip?"));
    }

    #[test]
    fn earlier_turns_render_identically_so_the_prefix_is_reusable() {
        let mut c = conversation();
        let before = c.transcript();
        let prefix = before.strip_suffix("Odile:").unwrap();
        c.turns.push(Turn {
            role: Role::Character,
            text: "Up a lamp post.".into(),
            recalled: vec![],
        });
        c.turns.push(Turn {
            role: Role::Player,
            text: "Thanks".into(),
            recalled: vec![],
        });
        assert!(c.transcript().starts_with(prefix));
    }

    #[test]
    fn stops_cover_every_speaker() {
        let stops = conversation().stop_strings();
        for s in ["\n", "Player:", "Odile:", "Pip:"] {
            assert!(stops.contains(&s.to_owned()), "{s}");
        }
    }

    #[test]
    fn messages_alternate_after_system() {
        let conversation = conversation();
        let m = conversation.messages();
        let roles: Vec<_> = m.iter().map(|(r, _)| *r).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert!(m[3].1.contains("Pip sleeps in the loft."));
    }
}
