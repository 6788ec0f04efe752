//! `lore eval grounding`: whether characters answer simple canon questions from canon. Each
//! row of a set is a whole turn as a player meets it (the input rail, retrieval, generation
//! through the output rail), after an optional earlier line played the same way; the reply is
//! then read for the words that state the answering fact. Rows whose right reply withholds the
//! fact (the character cannot know it at that beat, or keeps it secret) count as leaks when the
//! reply states it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lore_canon::{CanonStore, World};
use lore_engine::{CharacterSession, LikenessScope, Repair, SessionOptions, TurnOutcome};
use lore_gen::Backend;
use serde_json::json;

use crate::error::EvalError;
use crate::progress::Progress;
use crate::sets::{Prefixes, data_lines, p50_p99, rate};

/// The columns of a grounding set, in order.
const COLUMNS: &str =
    "production<TAB>character<TAB>beat<TAB>expect<TAB>facts<TAB>answer<TAB>before<TAB>line";

/// One row of a grounding set.
struct Question {
    line: usize,
    production: String,
    character: String,
    beat: Option<String>,
    /// Whether the right reply states the answer (else the character cannot know it at this
    /// beat, or keeps it secret).
    states: bool,
    /// IRIs of the facts that answer it.
    facts: Vec<String>,
    answer: Answer,
    /// A line the player says first, when the question follows up on it.
    before: Option<String>,
    question: String,
}

/// The words a reply must contain to state a fact: every group, each by one of its
/// alternatives, matched from the start of a word and ignoring case (`warden` matches
/// "Warden's").
#[derive(Debug, Clone, PartialEq)]
struct Answer(Vec<Vec<String>>);

impl Answer {
    /// Reads `group; group` where a group is `word|other words`.
    fn parse(text: &str) -> Result<Answer, String> {
        let groups: Vec<Vec<String>> = text
            .split(';')
            .map(|group| {
                group
                    .split('|')
                    .map(|alt| normalize(alt.trim()))
                    .filter(|alt| !alt.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        if groups.iter().any(Vec::is_empty) {
            return Err(format!(
                "answer {text:?} has an empty group; expected `word|alternative; next group`"
            ));
        }
        Ok(Answer(groups))
    }

    fn stated_in(&self, reply: &str) -> bool {
        let reply = normalize(reply);
        self.0
            .iter()
            .all(|group| group.iter().any(|alt| starts_a_word(&reply, alt)))
    }
}

/// Lower case, with typographic apostrophes made plain.
fn normalize(text: &str) -> String {
    text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'")
}

fn starts_a_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

/// Whether a reply speaks only as its character: no line or sentence opens with a speaker's
/// name and a colon (the model writing the player's part, or another character's).
fn in_voice(reply: &str) -> bool {
    let speaker_tag = |piece: &str| {
        let piece = piece.trim_start_matches(|c: char| !c.is_alphanumeric());
        piece.split_once(':').is_some_and(|(name, _)| {
            let words = name.split_whitespace().count();
            (1..=3).contains(&words)
                && name.chars().next().is_some_and(char::is_uppercase)
                && name
                    .chars()
                    .all(|c| c.is_alphabetic() || c == ' ' || c == '\'')
        })
    };
    !reply.trim().is_empty() && !reply.split(['\n', '.', '!', '?']).any(speaker_tag)
}

fn read_questions(path: &Path) -> Result<Vec<Question>, EvalError> {
    let mut prefixes = Prefixes::new();
    let mut out = Vec::new();
    for (n, line) in data_lines(path)? {
        if let Some(declared) = prefixes.declare(&line) {
            declared.map_err(|message| EvalError::set(path, n, message))?;
            continue;
        }
        let bad = |message: String| EvalError::set(path, n, message);
        let fields: Vec<&str> = line.split('\t').collect();
        let [
            production,
            character,
            beat,
            expect,
            facts,
            answer,
            before,
            question,
        ] = fields.as_slice()
        else {
            return Err(bad(format!(
                "expected 8 columns `{COLUMNS}`, found {}",
                fields.len()
            )));
        };
        let states = match *expect {
            "states" => true,
            "withholds" => false,
            other => {
                return Err(bad(format!(
                    "expect is {other:?}; expected states or withholds"
                )));
            }
        };
        let facts = facts
            .split(',')
            .map(|name| prefixes.expand(name.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let question = question.trim();
        if question.is_empty() {
            return Err(bad("the player's line is empty".into()));
        }
        out.push(Question {
            line: n,
            production: (*production).to_owned(),
            character: (*character).to_owned(),
            beat: (*beat != "-").then(|| (*beat).to_owned()),
            states,
            facts,
            answer: Answer::parse(answer).map_err(bad)?,
            before: (*before != "-").then(|| (*before).to_owned()),
            question: question.to_owned(),
        });
    }
    if out.is_empty() {
        return Err(EvalError::set(path, 0, "no questions"));
    }
    Ok(out)
}

/// What happened to one question.
#[derive(Debug, Clone)]
pub struct Answered {
    /// Where the question is: `set:line`.
    pub place: String,
    /// The production, character and beat it was asked of.
    pub speaker: String,
    /// The player's line.
    pub question: String,
    /// Whether the right reply states the answer.
    pub states: bool,
    /// The reply the player got.
    pub reply: String,
    /// Every answering fact was in the prompt.
    pub in_prompt: bool,
    /// The reply states the answer.
    pub answered: bool,
    /// The input rail answered instead of the model.
    pub blocked: bool,
    /// How the output rail changed the reply.
    pub repair: Repair,
    /// One speaker, nothing said for the player.
    pub in_voice: bool,
}

impl Answered {
    /// Neither blocked nor cut, regenerated or deflected by the output rail.
    pub fn kept(&self) -> bool {
        !self.blocked && self.repair == Repair::None
    }

    /// The reply stated what the character cannot know or keeps secret.
    pub fn leaked(&self) -> bool {
        !self.states && self.answered
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"place": self.place, "speaker": self.speaker, "question": self.question,
               "states": self.states, "reply": self.reply, "in_prompt": self.in_prompt,
               "answered": self.answered, "kept": self.kept(), "blocked": self.blocked,
               "repair": self.repair.name(), "in_voice": self.in_voice,
               "leaked": self.leaked()})
    }
}

/// What `lore eval grounding` measured.
#[derive(Debug, Clone)]
pub struct GroundingReport {
    /// Every question, in the set's order.
    pub rows: Vec<Answered>,
    /// Whether replies were watermarked, as in play.
    pub watermark: bool,
    /// Median time of a turn, in milliseconds.
    pub p50_ms: f64,
    /// Its 99th percentile.
    pub p99_ms: f64,
}

/// Counts over the rows whose right reply states the answer.
struct Tally {
    n: usize,
    in_prompt: usize,
    answered: usize,
    kept: usize,
    in_voice: usize,
}

impl GroundingReport {
    fn known(&self) -> Tally {
        let rows: Vec<&Answered> = self.rows.iter().filter(|r| r.states).collect();
        let count = |f: fn(&Answered) -> bool| rows.iter().filter(|r| f(r)).count();
        Tally {
            n: rows.len(),
            in_prompt: count(|r| r.in_prompt),
            answered: count(|r| r.answered),
            kept: count(Answered::kept),
            in_voice: count(|r| r.in_voice),
        }
    }

    /// Questions whose right reply withholds the answer, and of those the replies that state
    /// it anyway.
    pub fn leaks(&self) -> (usize, usize) {
        let unknowable = self.rows.iter().filter(|r| !r.states);
        (
            unknowable.clone().count(),
            unknowable.filter(|r| r.leaked()).count(),
        )
    }

    /// The report as one JSON object, every row included.
    pub fn to_json(&self) -> serde_json::Value {
        let t = self.known();
        let (unknowable, leaked) = self.leaks();
        json!({"questions": t.n, "in_prompt": rate(t.in_prompt, t.n),
               "answered": rate(t.answered, t.n), "kept": rate(t.kept, t.n),
               "in_voice": rate(t.in_voice, t.n),
               "unknowable": {"n": unknowable, "leaked": leaked},
               "watermark": self.watermark,
               "turn_ms": {"p50": self.p50_ms, "p99": self.p99_ms},
               "rows": self.rows.iter().map(Answered::to_json).collect::<Vec<_>>()})
    }

    /// One line per question answered wrongly, for a person to read.
    pub fn misses(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.leaked() || (r.states && !(r.answered && r.kept() && r.in_voice)))
            .map(|r| {
                let mut why = Vec::new();
                if r.leaked() {
                    why.push("leaked".to_owned());
                }
                if r.states && !r.in_prompt {
                    why.push("fact not in the prompt".into());
                }
                if r.states && !r.answered {
                    why.push("not answered".into());
                }
                if r.blocked {
                    why.push("blocked by the input rail".into());
                } else if r.repair != Repair::None {
                    why.push(format!("output rail: {}", r.repair.name()));
                }
                if !r.in_voice {
                    why.push("not in voice".into());
                }
                format!(
                    "{} {}: {} ({:?} -> {:?})",
                    r.place,
                    r.speaker,
                    why.join(", "),
                    r.question,
                    r.reply
                )
            })
            .collect()
    }
}

impl fmt::Display for GroundingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.known();
        let (unknowable, leaked) = self.leaks();
        writeln!(
            f,
            "grounding: {} questions to answer, {unknowable} to withhold (watermark {})",
            t.n,
            if self.watermark { "on" } else { "off" }
        )?;
        for (what, count) in [
            ("answering fact in the prompt", t.in_prompt),
            ("answered", t.answered),
            ("kept whole by the rails", t.kept),
            ("in voice", t.in_voice),
        ] {
            let pct = 100.0 * rate(count, t.n);
            writeln!(f, "  {what:<29} {count:>4} ({pct:.1}%)")?;
        }
        writeln!(f, "  leaked (of {unknowable} to withhold)     {leaked:>4}")?;
        writeln!(
            f,
            "turn time: p50 {:.0} ms  p99 {:.0} ms",
            self.p50_ms, self.p99_ms
        )
    }
}

/// Asks every question of `set` as a player would, through `backend` with `options` (their
/// watermark included, as in play), for an audience that `likeness` describes.
pub fn evaluate(
    store: &CanonStore,
    backend: &dyn Backend,
    options: &SessionOptions,
    likeness: &LikenessScope,
    set: &Path,
    progress: &dyn Progress,
) -> Result<GroundingReport, EvalError> {
    let questions = read_questions(set)?;
    let mut worlds: HashMap<String, Arc<World>> = HashMap::new();
    let bar = progress.stage("asking", questions.len());
    let mut rows = Vec::with_capacity(questions.len());
    let mut times = Vec::with_capacity(questions.len());
    for q in &questions {
        let at = |e: EvalError| e.at(set, q.line);
        if !worlds.contains_key(&q.production) {
            let world = World::load(store, &q.production).map_err(|e| at(e.into()))?;
            worlds.insert(q.production.clone(), Arc::new(world));
        }
        let world = worlds[&q.production].clone();
        let resolved = world
            .resolve(store, &q.character, q.beat.as_deref())
            .map_err(|e| at(e.into()))?;
        let mut session =
            CharacterSession::open(world, resolved, backend, options.clone(), likeness.clone())
                .map_err(|e| at(e.into()))?;
        let mut ignore = |_: &str| true;
        if let Some(before) = &q.before {
            session
                .turn(before, &mut ignore)
                .map_err(|e| at(e.into()))?;
        }
        let started = Instant::now();
        let outcome = session
            .turn(&q.question, &mut ignore)
            .map_err(|e| at(e.into()))?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        rows.push(judge(set, q, &outcome));
        bar.step();
    }
    drop(bar);
    let (p50_ms, p99_ms) = p50_p99(&mut times);
    Ok(GroundingReport {
        rows,
        watermark: options.generation.watermark.is_some(),
        p50_ms,
        p99_ms,
    })
}

fn judge(set: &Path, q: &Question, outcome: &TurnOutcome) -> Answered {
    Answered {
        place: format!("{}:{}", set.display(), q.line),
        speaker: format!(
            "{} / {} at {}",
            q.production,
            q.character,
            q.beat.as_deref().unwrap_or("-")
        ),
        question: q.question.clone(),
        states: q.states,
        reply: outcome.reply.clone(),
        in_prompt: q.facts.iter().all(|f| outcome.facts_used.contains(f)),
        answered: q.answer.stated_in(&outcome.reply),
        blocked: outcome.blocked(),
        repair: outcome.output.repair,
        in_voice: in_voice(&outcome.reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_needs_every_group_from_the_start_of_a_word() {
        let answer = Answer::parse("warden; watch|harbour").unwrap();
        assert!(answer.stated_in("I'm the Warden of the Harbour, love."));
        assert!(answer.stated_in("The Watch answers to me, the warden\u{2019}s word."));
        assert!(!answer.stated_in("I'm the Warden, love."));
        assert!(!answer.stated_in("The rewardens of the Harbour."));
        assert!(Answer::parse("warden; ").is_err());
    }

    #[test]
    fn a_reply_that_speaks_for_someone_else_is_not_in_voice() {
        assert!(in_voice(
            "Mind the ropes, love. It's a cold night: stay close."
        ));
        assert!(!in_voice("Mind the ropes.\nPlayer: What ropes?"));
        assert!(!in_voice("Mind the ropes. Pip Tallow: Blimey!"));
        assert!(!in_voice("  "));
    }

    #[test]
    fn a_malformed_row_is_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.tsv");
        std::fs::write(
            &path,
            "@prefix bm: <https://example.org/bm#> .\n\
             lanterns\todile\t2\tstates\tbm:fact-a\twarden\t-\tWho are you?\n\
             lanterns\todile\t2\tmaybe\tbm:fact-a\twarden\t-\tWho are you?\n",
        )
        .unwrap();
        let err = read_questions(&path).err().unwrap().to_string();
        assert!(
            err.ends_with("set.tsv:3: expect is \"maybe\"; expected states or withholds"),
            "{err}"
        );
        std::fs::write(
            &path,
            "lanterns\todile\t2\tstates\tzz:fact\twarden\t-\tWho?\n",
        )
        .unwrap();
        let err = read_questions(&path).err().unwrap().to_string();
        assert!(err.contains("set.tsv:1: \"zz:fact\" is neither"), "{err}");
    }
}
