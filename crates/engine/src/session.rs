//! A conversation in a terminal: one character, its history and memory kept in memory.

use std::sync::Arc;

use lore_canon::{Resolved, World, consent};
use lore_gen::{Backend, BackendInfo, Role, Session, Turn};

use crate::error::EngineError;
use crate::memory::MemoryFact;
use crate::options::{LikenessScope, SessionOptions};
use crate::output_rail::TurnSink;
use crate::planner::{History, TurnPlanner};
use crate::turn::{TurnOutcome, TurnRequest, play_turn};

/// The graph of a terminal session: it lives as long as the process.
const LOCAL_SESSION_GRAPH: &str = "urn:lore:session:local";

/// A conversation between a player and one character at one beat of story time.
pub struct CharacterSession {
    planner: TurnPlanner,
    likeness: LikenessScope,
    history: Vec<Turn>,
    memory: Vec<MemoryFact>,
    backend_session: Box<dyn Session>,
    backend: BackendInfo,
}

impl CharacterSession {
    /// Opens a session with `resolved`'s character at its beat, refused when the character's
    /// performer did not consent to `likeness` today.
    pub fn open(
        world: Arc<World>,
        resolved: Resolved,
        backend: &dyn Backend,
        options: SessionOptions,
        likeness: LikenessScope,
    ) -> Result<CharacterSession, EngineError> {
        let planner = TurnPlanner::new(world, resolved, options)?;
        planner.check_likeness(&likeness, &consent::today())?;
        let backend_session = backend.open_session()?;
        Ok(CharacterSession {
            planner,
            likeness,
            history: Vec::new(),
            memory: Vec::new(),
            backend_session,
            backend: backend.info(),
        })
    }

    /// The planner behind this session.
    pub fn planner(&self) -> &TurnPlanner {
        &self.planner
    }

    /// Plays one turn ([`play_turn`]): `sink` receives the reply as it streams and may
    /// cancel. The turn joins the session's history only if it completes.
    pub fn turn(
        &mut self,
        input: &str,
        sink: &mut dyn TurnSink,
    ) -> Result<TurnOutcome, EngineError> {
        let request = TurnRequest {
            input,
            history: History {
                offset: 0,
                lines: &self.history,
                memory: &self.memory,
            },
            likeness: &self.likeness,
            session: None,
            graph: LOCAL_SESSION_GRAPH,
        };
        let outcome = play_turn(
            &self.planner,
            self.backend_session.as_mut(),
            &self.backend,
            request,
            sink,
        )?;
        if !outcome.cancelled() {
            self.memory.extend(outcome.learned.iter().cloned());
            self.history.push(outcome.player_line.clone());
            self.history.push(Turn {
                role: Role::Character,
                text: outcome.reply.clone(),
                recalled: Vec::new(),
            });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use lore_gen::{Conversation, GenError, GenParams, Generation, StopReason};

    use super::*;

    /// Records prompts and replies with a fixed line: tests the session's bookkeeping only.
    struct Recorder(Arc<std::sync::Mutex<Vec<Conversation>>>);

    impl Backend for Recorder {
        fn info(&self) -> lore_gen::BackendInfo {
            lore_gen::BackendInfo {
                kind: "test",
                model: String::new(),
                chat_template: false,
                model_sha256: None,
            }
        }
        fn open_session(&self) -> Result<Box<dyn Session>, GenError> {
            Ok(Box::new(Recorder(self.0.clone())))
        }
    }

    impl Session for Recorder {
        fn generate(
            &mut self,
            c: &Conversation,
            _: &GenParams,
            on_text: &mut dyn FnMut(&str) -> bool,
        ) -> Result<Generation, GenError> {
            self.0.lock().unwrap().push(c.clone());
            on_text("Aye.");
            Ok(Generation {
                text: "Aye.".into(),
                prompt_tokens: 1,
                evaluated_tokens: 1,
                generated_tokens: 1,
                ..Generation::nothing(StopReason::Stop)
            })
        }
    }

    fn session() -> (CharacterSession, Arc<std::sync::Mutex<Vec<Conversation>>>) {
        session_with(SessionOptions::default())
    }

    fn session_with(
        options: SessionOptions,
    ) -> (CharacterSession, Arc<std::sync::Mutex<Vec<Conversation>>>) {
        let store = lore_canon::CanonStore::in_memory().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.trig");
        std::fs::write(&file, r#"
            @prefix lore: <https://lorekeeper.dev/ns/lore#> .
            @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
            @prefix : <urn:w:> .
            :g { :p a lore:Production ; rdfs:label "P" ; lore:graph :g ; lore:rating lore:Everyone .
                 :a a lore:Character ; rdfs:label "Ada Quill" ; lore:persona "Ada keeps bees." .
                 :b a lore:Character ; rdfs:label "Bram Stone" ; lore:persona "Bram bakes." .
                 :f1 a lore:Fact ; lore:about :b ; lore:statement "Bram bakes at dawn." ; lore:commonKnowledge true .
                 :r a lore:Relationship ; lore:source :a ; lore:target :b ; lore:kind "neighbour" . }
        "#).unwrap();
        store
            .import(
                &[file],
                lore_canon::CommitMeta::new("test", "import"),
                |_| (),
            )
            .unwrap();
        let world = Arc::new(World::load(&store, "P").unwrap());
        let resolved = world.resolve(&store, "Ada", None).unwrap();
        let prompts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let session = CharacterSession::open(
            world,
            resolved,
            &Recorder(prompts.clone()),
            options,
            LikenessScope::default(),
        )
        .unwrap();
        (session, prompts)
    }

    #[test]
    fn replies_are_signed_and_claim_no_watermark_their_backend_did_not_apply() {
        let keys = tempfile::tempdir().unwrap();
        let mut ring = lore_mark::SigningKeys::open_signing(keys.path()).unwrap();
        let (mut signed_session, _) = session_with(SessionOptions {
            signer: Some(ring.current_or_create().unwrap()),
            ..SessionOptions::default()
        });
        let result = signed_session
            .turn("Have you seen Bram?", &mut |_: &str| true)
            .unwrap();
        let signed = result.provenance.unwrap();
        let record =
            lore_mark::verify_record(&signed, &ring.public_keys(), Some(result.reply.as_bytes()))
                .unwrap();
        assert_eq!(record.backend, "test");
        assert_eq!(record.watermark, None);
        assert_eq!(record.character, "urn:w:a");
        assert_eq!(record.production, "urn:w:p");
        assert!(!record.canon_revision.is_empty());
        assert!(record.prompt_sha256.is_some());
        assert_eq!(
            record.digital_source_type,
            lore_mark::provenance::TRAINED_ALGORITHMIC_MEDIA
        );
        // Without a signer, no record.
        let (mut unsigned, _) = session();
        assert!(
            unsigned
                .turn("Hello.", &mut |_: &str| true)
                .unwrap()
                .provenance
                .is_none()
        );
    }

    #[test]
    fn a_recalled_fact_is_not_repeated_and_history_grows() {
        let (mut session, prompts) = session();
        let first = session
            .turn("Have you seen Bram?", &mut |_: &str| true)
            .unwrap();
        assert!(first.facts_used.iter().any(|f| f == "urn:w:f1"));
        let second = session.turn("Bram again?", &mut |_: &str| true).unwrap();
        let prompts = prompts.lock().unwrap();
        assert_eq!(
            prompts[0].turns.last().unwrap().recalled,
            ["Bram bakes at dawn."]
        );
        assert!(prompts[1].turns.last().unwrap().recalled.is_empty());
        assert!(
            second.facts_used.iter().any(|f| f == "urn:w:f1"),
            "still grounded in f1"
        );
        assert_eq!(prompts[1].turns.len(), 3);
        assert_eq!(prompts[1].others, ["Bram Stone"]);
    }

    fn lines(lines: &[Turn]) -> History<'_> {
        History {
            lines,
            ..History::default()
        }
    }

    #[test]
    fn history_leaves_the_prompt_in_blocks() {
        let (session, _) = session();
        let line = |i: usize| Turn {
            role: Role::Player,
            text: format!("line {i}"),
            recalled: vec![],
        };
        let window = SessionOptions::default().history_lines;
        let first_kept = |len: usize| {
            let history: Vec<Turn> = (0..len).map(line).collect();
            let (c, _) = session.planner().plan("hi", &lines(&history));
            c.turns[0].text.clone()
        };
        assert_eq!(first_kept(window), "line 0");
        // One line over drops half the window at once; the start then stays put for a while.
        assert_eq!(first_kept(window + 1), format!("line {}", window / 2));
        assert_eq!(
            first_kept(window + window / 2),
            format!("line {}", window / 2)
        );
        assert_eq!(
            first_kept(window + window / 2 + 1),
            format!("line {window}")
        );
    }

    #[test]
    fn a_fact_is_recalled_again_once_its_line_left_the_prompt() {
        let (session, _) = session();
        let window = SessionOptions::default().history_lines;
        let mut history: Vec<Turn> = (0..2)
            .map(|i| Turn {
                role: Role::Player,
                text: format!("line {i}"),
                recalled: vec![],
            })
            .collect();
        history[0].recalled = vec!["Bram bakes at dawn.".into()];
        let (kept, _) = session.planner().plan("Bram?", &lines(&history));
        assert!(
            kept.turns.last().unwrap().recalled.is_empty(),
            "still in the prompt"
        );
        history.extend((2..=window).map(|i| Turn {
            role: Role::Player,
            text: format!("line {i}"),
            recalled: vec![],
        }));
        let (dropped, grounding) = session.planner().plan("Bram?", &lines(&history));
        assert_eq!(
            dropped.turns.last().unwrap().recalled,
            ["Bram bakes at dawn."]
        );
        assert!(grounding.iter().any(|f| f.iri == "urn:w:f1"));
    }

    #[test]
    fn a_line_that_left_the_prompt_is_remembered() {
        let (mut session, prompts) = session();
        session
            .turn(
                "My name is Wren. I buried the silver key by the old mill.",
                &mut |_: &str| true,
            )
            .unwrap();
        let window = SessionOptions::default().history_lines;
        for i in 0..window {
            session
                .turn(&format!("Small talk {i}."), &mut |_: &str| true)
                .unwrap();
        }
        let result = session
            .turn("Where did I bury the key?", &mut |_: &str| true)
            .unwrap();
        let prompts = prompts.lock().unwrap();
        let last = prompts.last().unwrap();
        assert!(
            !last.turns.iter().any(|t| t.text.contains("old mill")),
            "the line itself has left the prompt"
        );
        let recalled = &last.turns.last().unwrap().recalled;
        assert!(
            recalled.iter().any(|r| r.contains("old mill")),
            "{recalled:?}"
        );
        assert!(recalled.iter().any(|r| r == "The visitor's name is Wren."));
        assert!(
            result
                .facts_used
                .iter()
                .any(|f| f.starts_with(LOCAL_SESSION_GRAPH))
        );
    }

    #[test]
    fn empty_input_is_refused() {
        let (mut session, _) = session();
        assert!(matches!(
            session.turn("  ", &mut |_: &str| true),
            Err(EngineError::EmptyInput)
        ));
    }
}
