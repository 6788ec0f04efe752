//! `lore eval output-rail`: what the output rail does to the model's own replies. Every
//! character of every production answers every player line as in a turn (its prompt, stop
//! rules and sampler), and each sentence of the whole reply is judged as the rail judges a
//! streamed one; nothing is withheld, so the sentences the rail would stop can be read. The
//! input rail is not asked: every line is answered, even one it would deflect in play.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use lore_canon::local_name;
use lore_engine::{History, SentenceVerdict, SessionOptions, sentences};
use lore_gen::{GenParams, SamplerConfig};
use serde_json::json;

use crate::chat::{backend, load_semantic};
use crate::config::Config;
use crate::eval::{cast, progress, read_player_lines, verdict_kind};

/// What `lore eval output-rail` runs.
pub struct OutputRailEval {
    /// Only this production's characters.
    pub production: Option<String>,
    /// Only this character.
    pub character: Option<String>,
    /// Player lines, each said to every character.
    pub lines: PathBuf,
    /// TSV file the judged sentences are written to, in `lore eval replies`' format with the
    /// rail's verdict as the kind, for a person to label.
    pub save: Option<PathBuf>,
    /// One JSON object instead of a table.
    pub json: bool,
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

pub fn run(config: &Config, eval: &OutputRailEval) -> anyhow::Result<()> {
    let lines = read_player_lines(&eval.lines)?;
    let options = SessionOptions {
        semantic: Some(Arc::new(load_semantic(config)?)),
        ..SessionOptions::default()
    };
    let planners = cast(
        config,
        &options,
        eval.production.as_deref(),
        eval.character.as_deref(),
    )?;
    let backend = backend(config)?;
    let mut save = eval
        .save
        .as_deref()
        .map(|path| {
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))
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
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let empty = History::default();
    let bar = progress(planners.len() * lines.len(), "generating");
    let (mut replies, mut repaired, mut sentence_count, mut withheld) = (0, 0, 0, 0);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for planner in &planners {
        let mut session = backend.open_session()?;
        let world = planner.world();
        let production = local_name(&world.production.iri);
        let character = local_name(&world.entities[planner.speaker()].iri);
        for (i, line) in lines.iter().enumerate() {
            let (conversation, _) = planner.plan(line, &empty);
            let params = GenParams {
                max_tokens: config.max_tokens,
                sampler: SamplerConfig {
                    seed: config.seed.wrapping_add(i as u64),
                    ..config.sampler()
                },
                stop_rules: true,
                watermark: None,
                structured: None,
            };
            let reply = session.generate(&conversation, &params, &mut |_| true)?;
            replies += 1;
            let mut any_withheld = false;
            for sentence in sentences(&reply.text) {
                let verdict = planner.check_sentence(sentence)?;
                sentence_count += 1;
                if let Some(reason) = reason(&verdict) {
                    withheld += 1;
                    any_withheld = true;
                    *reasons.entry(reason.to_owned()).or_default() += 1;
                }
                if let Some((path, file)) = &mut save {
                    let text = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
                    let kind = verdict_kind(&verdict);
                    writeln!(file, "{production}\t{character}\t-\t{kind}\t{text}")
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
            repaired += usize::from(any_withheld);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if let Some((path, file)) = &mut save {
        file.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let share = |a: usize, n: usize| a as f64 / n.max(1) as f64;
    if eval.json {
        println!(
            "{}",
            json!({"replies": replies, "repaired": share(repaired, replies),
                   "sentences": sentence_count, "withheld": share(withheld, sentence_count),
                   "reasons": reasons})
        );
    } else {
        println!(
            "output rail on the model's replies ({} characters × {} lines)",
            planners.len(),
            lines.len()
        );
        println!(
            "replies it would repair: {repaired} of {replies} ({:.1}%)   sentences withheld: {withheld} of {sentence_count} ({:.1}%)",
            100.0 * share(repaired, replies),
            100.0 * share(withheld, sentence_count)
        );
        for (reason, n) in &reasons {
            println!("  {reason:<32} {n:>4}");
        }
    }
    Ok(())
}
