//! The output rail: a reply is checked sentence by sentence while it streams, and only
//! sentences that pass reach the player.
//!
//! A sentence fails when the policy rails block it or the canon check finds a leak or a
//! contradiction. Generation stops there. The reply is then repaired: what was already sent
//! stands on its own (truncated); when nothing was sent, the reply is generated once more with
//! a new seed and the failed sentence's giveaway words as stop strings (regenerated); when
//! that fails too, the character says one of its deflection lines (fallback).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use lore_gen::{Conversation, GenParams, Generation, SamplerConfig, Session, StopReason};
use lore_guard::{Action, Decision, Finding};

use crate::error::EngineError;

/// What the output rail asks of whoever knows the character: the verdict on one sentence,
/// and a record of each sentence it withholds.
pub trait SentenceCheck {
    /// The policy rails' and the canon check's verdict on `sentence`.
    fn check(&self, sentence: &str) -> Result<SentenceVerdict, EngineError>;
    /// Records for audit that a sentence with `verdict` was withheld (never the sentence).
    fn withheld(&self, verdict: &SentenceVerdict);
}

/// Where a reply streams to, sentence by sentence as the output rail passes them.
pub trait TurnSink {
    /// Takes a piece of the reply; `false` cancels the turn (the client went away).
    fn send(&mut self, text: &str) -> bool;
    /// Asked while a sentence is still being written and nothing can be sent: `false`
    /// cancels the turn.
    fn keep_going(&mut self) -> bool {
        true
    }
}

impl<F: FnMut(&str) -> bool> TurnSink for F {
    fn send(&mut self, text: &str) -> bool {
        self(text)
    }
}

/// What the rails found in one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceVerdict {
    /// The policy rails' decision.
    pub policy: Decision,
    /// The canon check's findings.
    pub canon: Vec<Finding>,
}

impl SentenceVerdict {
    /// Whether the sentence may be sent.
    pub fn passes(&self) -> bool {
        self.policy.action == Action::Allow && self.canon.is_empty()
    }

    /// Words a regeneration must not write: the policy terms and the canon giveaways.
    fn avoid(&self) -> Vec<String> {
        let lexicon = self
            .policy
            .fired
            .iter()
            .filter(|f| f.layer == lore_guard::Layer::Lexicon)
            .map(|f| f.term.clone());
        lexicon
            .chain(self.canon.iter().flat_map(|f| f.avoid.iter().cloned()))
            .collect()
    }
}

/// How the output rail changed a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repair {
    /// Every sentence passed.
    None,
    /// The reply ends before the first sentence that failed.
    Truncated,
    /// The first attempt failed before any sentence passed; a second one passed.
    Regenerated,
    /// Both attempts failed; the character deflected in its own voice.
    Fallback,
}

impl Repair {
    /// Its name on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Repair::None => "none",
            Repair::Truncated => "truncated",
            Repair::Regenerated => "regenerated",
            Repair::Fallback => "fallback",
        }
    }
}

/// What the output rail did on one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputReport {
    /// The repair made.
    pub repair: Repair,
    /// The verdicts on the sentences that were withheld (at most one per attempt); the
    /// sentences themselves are never kept.
    pub withheld: Vec<SentenceVerdict>,
}

impl OutputReport {
    /// A reply the output rail did not touch.
    pub fn clean() -> OutputReport {
        OutputReport {
            repair: Repair::None,
            withheld: Vec::new(),
        }
    }
}

/// A reply after the output rail.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedReply {
    /// The last generation's costs; its text is what the player got.
    pub generation: Generation,
    /// What the rail did.
    pub output: OutputReport,
}

/// Passes streamed text on in whole sentences that the rails allow.
struct SentenceGate<'a> {
    check: &'a dyn SentenceCheck,
    pending: String,
    sent: String,
    failed: Option<SentenceVerdict>,
    error: Option<EngineError>,
    client_gone: bool,
}

impl<'a> SentenceGate<'a> {
    fn new(check: &'a dyn SentenceCheck) -> SentenceGate<'a> {
        SentenceGate {
            check,
            pending: String::new(),
            sent: String::new(),
            failed: None,
            error: None,
            client_gone: false,
        }
    }

    /// Takes a streamed piece; returns whether generation should go on.
    fn push(&mut self, piece: &str, sink: &mut dyn TurnSink) -> bool {
        self.pending.push_str(piece);
        while let Some(end) = sentence_end(&self.pending) {
            let sentence: String = self.pending.drain(..end).collect();
            if !self.pass(sentence, sink) {
                return false;
            }
        }
        // Mid-sentence nothing is sent, but a client that left must still stop generation.
        if !sink.keep_going() {
            self.client_gone = true;
            return false;
        }
        true
    }

    /// Checks what is left when generation ends.
    fn finish(&mut self, sink: &mut dyn TurnSink) {
        let rest = std::mem::take(&mut self.pending);
        if !rest.trim().is_empty() && self.failed.is_none() && self.error.is_none() {
            self.pass(rest, sink);
        }
    }

    fn pass(&mut self, sentence: String, sink: &mut dyn TurnSink) -> bool {
        match self.check.check(&sentence) {
            Ok(verdict) if verdict.passes() => {
                if !sink.send(&sentence) {
                    self.client_gone = true;
                    return false;
                }
                self.sent.push_str(&sentence);
                true
            }
            Ok(verdict) => {
                self.failed = Some(verdict);
                false
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

/// The byte index just past the first whole sentence of `text`: after `.`, `!`, `?` or `…`
/// (and any closing quotes) followed by white space, or after a line break.
fn sentence_end(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            return Some(i + 1);
        }
        if matches!(c, '.' | '!' | '?' | '…') {
            while let Some(&(_, q)) = chars.peek() {
                if matches!(
                    q,
                    '"' | '\'' | '\u{201d}' | '\u{2019}' | ')' | '.' | '!' | '?'
                ) {
                    chars.next();
                } else {
                    break;
                }
            }
            if let Some(&(j, w)) = chars.peek()
                && w.is_whitespace()
            {
                return Some(j + w.len_utf8());
            }
        }
    }
    None
}

/// The sentences of `text`, cut where the output rail cuts a streamed reply ([`sentence_end`]),
/// each with the white space that ends it; pieces of white space alone are left out.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(end) = sentence_end(rest) {
        if !rest[..end].trim().is_empty() {
            out.push(&rest[..end]);
        }
        rest = &rest[end..];
    }
    if !rest.trim().is_empty() {
        out.push(rest);
    }
    out
}

/// How a turn's first attempt is written: one reply streamed as it passes, or several
/// decoded side by side of which the output rail keeps the best.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// Replies to decode (1: a single reply, streamed sentence by sentence).
    pub count: usize,
    /// The canon in the prompt: a reply that says more of it wins.
    pub facts: &'a [&'a str],
    /// The player's line, whose own words are no evidence of canon.
    pub line: &'a str,
}

impl Candidates<'_> {
    /// A single reply, streamed.
    pub fn one() -> Candidates<'static> {
        Candidates {
            count: 1,
            facts: &[],
            line: "",
        }
    }
}

/// Generates a reply through the output rail: `sink` gets only sentences that `check` passes,
/// and may cancel (the result then has [`StopReason::Cancelled`]). The first attempt is
/// [`Candidates::count`] replies, of which the one whose passing sentences canon bears out
/// best ([`lore_guard::Support::share`]) is kept (the first of equals; the first is written
/// with `params.sampler` itself). When nothing passes, a second reply is written; when that
/// fails too, the reply is `fallback`, a line in the character's voice.
pub fn generate_checked(
    check: &dyn SentenceCheck,
    session: &mut dyn Session,
    conversation: &Conversation,
    params: &GenParams,
    candidates: Candidates<'_>,
    fallback: &str,
    sink: &mut dyn TurnSink,
) -> Result<CheckedReply, EngineError> {
    let mut withheld = Vec::new();
    let mut spent = Generation::nothing(StopReason::Stop);
    // Copied only if a second attempt needs a constraint added.
    let mut conversation = Cow::Borrowed(conversation);
    let mut params = Cow::Borrowed(params);
    for attempt in 0..2 {
        let several = attempt == 0 && candidates.count > 1;
        // Candidates are checked before one is chosen, and the chosen one again as it is sent:
        // their verdicts are kept. A single streamed reply checks each sentence once anyway.
        let remembered = Remembered::new(check);
        let check: &dyn SentenceCheck = if several { &remembered } else { check };
        let mut gate = SentenceGate::new(check);
        let attempt_cost = if several {
            let samplers = candidate_samplers(&params.sampler, candidates.count);
            let replies =
                session.generate_candidates(&conversation, &params, &samplers, &mut || {
                    sink.keep_going()
                })?;
            let best = choose(check, replies, candidates)?;
            if best.stop == StopReason::Cancelled {
                gate.client_gone = true;
            } else {
                gate.push(&best.text, sink);
            }
            best
        } else {
            session.generate(&conversation, &params, &mut |t| gate.push(t, sink))?
        };
        let mut generation = add_costs(&spent, attempt_cost);
        // The client left (or the server is stopping): not a failed sentence.
        let cancelled = |gate: &SentenceGate<'_>, g: &Generation| {
            gate.client_gone || (g.stop == StopReason::Cancelled && gate.failed.is_none())
        };
        if gate.error.is_none() && !cancelled(&gate, &generation) {
            gate.finish(sink);
        }
        if let Some(e) = gate.error.take() {
            return Err(e);
        }
        if cancelled(&gate, &generation) {
            generation.stop = StopReason::Cancelled;
            generation.text = gate.sent;
            return Ok(CheckedReply {
                generation,
                output: OutputReport::clean(),
            });
        }
        let Some(failed) = gate.failed.take() else {
            generation.text = gate.sent.trim().to_owned();
            let repair = if attempt == 0 {
                Repair::None
            } else {
                Repair::Regenerated
            };
            return Ok(CheckedReply {
                generation,
                output: OutputReport { repair, withheld },
            });
        };
        let avoid = failed.avoid();
        check.withheld(&failed);
        withheld.push(failed);
        if !gate.sent.trim().is_empty() {
            generation.text = gate.sent.trim().to_owned();
            generation.stop = StopReason::Stop;
            return Ok(CheckedReply {
                generation,
                output: OutputReport {
                    repair: Repair::Truncated,
                    withheld,
                },
            });
        }
        // Nothing was said yet: try once more, elsewhere in the distribution and stopping
        // before the words that gave the failed sentence away.
        let sampler = &mut params.to_mut().sampler;
        sampler.seed = sampler.seed.wrapping_add(0x9e37_79b9);
        conversation.to_mut().avoid.extend(avoid);
        spent = generation;
    }
    sink.send(fallback);
    spent.text = fallback.to_owned();
    // The last attempt was stopped at its failed sentence; the turn itself ends normally (a
    // turn left as cancelled is not recorded, and over HTTP answers an error).
    spent.stop = StopReason::Stop;
    // A scripted line carries no mark, and must not claim one.
    spent.watermark = None;
    Ok(CheckedReply {
        generation: spent,
        output: OutputReport {
            repair: Repair::Fallback,
            withheld,
        },
    })
}

/// `count` sampler settings: `base`, then `base` with seeds far apart. All are sampled: a
/// greedy reply would answer more often, but the watermark needs sampling to leave its mark
/// (benchmarks.md, session 34).
fn candidate_samplers(base: &SamplerConfig, count: usize) -> Vec<SamplerConfig> {
    (0..count as u64)
        .map(|i| SamplerConfig {
            seed: base
                .seed
                .wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ..base.clone()
        })
        .collect()
}

/// The reply whose sentences before the first the rails withhold canon bears out best; its
/// costs are those of all of them (they were decoded together). A reply with nothing that
/// passes is chosen only when every reply is so.
fn choose(
    check: &dyn SentenceCheck,
    replies: Vec<Generation>,
    candidates: Candidates<'_>,
) -> Result<Generation, EngineError> {
    let mut best: Option<((bool, f64, bool), Generation)> = None;
    let mut generated = 0;
    for reply in replies {
        generated += reply.generated_tokens;
        if reply.stop == StopReason::Cancelled {
            return Ok(reply);
        }
        let mut probe = SentenceGate::new(check);
        probe.push(&reply.text, &mut |_: &str| true);
        probe.finish(&mut |_: &str| true);
        if let Some(e) = probe.error {
            return Err(e);
        }
        let score = (
            !probe.sent.trim().is_empty(),
            lore_guard::support(&probe.sent, candidates.facts, candidates.line).share(),
            probe.failed.is_none(),
        );
        if best
            .as_ref()
            .is_none_or(|(b, _)| score.partial_cmp(b) == Some(std::cmp::Ordering::Greater))
        {
            best = Some((score, reply));
        }
    }
    let mut best = best
        .map(|(_, reply)| reply)
        .unwrap_or_else(|| Generation::nothing(StopReason::Stop));
    best.generated_tokens = generated;
    Ok(best)
}

/// A [`SentenceCheck`] that gives each sentence's verdict once.
struct Remembered<'a> {
    check: &'a dyn SentenceCheck,
    verdicts: RefCell<HashMap<String, SentenceVerdict>>,
}

impl<'a> Remembered<'a> {
    fn new(check: &'a dyn SentenceCheck) -> Remembered<'a> {
        Remembered {
            check,
            verdicts: RefCell::new(HashMap::new()),
        }
    }
}

impl SentenceCheck for Remembered<'_> {
    fn check(&self, sentence: &str) -> Result<SentenceVerdict, EngineError> {
        if let Some(verdict) = self.verdicts.borrow().get(sentence) {
            return Ok(verdict.clone());
        }
        let verdict = self.check.check(sentence)?;
        self.verdicts
            .borrow_mut()
            .insert(sentence.to_owned(), verdict.clone());
        Ok(verdict)
    }

    fn withheld(&self, verdict: &SentenceVerdict) {
        self.check.withheld(verdict);
    }
}

/// `more` with the costs of the attempts before it added (its first token is the first
/// attempt's).
fn add_costs(total: &Generation, more: Generation) -> Generation {
    Generation {
        prompt_tokens: total.prompt_tokens.max(more.prompt_tokens),
        evaluated_tokens: total.evaluated_tokens + more.evaluated_tokens,
        generated_tokens: total.generated_tokens + more.generated_tokens,
        time_to_first_token: if total.generated_tokens == 0 && total.evaluated_tokens == 0 {
            more.time_to_first_token
        } else {
            total.time_to_first_token
        },
        prompt_time: total.prompt_time + more.prompt_time,
        generation_time: total.generation_time + more.generation_time,
        ..more
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use lore_canon::World;
    use lore_gen::GenError;
    use lore_guard::Problem;

    use super::*;
    use crate::options::SessionOptions;
    use crate::planner::TurnPlanner;

    /// What each call saw: the sampler's seed and the words to avoid.
    type Call = (u64, Vec<String>);

    /// Streams scripted replies, one per call, piece by piece: tests the rail around a model.
    struct Script {
        replies: Vec<Vec<&'static str>>,
        calls: Arc<Mutex<Vec<Call>>>,
    }

    impl Session for Script {
        fn generate(
            &mut self,
            c: &Conversation,
            params: &GenParams,
            on_text: &mut dyn FnMut(&str) -> bool,
        ) -> Result<Generation, GenError> {
            let mut calls = self.calls.lock().unwrap();
            let pieces = &self.replies[calls.len().min(self.replies.len() - 1)];
            calls.push((params.sampler.seed, c.avoid.clone()));
            let mut text = String::new();
            let mut stop = StopReason::Stop;
            for piece in pieces {
                text.push_str(piece);
                if !on_text(piece) {
                    stop = StopReason::Cancelled;
                    break;
                }
            }
            Ok(Generation {
                text,
                prompt_tokens: 10,
                evaluated_tokens: 10,
                generated_tokens: pieces.len(),
                ..Generation::nothing(stop)
            })
        }
    }

    fn planner() -> TurnPlanner {
        let store = lore_canon::CanonStore::in_memory().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.trig");
        std::fs::write(
            &file,
            r#"
            @prefix lore: <https://lorekeeper.dev/ns/lore#> .
            @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
            @prefix : <urn:w:> .
            :g { :p a lore:Production ; rdfs:label "P" ; lore:graph :g ; lore:rating lore:Everyone .
                 :a a lore:Character ; rdfs:label "Ada Quill" ; lore:persona "Ada keeps bees." .
                 :b a lore:Character ; rdfs:label "Bram Stone" ; lore:persona "Bram bakes bread." .
                 :s a lore:Fact ; lore:about :b ; lore:secret true ; lore:knownBy :b ;
                    lore:statement "Bram buried gold under the mill." . }
        "#,
        )
        .unwrap();
        store
            .import(
                &[file],
                lore_canon::CommitMeta::new("test", "import"),
                |_| (),
            )
            .unwrap();
        let world = Arc::new(World::load(&store, "P").unwrap());
        let resolved = world.resolve(&store, "Ada", None).unwrap();
        TurnPlanner::new(world, resolved, SessionOptions::default()).unwrap()
    }

    fn conversation() -> Conversation {
        Conversation {
            character: "Ada Quill".into(),
            player: "Visitor".into(),
            others: Vec::new(),
            avoid: Vec::new(),
            preamble: String::new(),
            turns: Vec::new(),
        }
    }

    fn run(replies: Vec<Vec<&'static str>>) -> (CheckedReply, String, Vec<Call>) {
        run_with(replies, Candidates::one())
    }

    fn run_with(
        replies: Vec<Vec<&'static str>>,
        candidates: Candidates<'_>,
    ) -> (CheckedReply, String, Vec<Call>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut script = Script {
            replies,
            calls: calls.clone(),
        };
        let planner = planner();
        let conversation = conversation();
        let mut heard = String::new();
        let checked = generate_checked(
            &planner,
            &mut script,
            &conversation,
            &GenParams::default(),
            candidates,
            &planner.deflection("What about Bram?"),
            &mut |t: &str| {
                heard.push_str(t);
                true
            },
        )
        .unwrap();
        let calls = calls.lock().unwrap().clone();
        (checked, heard, calls)
    }

    #[test]
    fn a_leaking_sentence_is_never_sent_and_the_reply_ends_before_it() {
        let (checked, heard, calls) = run(vec![vec![
            "Good day",
            " to you. Bram bur",
            "ied gold under the mill!",
            " Anyway, bees.",
        ]]);
        assert_eq!(heard, "Good day to you. ");
        assert_eq!(checked.generation.text, "Good day to you.");
        assert_eq!(checked.output.repair, Repair::Truncated);
        assert_eq!(calls.len(), 1, "no second attempt when something was said");
        let finding = &checked.output.withheld[0].canon[0];
        assert!(
            matches!(&finding.problem, Problem::Leak { fact, .. } if fact == "urn:w:s"),
            "{finding:?}"
        );
    }

    #[test]
    fn a_reply_that_fails_at_once_is_generated_again_with_a_constraint() {
        let (checked, heard, calls) = run(vec![
            vec!["Bram buried the gold, you know. ", "Ha."],
            vec!["Bees are busy today."],
        ]);
        assert_eq!(heard, "Bees are busy today.");
        assert_eq!(checked.output.repair, Repair::Regenerated);
        assert_eq!(
            checked.generation.generated_tokens, 3,
            "both attempts counted"
        );
        assert_eq!(calls.len(), 2);
        assert_ne!(calls[0].0, calls[1].0, "a new seed");
        assert!(calls[1].1.iter().any(|w| w == "gold"), "{:?}", calls[1].1);
    }

    #[test]
    fn of_several_replies_the_one_that_passes_and_says_most_of_canon_is_sent() {
        let candidates = Candidates {
            count: 3,
            facts: &["Ada keeps bees."],
            line: "What do you do all day?",
        };
        let (checked, heard, calls) = run_with(
            vec![
                vec!["I like the weather. ", "It is warm."],
                vec!["Bram buried gold under the mill. ", "I keep bees."],
                vec!["Bees, mostly. ", "I keep them by the hive."],
            ],
            candidates,
        );
        assert_eq!(calls.len(), 3);
        assert_eq!(
            calls.iter().map(|c| c.0).collect::<HashSet<_>>().len(),
            3,
            "three seeds"
        );
        // The second says canon too, but after a sentence the rail withholds.
        assert_eq!(heard, "Bees, mostly. I keep them by the hive.");
        assert_eq!(checked.output.repair, Repair::None);
        assert_eq!(checked.generation.generated_tokens, 6, "all three counted");
    }

    #[test]
    fn when_both_attempts_fail_the_character_deflects() {
        let (checked, heard, _) = run(vec![vec!["Bram buried gold. ", "He did."]]);
        assert_eq!(checked.output.repair, Repair::Fallback);
        assert_eq!(checked.output.withheld.len(), 2);
        assert_eq!(checked.generation.stop, StopReason::Stop);
        assert_eq!(heard, checked.generation.text);
        assert!(!heard.contains("gold"), "{heard}");
    }

    #[test]
    fn a_client_that_leaves_mid_sentence_stops_generation() {
        /// Sends nothing and leaves the first time it is asked whether to go on.
        struct Leaves {
            asked: usize,
        }
        impl TurnSink for Leaves {
            fn send(&mut self, text: &str) -> bool {
                panic!("nothing whole to send yet: {text:?}")
            }
            fn keep_going(&mut self) -> bool {
                self.asked += 1;
                false
            }
        }
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut script = Script {
            replies: vec![vec!["Bees ", "hum ", "all ", "day."]],
            calls,
        };
        let conversation = conversation();
        let mut sink = Leaves { asked: 0 };
        let checked = generate_checked(
            &planner(),
            &mut script,
            &conversation,
            &GenParams::default(),
            Candidates::one(),
            "",
            &mut sink,
        )
        .unwrap();
        assert_eq!(checked.generation.stop, StopReason::Cancelled);
        assert_eq!(sink.asked, 1, "asked after the first piece, then stopped");
    }

    #[test]
    fn clean_replies_pass_whole() {
        let (checked, heard, _) = run(vec![vec!["Bees ", "hum. Bram bakes", " bread at dawn"]]);
        assert_eq!(heard, "Bees hum. Bram bakes bread at dawn");
        assert_eq!(checked.output, OutputReport::clean());
    }

    #[test]
    fn sentences_end_at_stops_followed_by_space() {
        assert_eq!(sentence_end("Aye. Then"), Some(5));
        assert_eq!(sentence_end("Aye."), None, "the next piece may continue it");
        assert_eq!(sentence_end("It cost 3.50 love"), None);
        assert_eq!(sentence_end("\"Go!\" she said"), Some(6));
        assert_eq!(sentence_end("Well…\nso"), Some("Well…\n".len()));
        assert_eq!(sentence_end("no stop yet"), None);
    }

    #[test]
    fn a_whole_text_is_cut_as_a_stream_is() {
        assert_eq!(
            sentences("Aye. It cost 3.50, love!\nWell… no"),
            ["Aye. ", "It cost 3.50, love!\n", "Well… ", "no"]
        );
        assert_eq!(sentences("Done.  "), ["Done. "]);
        assert!(sentences(" \n\n").is_empty());
    }
}
