//! Characters the model drafts at a writer's request, for the review queue.
//!
//! The model writes a new character of a production under a JSON schema, shown the
//! production's premise and two of its characters in the same JSON as examples. The draft
//! must parse, have a name no entity of the production already has, and say something in
//! every field; it is signed as a `character` artefact. It becomes canon only if a writer
//! accepts it (the server's review queue, which also runs the production's rails on it).

use lore_canon::{World, fold_name};
use lore_gen::schema::{Schema, Structured};
use lore_gen::{BackendInfo, Conversation, GenParams, Role, Session, Turn};

use crate::error::EngineError;
use crate::options::SessionOptions;
use crate::provenance::{Made, sign_record};
use crate::structured::{StructuredError, generate_structured};

/// Longest name, in characters.
const NAME_CHARS: usize = 40;
/// Longest persona.
const PERSONA_CHARS: usize = 400;
/// Longest speech style or sample line.
const LINE_CHARS: usize = 200;
/// Tokens a draft may take: enough for every field at its longest.
const DRAFT_TOKENS: usize = 400;
/// Fewest letters a field must have to say anything.
const MIN_LETTERS: usize = 3;

/// A character drafted by the model, not yet canon.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DraftedCharacter {
    /// Its name.
    pub name: String,
    /// Who it is.
    pub persona: String,
    /// How it speaks.
    pub speech_style: String,
    /// A line in its voice.
    pub sample_line: String,
    /// The signed provenance record of the draft (JSON), when the engine signs.
    #[serde(skip)]
    pub provenance: Option<String>,
}

/// The JSON a draft must be.
pub fn character_schema() -> Schema {
    let text = |max| Schema::String { min: 1, max };
    Schema::Object(vec![
        ("name".into(), text(NAME_CHARS)),
        ("persona".into(), text(PERSONA_CHARS)),
        ("speech_style".into(), text(LINE_CHARS)),
        ("sample_line".into(), text(LINE_CHARS)),
    ])
}

/// The prompt and settings a character for `brief` is drafted with.
pub fn character_request(
    world: &World,
    options: &SessionOptions,
    brief: &str,
    seed: u64,
) -> (Conversation, GenParams) {
    let examples: String = world
        .entities
        .iter()
        .filter(|e| e.persona.is_some())
        .take(2)
        .map(|e| {
            let example = serde_json::json!({
                "name": e.name,
                "persona": e.persona,
                "speech_style": e.speech_style.clone().unwrap_or_default(),
                "sample_line": e.sample_lines.first().cloned().unwrap_or_default(),
            });
            format!("{example}\n")
        })
        .collect();
    let production = &world.production;
    let preamble = format!(
        "{title}. {premise}\nThe people of this story, one JSON object each:\n{examples}\
         The writers describe a new person of this story; the archivist answers with that \
         person's JSON, giving them a name of this world.",
        title = production.title,
        premise = production.premise.as_deref().unwrap_or(""),
    );
    let conversation = Conversation {
        character: "Archivist".into(),
        player: "Writer".into(),
        others: Vec::new(),
        avoid: Vec::new(),
        preamble,
        turns: vec![Turn {
            role: Role::Player,
            text: brief.to_owned(),
            recalled: Vec::new(),
        }],
    };
    let mut params = options.generation.clone();
    params.max_tokens = DRAFT_TOKENS;
    params.sampler.seed = seed;
    params.structured = Some(Structured {
        name: "character".into(),
        schema: character_schema(),
    });
    (conversation, params)
}

/// Drafts a character of `world` for `brief` in `session`, signed as a `character` artefact.
/// Fails, naming why, when the model's draft does not parse, leaves a field all but empty, or
/// names an entity the production already has.
pub fn draft_character(
    world: &World,
    options: &SessionOptions,
    session: &mut dyn Session,
    backend: &BackendInfo,
    brief: &str,
    seed: u64,
) -> Result<DraftedCharacter, EngineError> {
    let (conversation, params) = character_request(world, options, brief, seed);
    let (mut draft, generation): (DraftedCharacter, _) =
        generate_structured(session, &conversation, &params).map_err(|e| match e {
            StructuredError::Gen(e) => EngineError::Gen(e),
            StructuredError::Parse(e) => {
                EngineError::Draft(format!("the draft does not parse: {e}"))
            }
        })?;
    for (field, text) in [
        ("name", &draft.name),
        ("persona", &draft.persona),
        ("speech_style", &draft.speech_style),
        ("sample_line", &draft.sample_line),
    ] {
        if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
            return Err(EngineError::Draft(format!(
                "the draft's {field} is all but empty: {text:?}"
            )));
        }
    }
    if !looks_like_a_name(&draft.name) {
        return Err(EngineError::Draft(format!(
            "the draft's name {:?} is not a name (one to four capitalised words)",
            draft.name
        )));
    }
    let name = fold_name(&draft.name);
    if let Some(existing) = world
        .entities
        .iter()
        .find(|e| fold_name(&e.name) == name || e.aliases.iter().any(|a| fold_name(a) == name))
    {
        return Err(EngineError::Draft(format!(
            "the draft is named {:?}, like <{}> already in canon",
            draft.name, existing.iri
        )));
    }
    let kept = lore_gen::Generation {
        text: serde_json::to_string(&draft).unwrap_or_default(),
        ..generation
    };
    let iri = lore_canon::CharacterDraft::iri_for(&world.production, &draft.name);
    let made = Made {
        artefact: "character",
        character: &iri,
        session: None,
        prompt: Some(&conversation),
        params: &params,
        generation: &kept,
    };
    draft.provenance =
        sign_record(options, world, backend, &made).and_then(|r| serde_json::to_string(&r).ok());
    Ok(draft)
}

/// Whether `text` reads as a person's name: one to four words, each capitalised except short
/// particles ("of", "the", "van"), letters and a few joining marks only.
fn looks_like_a_name(text: &str) -> bool {
    const PARTICLES: [&str; 8] = ["of", "the", "van", "von", "de", "da", "del", "la"];
    let words: Vec<&str> = text.split_whitespace().collect();
    (1..=4).contains(&words.len())
        && words.iter().all(|w| {
            w.chars().all(|c| c.is_alphabetic() || "'-.".contains(c))
                && (w.chars().next().is_some_and(char::is_uppercase) || PARTICLES.contains(w))
        })
        && words
            .iter()
            .any(|w| w.chars().next().is_some_and(char::is_uppercase))
}

#[cfg(test)]
mod tests {
    use super::looks_like_a_name;

    #[test]
    fn names_are_told_from_instructions() {
        for name in [
            "Odile Marrow",
            "Pip",
            "Brannoc of the Reeds",
            "Mara O'Dell",
            "Jean-Luc Vey",
        ] {
            assert!(looks_like_a_name(name), "{name}");
        }
        for text in [
            "Write all characters",
            "",
            "the ferryman",
            "A B C D E",
            "Tom (a boatman)",
        ] {
            assert!(!looks_like_a_name(text), "{text}");
        }
    }
}
