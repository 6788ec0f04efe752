//! `lore eval output-rail`: what the output rail does to the model's own replies. Every
//! character answers every player line as in a turn (its prompt, stop rules and sampler), and
//! each sentence of the whole reply is judged as the rail judges a streamed one; nothing is
//! withheld, so the sentences the rail would stop can be read. The input rail is not asked:
//! every line is answered, even one it would deflect in play.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

use lore_canon::local_name;
use lore_engine::{History, SentenceVerdict, TurnPlanner, sentences};
use lore_gen::{Backend, GenParams, SamplerConfig};
use serde_json::json;

use crate::error::EvalError;
use crate::progress::Progress;
use crate::sets::verdict_kind;

/// What `lore eval output-rail` measured.
#[derive(Debug, Clone)]
pub struct OutputRailReport {
    /// Characters that answered.
    pub characters: usize,
    /// Player lines each answered.
    pub lines: usize,
    /// Replies generated.
    pub replies: usize,
    /// Of those, replies with a sentence the rail would withhold.
    pub repaired: usize,
    /// Sentences judged.
    pub sentences: usize,
    /// Of those, withheld.
    pub withheld: usize,
    /// Withheld sentences by reason: the policy node, or the canon check's problem.
    pub reasons: BTreeMap<String, usize>,
}

impl OutputRailReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"replies": self.replies, "repaired": share(self.repaired, self.replies),
               "sentences": self.sentences, "withheld": share(self.withheld, self.sentences),
               "reasons": self.reasons})
    }
}

impl fmt::Display for OutputRailReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "output rail on the model's replies ({} characters × {} lines)",
            self.characters, self.lines
        )?;
        writeln!(
            f,
            "replies it would repair: {} of {} ({:.1}%)   sentences withheld: {} of {} ({:.1}%)",
            self.repaired,
            self.replies,
            100.0 * share(self.repaired, self.replies),
            self.withheld,
            self.sentences,
            100.0 * share(self.withheld, self.sentences)
        )?;
        for (reason, n) in &self.reasons {
            writeln!(f, "  {reason:<32} {n:>4}")?;
        }
        Ok(())
    }
}

fn share(part: usize, whole: usize) -> f64 {
    part as f64 / whole.max(1) as f64
}

/// Why the rail would withhold a sentence, for the tally: the policy's first node, or the
/// canon check's first finding (none when it passes).
fn reason(verdict: &SentenceVerdict) -> Option<&str> {
    match (verdict.policy.fired.first(), verdict.canon.first()) {
        (Some(fired), _) => Some(&fired.label),
        (None, Some(finding)) => Some(finding.problem.kind()),
        (None, None) => None,
    }
}

/// Has every planner's character answer every line through `backend`, with `params` (their
/// seed advanced by the line's index, no watermark), and judges each sentence. With `save`,
/// every sentence is written to that TSV file in `lore eval replies`' format, the rail's
/// verdict as its kind, for a person to label.
pub fn evaluate(
    planners: &[TurnPlanner],
    backend: &dyn Backend,
    lines: &[String],
    params: &GenParams,
    save: Option<&Path>,
    progress: &dyn Progress,
) -> Result<OutputRailReport, EvalError> {
    let mut save = save
        .map(|path| {
            std::fs::File::create(path)
                .map_err(EvalError::io(path))
                .map(|file| (path, std::io::BufWriter::new(file)))
        })
        .transpose()?;
    if let Some((path, file)) = &mut save {
        writeln!(
            file,
            "# The model's replies judged by the output rail (`lore eval output-rail`); the kind \
             is the rail's verdict, to be checked by a person.\n\
             # production\tcharacter\tbeat\tkind\tsentence"
        )
        .map_err(EvalError::io(*path))?;
    }
    let empty = History::default();
    let bar = progress.stage("generating", planners.len() * lines.len());
    let mut report = OutputRailReport {
        characters: planners.len(),
        lines: lines.len(),
        replies: 0,
        repaired: 0,
        sentences: 0,
        withheld: 0,
        reasons: BTreeMap::new(),
    };
    for planner in planners {
        let mut session = backend.open_session()?;
        let world = planner.world();
        let production = local_name(&world.production.iri);
        let character = local_name(&world.entities[planner.speaker()].iri);
        for (i, line) in lines.iter().enumerate() {
            let (conversation, _) = planner.plan(line, &empty);
            let params = GenParams {
                sampler: SamplerConfig {
                    seed: params.sampler.seed.wrapping_add(i as u64),
                    ..params.sampler.clone()
                },
                stop_rules: true,
                watermark: None,
                structured: None,
                ..params.clone()
            };
            let reply = session.generate(&conversation, &params, &mut |_| true)?;
            report.replies += 1;
            let mut any_withheld = false;
            for sentence in sentences(&reply.text) {
                let verdict = planner.check_sentence(sentence)?;
                report.sentences += 1;
                if let Some(reason) = reason(&verdict) {
                    report.withheld += 1;
                    any_withheld = true;
                    *report.reasons.entry(reason.to_owned()).or_default() += 1;
                }
                if let Some((path, file)) = &mut save {
                    let text = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
                    let kind = verdict_kind(&verdict);
                    writeln!(file, "{production}\t{character}\t-\t{kind}\t{text}")
                        .map_err(EvalError::io(*path))?;
                }
            }
            report.repaired += usize::from(any_withheld);
            bar.step();
        }
    }
    drop(bar);
    if let Some((path, file)) = &mut save {
        file.flush().map_err(EvalError::io(*path))?;
    }
    Ok(report)
}
