//! Long-term memory: what a player told a character, kept as facts of the session's own graph.
//!
//! The transcript keeps only a window of recent lines in the prompt; memory is what lets a
//! character recall a line that has left it. Every player line becomes a fact (nothing is
//! summarised away), linked to the canon entities it names, and a self-introduction also
//! becomes a pinned fact ("the visitor's name is Ada"). Game events and quests leave event
//! facts; how the character regards the player after them is a pinned fact too. Recall is lexical and by entity, so it
//! is deterministic, cheap and explainable, like canon retrieval.

use std::collections::HashSet;

use lore_canon::{Reason, Retrieved};

/// Longest memory text kept from one player line, in characters.
const MAX_MEMORY_CHARS: usize = 400;

/// What kind of thing a memory records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoryKind {
    /// Something the player said.
    Said,
    /// The name the player gave: recalled on every turn.
    Name,
    /// Something that happened in the session (reported by the game).
    Event,
    /// How the character regards the player now: recalled on every turn, the newest only.
    Regard,
}

impl MemoryKind {
    /// The stable name stored with the fact.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Said => "said",
            MemoryKind::Name => "name",
            MemoryKind::Event => "event",
            MemoryKind::Regard => "regard",
        }
    }

    /// Whether the newest memory of this kind is recalled on every turn.
    pub fn pinned(self) -> bool {
        matches!(self, MemoryKind::Name | MemoryKind::Regard)
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<MemoryKind> {
        match name {
            "said" => Some(MemoryKind::Said),
            "name" => Some(MemoryKind::Name),
            "event" => Some(MemoryKind::Event),
            "regard" => Some(MemoryKind::Regard),
            _ => None,
        }
    }
}

/// One fact of a session's graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryFact {
    /// Its IRI, inside the session's graph.
    pub iri: String,
    /// The index of the transcript line it came from.
    pub line: usize,
    /// What it records.
    pub kind: MemoryKind,
    /// The sentence put to the model.
    pub text: String,
    /// IRIs of the canon entities it names.
    pub entities: Vec<String>,
    /// Its distinct content words, lowercased: recall runs every turn over the whole memory,
    /// so they are found once, here.
    keywords: Vec<String>,
}

impl MemoryFact {
    /// A memory with its keywords.
    pub fn new(
        iri: String,
        line: usize,
        kind: MemoryKind,
        text: String,
        entities: Vec<String>,
    ) -> MemoryFact {
        let lower = text.to_lowercase();
        let mut keywords: Vec<String> = content_words(&lower)
            .into_iter()
            .map(str::to_owned)
            .collect();
        keywords.sort_unstable();
        MemoryFact {
            iri,
            line,
            kind,
            text,
            entities,
            keywords,
        }
    }
}

/// The memories one player line leaves: the line itself and, if the player introduced
/// themselves, their name. `first_seq` numbers the facts inside the session's graph.
pub(crate) fn remember(
    graph: &str,
    player_label: &str,
    line: usize,
    first_seq: usize,
    input: &str,
    entities: Vec<String>,
) -> Vec<MemoryFact> {
    let said: String = input.trim().chars().take(MAX_MEMORY_CHARS).collect();
    let mut out = Vec::new();
    if let Some(name) = introduced_name(&said) {
        out.push(MemoryFact::new(
            format!("{graph}#m{}", first_seq + out.len()),
            line,
            MemoryKind::Name,
            format!("The {}'s name is {name}.", player_label.to_lowercase()),
            Vec::new(),
        ));
    }
    out.push(MemoryFact::new(
        format!("{graph}#m{}", first_seq + out.len()),
        line,
        MemoryKind::Said,
        format!(
            "Earlier the {} said: \"{said}\"",
            player_label.to_lowercase()
        ),
        entities,
    ));
    out
}

/// The name in "my name is Ada", "I'm Ada Quill", "call me Ada": capitalised words only, so
/// "I am tired" names nobody.
fn introduced_name(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for cue in ["my name is ", "call me ", "i am ", "i'm ", "name's "] {
        let Some(at) = lower.find(cue) else { continue };
        if at > 0
            && lower[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        let rest = &text[at + cue.len()..];
        let name: Vec<&str> = rest
            .split_whitespace()
            .map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric()))
            .take_while(|w| w.chars().next().is_some_and(char::is_uppercase) && *w != "I")
            .take(3)
            .collect();
        if !name.is_empty() {
            return Some(name.join(" "));
        }
    }
    None
}

/// Words that say nothing about what a memory is about.
const STOPWORDS: &[&str] = &[
    "about", "again", "also", "and", "are", "but", "can", "did", "does", "for", "from", "had",
    "has", "have", "her", "him", "his", "how", "into", "its", "just", "know", "not", "now", "our",
    "she", "that", "the", "their", "them", "then", "there", "they", "this", "was", "what", "when",
    "where", "which", "who", "why", "will", "with", "you", "your", "said", "earlier", "visitor",
];

/// The distinct content words of already-lowercased `text`.
fn content_words(lowercase: &str) -> HashSet<&str> {
    lowercase
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && !STOPWORDS.contains(w))
        .collect()
}

/// The memories worth recalling for `input`: names always, then those sharing entities or
/// words with it, best first (entities weigh double, newer wins ties). Memories of what the
/// player said in lines still in the prompt (index ≥ `window_start`) are skipped: the model
/// sees those lines already.
pub(crate) fn recall(
    memory: &[MemoryFact],
    input: &str,
    mentioned: &[String],
    window_start: usize,
    limit: usize,
) -> Vec<Retrieved> {
    let input = input.to_lowercase();
    let words = content_words(&input);
    // Newest first (memory is in the order it was made), so that the stable sort by score
    // below keeps the newer of equals ahead.
    let mut scored: Vec<(usize, &MemoryFact)> = memory
        .iter()
        .rev()
        // A said line still in the prompt is seen there; events never are.
        .filter(|m| m.kind != MemoryKind::Said || m.line < window_start)
        .filter_map(|m| {
            if m.kind.pinned() {
                return Some((usize::MAX, m));
            }
            let shared_entities = m.entities.iter().filter(|e| mentioned.contains(e)).count();
            let shared_words = m
                .keywords
                .iter()
                .filter(|k| words.contains(k.as_str()))
                .count();
            let score = 2 * shared_entities + shared_words;
            (score > 0).then_some((score, m))
        })
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    // Only the newest of a pinned kind counts: a player may correct their name, and regard
    // moves.
    let mut pinned = HashSet::new();
    scored
        .into_iter()
        .filter(|(_, m)| !m.kind.pinned() || pinned.insert(m.kind))
        .take(limit)
        .map(|(_, m)| Retrieved {
            iri: m.iri.clone(),
            text: m.text.clone(),
            reason: Reason::Memory { line: m.line },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capitalised_words_after_a_cue() {
        assert_eq!(
            introduced_name("Hello, my name is Ada Quill."),
            Some("Ada Quill".into())
        );
        assert_eq!(
            introduced_name("I'm Tom, from the docks"),
            Some("Tom".into())
        );
        assert_eq!(introduced_name("I am tired of fog"), None);
        assert_eq!(introduced_name("Wim am happy"), None);
    }

    #[test]
    fn recall_skips_lines_in_the_prompt_and_prefers_entities() {
        let a = remember(
            "urn:s",
            "Visitor",
            0,
            0,
            "I hid the silver key under the bridge",
            vec![],
        );
        let b = remember(
            "urn:s",
            "Visitor",
            2,
            1,
            "Bram owes me money",
            vec!["urn:bram".into()],
        );
        let memory: Vec<MemoryFact> = a.into_iter().chain(b).collect();
        let got = recall(&memory, "Where is the key?", &[], 4, 3);
        assert_eq!(got.len(), 1);
        assert!(got[0].text.contains("silver key"));
        assert!(recall(&memory, "Where is the key?", &[], 0, 3).is_empty());
        let got = recall(&memory, "what of him", &["urn:bram".into()], 4, 3);
        assert!(got[0].text.contains("Bram owes"));
    }

    #[test]
    fn the_newest_name_is_pinned() {
        let memory: Vec<MemoryFact> = [(0, "My name is Ada"), (2, "Actually, call me Bea")]
            .iter()
            .enumerate()
            .flat_map(|(i, (line, text))| remember("urn:s", "Visitor", *line, i * 2, text, vec![]))
            .collect();
        let got = recall(&memory, "hello", &[], 10, 3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].text, "The visitor's name is Bea.");
    }

    #[test]
    fn game_events_are_recalled_at_once_newest_first_with_the_newest_regard() {
        let fact = |seq: usize, kind, text: &str, entities: &[&str]| {
            MemoryFact::new(
                format!("urn:s#m{seq}"),
                4,
                kind,
                text.into(),
                entities.iter().map(|e| (*e).to_owned()).collect(),
            )
        };
        let memory = vec![
            fact(
                0,
                MemoryKind::Regard,
                "Odile is grateful to the player.",
                &[],
            ),
            fact(
                1,
                MemoryKind::Event,
                "The visitor went to the Guildhall.",
                &["urn:g"],
            ),
            fact(
                2,
                MemoryKind::Event,
                "The visitor walked Odile to the Guildhall.",
                &["urn:g"],
            ),
            fact(3, MemoryKind::Regard, "Odile trusts the player.", &[]),
        ];
        // Line 4 is still in the prompt (window from 0), yet events are not in any line.
        let got = recall(&memory, "the guildhall?", &["urn:g".into()], 0, 2);
        let texts: Vec<&str> = got.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Odile trusts the player.",
                "The visitor walked Odile to the Guildhall."
            ]
        );
    }
}
