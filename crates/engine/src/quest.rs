//! Quest write-ups: the model puts a planned quest into the giver's words, under a JSON
//! schema enforced while decoding. The plan stays the truth; the write-up is words around it.
//!
//! A write-up passes the same output rail as a reply (policy and canon, field by field), must
//! name something the quest is about and nothing it is not; one that fails, or a backend that
//! cannot produce it, leaves the plan's own words, marked `written_by: "plan"`, so a quest is
//! never offered without text nor with text that failed.

use lore_gen::{
    BackendInfo, Conversation, GenParams, Generation, Role, Schema, Session, Structured, Turn,
};
use lore_quest::{LoggedQuest, WriteUp};

use crate::output_rail::SentenceCheck;
use crate::planner::TurnPlanner;
use crate::structured::{StructuredError, generate_structured};

/// Most characters of a write-up's title, hook and each of its lines. Bounded so decoding
/// ends: at worst about 450 characters, under [`WRITE_UP_TOKENS`].
const TITLE_CHARS: usize = 48;
const HOOK_CHARS: usize = 160;
const LINE_CHARS: usize = 120;
const MAX_LINES: usize = 2;
/// Fewest letters in each field of a model's write-up.
const MIN_LETTERS: usize = 3;
/// Token budget of a write-up: enough for every bound at one token per character.
const WRITE_UP_TOKENS: usize = 512;

/// The write-up's JSON schema: `{"title", "hook", "lines": [..]}`.
pub fn write_up_schema() -> Schema {
    let text = |max| Schema::String { min: 1, max };
    Schema::Object(vec![
        ("title".into(), text(TITLE_CHARS)),
        ("hook".into(), text(HOOK_CHARS)),
        (
            "lines".into(),
            Schema::Array {
                items: Box::new(text(LINE_CHARS)),
                min: 1,
                max: MAX_LINES,
            },
        ),
    ])
}

/// The plan in its own words: what a quest says when no model may write it up.
pub fn plan_write_up(giver: &str, quest: &LoggedQuest) -> WriteUp {
    let steps: Vec<&str> = quest.steps.iter().map(|s| s.text.as_str()).collect();
    let mut title = quest.strategy.clone();
    if let Some(first) = title.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    WriteUp {
        title,
        hook: format!("{giver} has an errand for you: {}.", quest.strategy),
        lines: vec![format!("{}.", steps.join(", then "))],
        written_by: "plan".into(),
        provenance: None,
    }
}

impl TurnPlanner {
    /// The speaker's write-up of `quest`, which it gives: generated in `session` under the
    /// write-up schema and checked by the output rail; the plan's own words if either fails.
    /// Signed, when the planner signs, as a `quest` artefact of `backend` in session `id`.
    pub fn write_up(
        &self,
        session: &mut dyn Session,
        backend: &BackendInfo,
        quest: &LoggedQuest,
        id: Option<&str>,
    ) -> WriteUp {
        let (conversation, params) = self.write_up_request(quest);
        let (mut write_up, generation) =
            match self.generate_write_up(session, quest, &conversation, &params) {
                Ok(written) => written,
                Err(reason) => {
                    tracing::info!(quest = quest.id, %reason, "quest written up from the plan");
                    let plan = plan_write_up(self.character_name(), quest);
                    let scripted = Generation::scripted(String::new());
                    (plan, scripted)
                }
            };
        // The record hashes the write-up as kept, not the model's raw text.
        let generation = Generation {
            text: write_up.content(),
            ..generation
        };
        let prompt = (generation.generated_tokens > 0).then_some(&conversation);
        write_up.provenance = self
            .record("quest", backend, prompt, &params, &generation, id)
            .and_then(|r| serde_json::to_string(&r).ok());
        write_up
    }

    /// The prompt and settings a write-up of `quest` is generated with.
    pub fn write_up_request(&self, quest: &LoggedQuest) -> (Conversation, GenParams) {
        let name = self.character_name();
        let plan = plan_write_up(name, quest);
        let steps: String = quest
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {}\n", i + 1, s.text))
            .collect();
        // The schema shapes the output; the example, the plan's own words, shows a base model
        // what goes where without giving it anything else to copy.
        let example = serde_json::json!({
            "title": plan.title,
            "hook": plan.hook,
            "lines": plan.lines,
        });
        let preamble = format!(
            "{}\n\n{name} has an errand for the {player}: to {strategy}. The steps, which the \
             words must follow and not change:\n{steps}{name} puts it in JSON: a short title, a \
             hook in {name}'s voice, and one or two lines {name} says.\nExample: {example}",
            self.preamble(),
            player = self.options().player_label.to_lowercase(),
            strategy = quest.strategy,
        );
        let conversation = Conversation {
            character: name.to_owned(),
            player: self.options().player_label.clone(),
            others: Vec::new(),
            avoid: Vec::new(),
            preamble,
            turns: vec![Turn {
                role: Role::Player,
                text: "Have you any work for me?".into(),
                recalled: Vec::new(),
            }],
        };
        let params = GenParams {
            max_tokens: WRITE_UP_TOKENS,
            structured: Some(Structured {
                name: "quest_write_up".into(),
                schema: write_up_schema(),
            }),
            ..self.options().generation.clone()
        };
        (conversation, params)
    }

    fn generate_write_up(
        &self,
        session: &mut dyn Session,
        quest: &LoggedQuest,
        conversation: &Conversation,
        params: &GenParams,
    ) -> Result<(WriteUp, Generation), String> {
        #[derive(serde::Deserialize)]
        struct Fields {
            title: String,
            hook: String,
            lines: Vec<String>,
        }
        let (fields, generation): (Fields, _) = generate_structured(session, conversation, params)
            .map_err(|e| match e {
                StructuredError::Gen(e) => e.to_string(),
                StructuredError::Parse(e) => format!("the write-up does not parse: {e}"),
            })?;
        let texts = std::iter::once(&fields.title)
            .chain(std::iter::once(&fields.hook))
            .chain(&fields.lines);
        // The words may name only what the quest is about, and must name some of it.
        let about: Vec<&String> = std::iter::once(&quest.giver)
            .chain(quest.steps.iter().flat_map(|s| &s.action.targets))
            .collect();
        let mut named_any = false;
        for text in texts {
            if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
                return Err(format!(
                    "a field of the write-up is all but empty: {text:?}"
                ));
            }
            for iri in self.mentioned_iris(text) {
                if !about.contains(&&iri) {
                    return Err(format!(
                        "the write-up names <{iri}>, which the quest is not about"
                    ));
                }
                named_any |= iri != quest.giver;
            }
            let verdict = self.check(text).map_err(|e| e.to_string())?;
            if !verdict.passes() {
                self.withheld(&verdict);
                return Err("the output rail withheld the write-up".into());
            }
        }
        if !named_any {
            return Err("the write-up names nothing the quest is about".into());
        }
        let write_up = WriteUp {
            title: fields.title.trim().to_owned(),
            hook: fields.hook.trim().to_owned(),
            lines: fields.lines.iter().map(|l| l.trim().to_owned()).collect(),
            written_by: "model".into(),
            provenance: None,
        };
        Ok((write_up, generation))
    }
}
