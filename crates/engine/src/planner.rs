//! Planning a turn for one character at one beat: the rails, retrieval and the prompt.

use std::sync::Arc;

use lore_canon::consent::LikenessRequest;
use lore_canon::{Reason, Resolved, Retrieved, Retriever, StandingContext, World};
use lore_gen::{Conversation, Role, Turn};
use lore_guard::{Action, CanonCheck, Decision, GuardError, Rails};

use crate::error::EngineError;
use crate::meaning::FactMeanings;
use crate::memory::{self, MemoryFact};
use crate::options::{LikenessScope, SessionOptions};
use crate::output_rail::{SentenceCheck, SentenceVerdict};
use crate::preamble::preamble;

/// Most other characters' names used as stop labels.
const MAX_STOP_NAMES: usize = 32;
/// Most memories recalled for one player line.
const MEMORIES_PER_TURN: usize = 3;
/// Most facts found by meaning for one player line whose names find none.
const FACTS_BY_MEANING: usize = 1;
/// The least cosine similarity between a line and a fact found by meaning.
const MEANING_FLOOR: f32 = 0.3;

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
    pub(crate) fn total(&self) -> usize {
        self.offset + self.lines.len()
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

/// Plans prompts for one character at one beat: retrieval plus prompt assembly, no model.
pub struct TurnPlanner {
    retriever: Retriever,
    /// Present when the options carry the rails' encoder.
    meanings: Option<FactMeanings>,
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
        let meanings = options
            .semantic
            .clone()
            .map(|semantic| FactMeanings::new(semantic, &retriever))
            .transpose()
            .map_err(GuardError::from)?;
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
            meanings,
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
    /// retrieved again for its names, since every prompt of the session carries them.
    pub fn context(&self, input: &str) -> TurnContext {
        TurnContext {
            standing: self.standing.clone(),
            retrieved: self.retrieve(input, None),
        }
    }

    /// The facts for `input`: those its names find, or, when they find nothing, the fact
    /// closest to it in meaning, placed last, next to the line (a standing fact too: what a
    /// small model reads last is what it answers from). Names are precise; a fact found by
    /// meaning beside them only distracts a small model. A line that names nothing is read
    /// together with the player's `previous` line, which it likely follows up.
    fn retrieve(&self, input: &str, previous: Option<&str>) -> Vec<Retrieved> {
        let mut out: Vec<Retrieved> = self
            .retriever
            .retrieve(
                input,
                self.options.facts_per_turn + self.standing.facts.len(),
            )
            .into_iter()
            .filter(|r| !self.standing.facts.iter().any(|s| s.iri == r.iri))
            .take(self.options.facts_per_turn)
            .collect();
        let Some(meanings) = self.meanings.as_ref().filter(|_| out.is_empty()) else {
            return out;
        };
        let query = match previous {
            Some(previous) if self.retriever.mentions(input).is_empty() => {
                format!("{previous} {input}")
            }
            _ => input.to_owned(),
        };
        let nearest = match meanings.nearest(&query, MEANING_FLOOR, FACTS_BY_MEANING) {
            Ok(nearest) => nearest,
            Err(e) => {
                // The standing facts still ground the turn; the encoder failing is logged.
                tracing::warn!(error = %e, "retrieval by meaning failed");
                return out;
            }
        };
        // The closest last.
        out.extend(nearest.into_iter().rev().map(|(fact, similarity)| {
            let similarity = (similarity.clamp(0.0, 0.99) * 100.0) as u8;
            self.retriever.fact(fact, Reason::Meaning { similarity })
        }));
        out
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
        let previous = history
            .lines
            .iter()
            .rev()
            .find(|t| t.role == Role::Player)
            .map(|t| t.text.as_str());
        let mut retrieved = self.retrieve(input, previous);
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
        let mut grounding: Vec<Retrieved> = self.standing.facts.clone();
        for fact in retrieved {
            if !grounding.iter().any(|g| g.iri == fact.iri) {
                grounding.push(fact);
            }
        }
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

/// The output rail's sentence check for this character at this beat.
impl SentenceCheck for TurnPlanner {
    fn check(&self, sentence: &str) -> Result<SentenceVerdict, EngineError> {
        self.check_sentence(sentence)
    }

    /// Logs what fired and why, never the sentence.
    fn withheld(&self, verdict: &SentenceVerdict) {
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
