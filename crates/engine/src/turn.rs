//! One whole turn: likeness, the input rail, retrieval and the prompt, generation through the
//! output rail, provenance and what the session learns. Every caller (the terminal, the
//! server's session turns, its OpenAI-compatible route and the web playground) runs this and
//! only translates the outcome.

use std::time::{Duration, Instant};

use lore_canon::consent;
use lore_gen::{BackendInfo, Generation, Role, Session, StopReason, Turn};
use lore_guard::{Action, Decision};
use lore_mark::SignedRecord;

use crate::error::EngineError;
use crate::memory::MemoryFact;
use crate::options::LikenessScope;
use crate::output_rail::{Candidates, OutputReport, TurnSink, generate_checked};
use crate::planner::{History, TurnPlanner};

/// A player's line and where it falls in its session.
#[derive(Debug, Clone, Copy)]
pub struct TurnRequest<'a> {
    /// What the player said.
    pub input: &'a str,
    /// The session so far.
    pub history: History<'a>,
    /// What the client does with the replies; consent can lapse while a session is open, so
    /// it is checked on every turn.
    pub likeness: &'a LikenessScope,
    /// The session's id, as its records state it (`None` for a terminal session).
    pub session: Option<&'a str>,
    /// The IRI of the session's own graph, where what the player says is remembered.
    pub graph: &'a str,
}

/// Everything a turn produced; the caller records it and answers its client.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The character's reply, as the player got it.
    pub reply: String,
    /// The input rail's decision. When it did not allow the line, `reply` is the character's
    /// deflection (or a refusal) and nothing was generated.
    pub input_rail: Decision,
    /// The player's line as later prompts show it: with the facts recalled for it, or the
    /// withheld line in place of one the input rail blocked.
    pub player_line: Turn,
    /// IRIs of the facts this reply is grounded in: standing facts, then those retrieved or
    /// recalled for the player's line.
    pub facts_used: Vec<String>,
    /// What the session learned from the player's line (nothing for a blocked or cancelled
    /// turn).
    pub learned: Vec<MemoryFact>,
    /// What generation cost; `stop` is [`StopReason::Cancelled`] when the sink cancelled.
    pub generation: Generation,
    /// What the output rail withheld and how the reply was repaired.
    pub output: OutputReport,
    /// The reply's signed provenance record, when the planner signs.
    pub provenance: Option<SignedRecord>,
    /// Time from the start of the turn to the prompt being ready (or the rails' answer).
    pub plan_time: Duration,
}

impl TurnOutcome {
    /// Whether the input rail answered instead of the model.
    pub fn blocked(&self) -> bool {
        self.input_rail.action != Action::Allow
    }

    /// Whether the sink cancelled the turn: it joins no history and nothing of it is kept.
    pub fn cancelled(&self) -> bool {
        self.generation.stop == StopReason::Cancelled
    }
}

/// Plays one turn of `planner`'s character in `backend_session`, streaming the reply to
/// `sink` as it passes the output rail. Fails before anything streams when the line is empty
/// or the character's performer does not consent to `request.likeness` today.
pub fn play_turn(
    planner: &TurnPlanner,
    backend_session: &mut dyn Session,
    backend: &BackendInfo,
    request: TurnRequest<'_>,
    sink: &mut dyn TurnSink,
) -> Result<TurnOutcome, EngineError> {
    let TurnRequest {
        input,
        history,
        likeness,
        session,
        graph,
    } = request;
    if input.trim().is_empty() {
        return Err(EngineError::EmptyInput);
    }
    let started = Instant::now();
    planner.check_likeness(likeness, &consent::today())?;
    let input_rail = planner.check_input(input)?;
    if input_rail.action != Action::Allow {
        let reply = planner.rail_reply(&input_rail, input);
        let plan_time = started.elapsed();
        sink.send(&reply);
        let generation = Generation::scripted(reply.clone());
        let provenance = planner.provenance(backend, None, &generation, session);
        return Ok(TurnOutcome {
            reply,
            input_rail,
            // Neither the line nor anything learned from it reaches a later prompt.
            player_line: Turn {
                role: Role::Player,
                text: planner.withheld_line(),
                recalled: Vec::new(),
            },
            facts_used: Vec::new(),
            learned: Vec::new(),
            generation,
            output: OutputReport::clean(),
            provenance,
            plan_time,
        });
    }
    let (mut conversation, grounding) = planner.plan(input, &history);
    let plan_time = started.elapsed();
    let facts: Vec<&str> = grounding.iter().map(|f| f.text.as_str()).collect();
    let candidates = Candidates {
        count: planner.options().candidates,
        facts: &facts,
        line: input,
    };
    let checked = generate_checked(
        planner,
        backend_session,
        &conversation,
        &planner.options().generation,
        candidates,
        &planner.deflection(input),
        sink,
    )?;
    let generation = checked.generation;
    // Signed over the whole prompt, before the player's line is taken out of it.
    let provenance = planner.provenance(backend, Some(&conversation), &generation, session);
    let learned = if generation.stop == StopReason::Cancelled {
        Vec::new()
    } else {
        planner.remember(graph, history.total(), history.memory.len(), input)
    };
    let player_line = conversation.turns.pop().unwrap_or(Turn {
        role: Role::Player,
        text: input.trim().to_owned(),
        recalled: Vec::new(),
    });
    Ok(TurnOutcome {
        reply: generation.text.clone(),
        input_rail,
        player_line,
        facts_used: grounding.into_iter().map(|f| f.iri).collect(),
        learned,
        generation,
        output: checked.output,
        provenance,
        plan_time,
    })
}
