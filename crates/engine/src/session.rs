//! A conversation with one character: planning a turn's prompt, then generating it.

use std::sync::Arc;
use std::time::Instant;

use lore_canon::consent::{self, ConsentRefusal, LikenessRequest, LikenessUse};
use lore_canon::{CanonError, Resolved, Retrieved, Retriever, StandingContext, World};
use lore_gen::{
    Backend, BackendInfo, Conversation, GenError, GenParams, Generation, Role, Session, StopReason,
    Turn,
};

use lore_guard::{Action, CanonCheck, Decision, GuardError, Rails, Semantic};
use lore_mark::{SignedRecord, Signer};

use crate::memory::{self, MemoryFact};
use crate::preamble::preamble;
use crate::reply::{OutputReport, SentenceVerdict, generate_checked};

/// Most other characters' names used as stop labels.
const MAX_STOP_NAMES: usize = 32;
/// Most memories recalled for one player line.
const MEMORIES_PER_TURN: usize = 3;

/// A session's past, as the planner needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct History<'a> {
    /// How many earlier lines are not in `lines`: a caller that keeps only the tail passes
    /// lines from [`TurnPlanner::window_start`] on.
    pub offset: usize,
    /// Transcript lines from `offset` on.
    pub lines: &'a [Turn],
    /// The session's memory.
    pub memory: &'a [MemoryFact],
}

impl History<'_> {
    fn total(&self) -> usize {
        self.offset + self.lines.len()
    }
}

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
            semantic: None,
            signer: None,
        }
    }
}

/// What went wrong in a turn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Canon could not be read or resolved.
    #[error(transparent)]
    Canon(#[from] CanonError),
    /// The backend failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// The policy cannot be enforced as written.
    #[error(transparent)]
    Policy(#[from] GuardError),
    /// The player sent nothing to answer.
    #[error("the player's line is empty")]
    EmptyInput,
    /// The character's performer did not consent to this use of their likeness.
    #[error(transparent)]
    Consent(#[from] ConsentRefusal),
    /// The model's draft of a character could not be used.
    #[error("{0}")]
    Draft(String),
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

/// What a turn draws on: the deterministic half of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnContext {
    /// Persona, scene and standing facts (the cached prefix).
    pub standing: StandingContext,
    /// Facts retrieved for this player line, with reasons.
    pub retrieved: Vec<Retrieved>,
}

/// One finished turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnResult {
    /// The character's reply.
    pub reply: String,
    /// IRIs of the facts this reply is grounded in: standing facts, then those retrieved for
    /// the player's line (whether written into this turn's prompt or an earlier one).
    pub facts_used: Vec<String>,
    /// Retrieval and prompt assembly time, in microseconds.
    pub prepare_micros: u128,
    /// What generation cost (nothing, when the input rail answered instead).
    pub generation: Generation,
    /// The input rail's decision.
    pub rails: Decision,
    /// What the output rail withheld and how the reply was repaired.
    pub output: OutputReport,
    /// The reply's signed provenance record, when the session has a signer.
    pub provenance: Option<SignedRecord>,
}

/// Plans prompts for one character at one beat: retrieval plus prompt assembly, no model.
pub struct TurnPlanner {
    retriever: Retriever,
    standing: StandingContext,
    preamble: String,
    others: Vec<String>,
    options: SessionOptions,
    rails: Rails,
    canon: CanonCheck,
    deflections: Vec<String>,
}

impl TurnPlanner {
    /// Indexes `world` for `resolved`'s character and beat, writes its preamble and settles
    /// which policy nodes are off limits for the character.
    pub fn new(
        world: Arc<World>,
        resolved: Resolved,
        options: SessionOptions,
    ) -> Result<TurnPlanner, EngineError> {
        let speaker = &world.entities[resolved.character];
        let rails = Rails::new(&world, &speaker.iri, options.semantic.as_ref())?;
        let deflections = speaker.deflections.clone();
        let retriever = Retriever::new(world.clone(), resolved);
        let canon = CanonCheck::new(
            world,
            resolved.character,
            resolved.beat,
            // The retriever's index: its automaton is shared, not built again.
            retriever.names().clone(),
            options.semantic.clone(),
        );
        // Speaker labels that end a reply. A transcript reply also ends at a line break, so
        // the names that matter are those the model is likely to write: the speaker's
        // acquaintances. Listing every character of a large world would slow every token.
        let others = retriever
            .acquaintances()
            .into_iter()
            .take(MAX_STOP_NAMES)
            .map(|e| retriever.world().entities[e].name.clone())
            .collect();
        let standing = retriever.standing();
        let preamble = preamble(retriever.world(), &standing);
        Ok(TurnPlanner {
            retriever,
            standing,
            preamble,
            others,
            options,
            rails,
            canon,
            deflections,
        })
    }

    /// Whether the speaker's performer consented to `scope` on `date` (`YYYY-MM-DD`); a
    /// character nobody portrays needs no consent. Checked before any generation.
    pub fn check_likeness(&self, scope: &LikenessScope, date: &str) -> Result<(), EngineError> {
        let world = self.retriever.world();
        let speaker = &world.entities[self.retriever.speaker()];
        let Some(portrayal) = world.portrayal(&speaker.iri) else {
            return Ok(());
        };
        let request = LikenessRequest {
            uses: scope.uses.clone(),
            production: world.production.iri.clone(),
            territory: scope.territory.clone(),
            date: date.to_owned(),
        };
        if let Err(refusal) = portrayal.permits(&request) {
            tracing::info!(
                target: "lore::audit",
                action = "refuse",
                character = %speaker.iri,
                consent = %refusal.cited,
                reason = %refusal.reason,
                "likeness consent"
            );
            return Err(refusal.into());
        }
        Ok(())
    }

    /// The input rail: what the policy says about a player's line, logged for audit when it
    /// blocks the line.
    pub fn check_input(&self, input: &str) -> Result<Decision, EngineError> {
        let decision = self.try_input(input)?;
        if decision.action != Action::Allow {
            // The audit trail of the rails, for trust-and-safety staff: one event per blocked
            // line, naming each node, rule, layer and score (the line itself is in the
            // session's transcript, not in the log).
            for fired in &decision.fired {
                audit_fired("input", decision.action.name(), fired);
            }
        }
        Ok(decision)
    }

    /// What the input rail would decide on `input`, with no audit event: for staff trying
    /// the policy on lines of their own, which no player sent.
    pub fn try_input(&self, input: &str) -> Result<Decision, EngineError> {
        Ok(self.rails.check(input)?)
    }

    /// The output rail on one sentence of a reply: the policy rails and the canon check, on
    /// one reading of the sentence.
    pub fn check_sentence(&self, sentence: &str) -> Result<SentenceVerdict, EngineError> {
        let views = lore_guard::normalize::views(sentence);
        let embedded = self.rails.embed(&views)?;
        Ok(SentenceVerdict {
            policy: self
                .rails
                .decide(&views, &embedded, lore_guard::Rail::Output),
            canon: self
                .canon
                .check(sentence, &embedded)
                .map_err(GuardError::from)?,
        })
    }

    /// Logs a withheld sentence for audit: what fired and why, never the sentence.
    pub(crate) fn audit_withheld(&self, verdict: &SentenceVerdict) {
        for fired in &verdict.policy.fired {
            audit_fired("output", "withhold", fired);
        }
        for finding in &verdict.canon {
            tracing::info!(
                target: "lore::audit",
                action = "withhold",
                problem = finding.problem.kind(),
                node = %finding.problem.node(),
                evidence = %finding.evidence,
                score = finding.score,
                "output rail"
            );
        }
    }

    /// What the character says instead of generating when the input rail blocks a line: one
    /// of its `lore:deflection` lines (chosen by the input, so a retry does not cycle), or a
    /// plain line when it has none or the rails refuse.
    pub fn rail_reply(&self, decision: &Decision, input: &str) -> String {
        match decision.action {
            Action::Allow | Action::Deflect => self.deflection(input),
            Action::Refuse => "No. I won't help with that.".into(),
            Action::EndSession => "I won't go on with this conversation.".into(),
        }
    }

    /// One of the character's `lore:deflection` lines, chosen by `input` so a retry does not
    /// cycle; a plain line when it has none.
    pub fn deflection(&self, input: &str) -> String {
        if self.deflections.is_empty() {
            return "Let's talk about something else.".into();
        }
        let pick = input.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        self.deflections[pick % self.deflections.len()].clone()
    }

    /// What later prompts show in place of a player's line that the input rail blocked, so
    /// the off-limits text never reaches the model.
    pub fn withheld_line(&self) -> String {
        format!("(something {} will not talk about)", self.standing.name)
    }

    /// The speaking character's name.
    pub fn character_name(&self) -> &str {
        &self.standing.name
    }

    /// The world this planner reads.
    pub fn world(&self) -> &World {
        self.retriever.world()
    }

    /// The speaking character.
    pub fn speaker(&self) -> lore_canon::EntityId {
        self.retriever.speaker()
    }

    /// What this planner's sessions may do per turn.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// The prompt prefix shared by every turn.
    pub fn preamble(&self) -> &str {
        &self.preamble
    }

    /// What a turn for `input` draws on: facts already in the standing context are not
    /// retrieved again, since every prompt of the session carries them.
    pub fn context(&self, input: &str) -> TurnContext {
        TurnContext {
            standing: self.standing.clone(),
            retrieved: self.retrieve(input),
        }
    }

    fn retrieve(&self, input: &str) -> Vec<Retrieved> {
        self.retriever
            .retrieve(
                input,
                self.options.facts_per_turn + self.standing.facts.len(),
            )
            .into_iter()
            .filter(|r| !self.standing.facts.iter().any(|s| s.iri == r.iri))
            .take(self.options.facts_per_turn)
            .collect()
    }

    /// The index of the first transcript line a prompt keeps after `total` lines.
    ///
    /// Old lines leave the prompt in blocks of half the window, not one by one: each drop
    /// changes the prompt right after the preamble and costs a re-evaluation of the rest, so
    /// it should happen every few turns, not every turn. The start never moves back.
    pub fn window_start(&self, total: usize) -> usize {
        let excess = total.saturating_sub(self.options.history_lines);
        let step = (self.options.history_lines / 2).max(1);
        excess.div_ceil(step) * step
    }

    /// The conversation the backend gets for `input` after `history`, and what this turn is
    /// grounded in: standing facts, facts retrieved for `input`, then memories recalled for
    /// it. A fact already recalled in the lines the prompt keeps is not written again.
    pub fn plan(&self, input: &str, history: &History<'_>) -> (Conversation, Vec<Retrieved>) {
        let mut retrieved = self.retrieve(input);
        let start = self.window_start(history.total());
        let mentioned = self.mentioned_iris(input);
        retrieved.extend(memory::recall(
            history.memory,
            input,
            &mentioned,
            start,
            MEMORIES_PER_TURN,
        ));
        let kept = start
            .saturating_sub(history.offset)
            .min(history.lines.len());
        let mut turns = history.lines[kept..].to_vec();
        let in_prompt = |text: &str| turns.iter().any(|t| t.recalled.iter().any(|r| r == text));
        let recalled = retrieved
            .iter()
            .filter(|r| !in_prompt(&r.text))
            .map(|r| r.text.clone())
            .collect();
        turns.push(Turn {
            role: Role::Player,
            text: input.trim().to_owned(),
            recalled,
        });
        let conversation = Conversation {
            character: self.standing.name.clone(),
            player: self.options.player_label.clone(),
            others: self.others.clone(),
            avoid: Vec::new(),
            preamble: self.preamble.clone(),
            turns,
        };
        let grounding = self
            .standing
            .facts
            .iter()
            .cloned()
            .chain(retrieved)
            .collect();
        (conversation, grounding)
    }

    /// What line `line` of a session, the player's `input`, leaves in the session's graph
    /// `graph`; `first_seq` numbers the new facts.
    pub fn remember(
        &self,
        graph: &str,
        line: usize,
        first_seq: usize,
        input: &str,
    ) -> Vec<MemoryFact> {
        memory::remember(
            graph,
            &self.options.player_label,
            line,
            first_seq,
            input,
            self.mentioned_iris(input),
        )
    }

    /// The IRIs of the canon entities `input` names.
    pub(crate) fn mentioned_iris(&self, input: &str) -> Vec<String> {
        let world = self.retriever.world();
        self.retriever
            .mentions(input)
            .into_iter()
            .map(|e| world.entities[e].iri.clone())
            .collect()
    }
}

/// One audit event for a policy node that fired on the `rail` (`input` or `output`): node,
/// rule, layer, reading and score, never the text itself.
fn audit_fired(rail: &'static str, action: &str, fired: &lore_guard::Fired) {
    tracing::info!(
        target: "lore::audit",
        rail,
        action,
        node = %fired.node,
        rule = ?fired.rule,
        layer = fired.layer.name(),
        view = fired.view.name(),
        score = fired.score,
        "policy node fired"
    );
}

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

    /// Plays one turn: `on_text` receives the reply as it streams and may return `false`
    /// to cancel. The turn joins the session's history only if it completes.
    pub fn turn(
        &mut self,
        input: &str,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<TurnResult, EngineError> {
        if input.trim().is_empty() {
            return Err(EngineError::EmptyInput);
        }
        let started = Instant::now();
        // Consent can lapse while a session is open.
        self.planner
            .check_likeness(&self.likeness, &consent::today())?;
        let rails = self.planner.check_input(input)?;
        if rails.action != Action::Allow {
            let reply = self.planner.rail_reply(&rails, input);
            let prepare_micros = started.elapsed().as_micros();
            on_text(&reply);
            // Neither the line nor anything learned from it reaches a later prompt.
            self.history.push(Turn {
                role: Role::Player,
                text: self.planner.withheld_line(),
                recalled: Vec::new(),
            });
            self.history.push(Turn {
                role: Role::Character,
                text: reply.clone(),
                recalled: Vec::new(),
            });
            let generation = Generation::scripted(reply.clone());
            let provenance = self
                .planner
                .provenance(&self.backend, None, &generation, None);
            return Ok(TurnResult {
                generation,
                reply,
                facts_used: Vec::new(),
                prepare_micros,
                rails,
                output: OutputReport::clean(),
                provenance,
            });
        }
        let history = History {
            offset: 0,
            lines: &self.history,
            memory: &self.memory,
        };
        let (mut conversation, grounding) = self.planner.plan(input, &history);
        let prepare_micros = started.elapsed().as_micros();
        let checked = generate_checked(
            &self.planner,
            self.backend_session.as_mut(),
            &conversation,
            &self.planner.options.generation,
            input,
            on_text,
        )?;
        let generation = checked.generation;
        let provenance =
            self.planner
                .provenance(&self.backend, Some(&conversation), &generation, None);
        let facts_used: Vec<String> = grounding.iter().map(|f| f.iri.clone()).collect();
        if generation.stop != StopReason::Cancelled {
            let learned = self.planner.remember(
                LOCAL_SESSION_GRAPH,
                self.history.len(),
                self.memory.len(),
                input,
            );
            self.memory.extend(learned);
            if let Some(player_turn) = conversation.turns.pop() {
                self.history.push(player_turn);
            }
            self.history.push(Turn {
                role: Role::Character,
                text: generation.text.clone(),
                recalled: Vec::new(),
            });
        }
        Ok(TurnResult {
            reply: generation.text.clone(),
            facts_used,
            prepare_micros,
            generation,
            rails,
            output: checked.output,
            provenance,
        })
    }
}

#[cfg(test)]
mod tests {
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
            .turn("Have you seen Bram?", &mut |_| true)
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
                .turn("Hello.", &mut |_| true)
                .unwrap()
                .provenance
                .is_none()
        );
    }

    #[test]
    fn a_recalled_fact_is_not_repeated_and_history_grows() {
        let (mut session, prompts) = session();
        let first = session.turn("Have you seen Bram?", &mut |_| true).unwrap();
        assert!(first.facts_used.iter().any(|f| f == "urn:w:f1"));
        let second = session.turn("Bram again?", &mut |_| true).unwrap();
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
                &mut |_| true,
            )
            .unwrap();
        let window = SessionOptions::default().history_lines;
        for i in 0..window {
            session
                .turn(&format!("Small talk {i}."), &mut |_| true)
                .unwrap();
        }
        let result = session
            .turn("Where did I bury the key?", &mut |_| true)
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
            session.turn("  ", &mut |_| true),
            Err(EngineError::EmptyInput)
        ));
    }
}
