//! `lore eval` and `lore train guard`: the evaluations of `lore-eval`, with progress on the
//! terminal and their reports on stdout (a table, or one JSON object with `--json`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lore_engine::{LikenessScope, SessionOptions};
use lore_eval::{
    EvalError, Progress, Stage, cast, grounding, guard, output_rail, read_player_lines, replies,
    topics, watermark,
};
use lore_gen::{EmbeddedConfig, GenParams};

use crate::config::Config;
use crate::wiring::{backend, load_semantic, open_store, session_options};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Whether characters answer canon questions from canon: every question of a set asked as
    /// a player would (whole turns on the configured model, watermarked as in play), the reply
    /// read for the answer and, where the character cannot know it, for a leak.
    Grounding(GroundingArgs),
    /// The rails on the OpenAI moderation set and XSTest, cross-validated: no prompt is judged
    /// by a head that was trained on it.
    Guard(GuardArgs),
    /// The off-limit-topics set of a world: every line under every character of every
    /// production, and under each rating tier.
    Topics(TopicsArgs),
    /// The watermark: detection in the embedded model's replies (clean, edited, pasted into
    /// human text), false positives on human text, and the perplexity it costs.
    Watermark(WatermarkArgs),
    /// The output rail on the model's own replies: every character of every production
    /// answers every player line (unwatermarked, nothing withheld), and each sentence is
    /// judged as the rail judges a streamed one.
    OutputRail(OutputRailArgs),
    /// The output rail (the policy and the canon check) on a labelled set of reply sentences:
    /// off-limit talk, leaks, the dead spoken of as alive, wrong family ties, invented places,
    /// and sentences that are fine.
    Replies(RepliesArgs),
}

/// `lore eval grounding`.
#[derive(Args)]
pub struct GroundingArgs {
    /// The set (TSV: production, character, beat, expect, facts, answer, before, line; the
    /// set's header says how each reads).
    #[arg(long, value_name = "FILE", default_value = "world/eval/grounding.tsv")]
    pub set: PathBuf,
    /// The audience's territory (ISO 3166-1 alpha-2), for performers' likeness consent.
    #[arg(long, value_name = "CODE")]
    pub territory: Option<String>,
    /// Replies without the watermark, to measure what it costs.
    #[arg(long)]
    pub no_watermark: bool,
    #[command(flatten)]
    pub generation: crate::GenArgs,
    /// One JSON object (with every reply) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `lore eval guard`.
#[derive(Args)]
pub struct GuardArgs {
    /// The moderation set (JSON lines: prompt and 0/1 labels).
    #[arg(long, value_name = "FILE")]
    pub moderation: PathBuf,
    /// XSTest (CSV: prompt, label safe/unsafe).
    #[arg(long, value_name = "FILE")]
    pub xstest: PathBuf,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `lore eval topics`.
#[derive(Args)]
pub struct TopicsArgs {
    /// The set (TSV: policy node or `-`, tab, text).
    #[arg(long, value_name = "FILE", default_value = "world/eval/topics.tsv")]
    pub set: PathBuf,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `lore eval watermark`.
#[derive(Args)]
pub struct WatermarkArgs {
    /// Watermarked replies to generate.
    #[arg(long, default_value_t = 500)]
    pub replies: usize,
    /// Tokens per reply (and per human passage).
    #[arg(long, default_value_t = 200)]
    pub tokens: usize,
    /// Replies also generated unwatermarked, to compare perplexity.
    #[arg(long, default_value_t = 100)]
    pub perplexity_pairs: usize,
    /// Player lines (one per line; `#` comments).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "world/eval/watermark-prompts.txt"
    )]
    pub prompts: PathBuf,
    /// The human corpora (default: $cache/corpora, where scripts/fetch-corpus.sh puts them).
    #[arg(long, value_name = "DIR")]
    pub corpora: Option<PathBuf>,
    /// Green share of the evaluation's key.
    #[arg(long, default_value_t = lore_mark::Watermark::DEFAULT_GAMMA)]
    pub gamma: f64,
    /// Green bias of the evaluation's key.
    #[arg(long, default_value_t = lore_mark::Watermark::DEFAULT_DELTA)]
    pub delta: f32,
    /// Spike threshold of the evaluation's key.
    #[arg(long, default_value_t = lore_mark::Watermark::DEFAULT_SPIKE)]
    pub spike: f32,
    /// Append each generated reply to this JSON Lines file as it is made, so that a
    /// detector can be measured again on the same replies (`--replies-from`).
    #[arg(long, value_name = "FILE", conflicts_with = "replies_from")]
    pub save_replies: Option<PathBuf>,
    /// Score the replies a `--save-replies` run wrote instead of generating (no model
    /// needed; no perplexity). They must have been made with the same key settings.
    #[arg(long, value_name = "FILE")]
    pub replies_from: Option<PathBuf>,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `lore eval output-rail`.
#[derive(Args)]
pub struct OutputRailArgs {
    /// Only this production's characters.
    #[arg(short, long)]
    pub production: Option<String>,
    /// Only this character.
    #[arg(short, long)]
    pub character: Option<String>,
    /// Player lines (one per line; `#` comments).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "world/eval/watermark-prompts.txt"
    )]
    pub lines: PathBuf,
    /// Write every sentence with the rail's verdict to this TSV file, in the format of
    /// `lore eval replies --set`, for a person to label.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `lore eval replies`.
#[derive(Args)]
pub struct RepliesArgs {
    /// The set (TSV: production, character, beat or `-`, expected kind, sentence).
    #[arg(long, value_name = "FILE", default_value = "world/eval/replies.tsv")]
    pub set: PathBuf,
    /// Without the embedding layer: the rules over words alone.
    #[arg(long)]
    pub lexical: bool,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Train the hazard head on both sets (all of them) and write it as JSON.
    Guard {
        /// The moderation set.
        #[arg(long, value_name = "FILE")]
        moderation: PathBuf,
        /// XSTest.
        #[arg(long, value_name = "FILE")]
        xstest: PathBuf,
        /// Where to write the head (the bundled one is crates/guard/hazard-head.json).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Progress bars on the terminal, one per stage of an evaluation.
pub(crate) struct Bars;

/// A bar cleared when its stage ends.
struct Bar(ProgressBar);

impl Progress for Bars {
    fn stage(&self, what: &str, len: usize) -> Box<dyn Stage + '_> {
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_owned());
        Box::new(Bar(bar))
    }
}

impl Stage for Bar {
    fn step(&self) {
        self.0.inc(1);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Prints a report: its JSON object, or its table.
fn print(json: bool, object: serde_json::Value, table: &dyn std::fmt::Display) {
    if json {
        println!("{object}");
    } else {
        print!("{table}");
    }
}

pub fn eval(config: &Config, what: EvalCommand) -> anyhow::Result<()> {
    match what {
        EvalCommand::Grounding(args) => eval_grounding(config, args),
        EvalCommand::Guard(args) => eval_guard(config, args),
        EvalCommand::Topics(args) => eval_topics(config, args),
        EvalCommand::Replies(args) => eval_replies(config, args),
        EvalCommand::OutputRail(args) => eval_output_rail(config, args),
        EvalCommand::Watermark(args) => eval_watermark(config, args),
    }
}

fn eval_grounding(config: &Config, args: GroundingArgs) -> anyhow::Result<()> {
    let GroundingArgs {
        set,
        territory,
        no_watermark,
        generation,
        json,
    } = args;

    let mut config = config.clone();
    generation.apply(&mut config);
    let mut options = session_options(&config)?;
    if no_watermark {
        options.generation.watermark = None;
    }
    let report = grounding::evaluate(
        &open_store(&config)?,
        backend(&config)?.as_ref(),
        &options,
        &LikenessScope::new([], territory),
        &set,
        &Bars,
    )?;
    if !json {
        for miss in report.misses() {
            eprintln!("{miss}");
        }
    }
    print(json, report.to_json(), &report);
    Ok(())
}

fn eval_guard(config: &Config, args: GuardArgs) -> anyhow::Result<()> {
    let GuardArgs {
        moderation,
        xstest,
        folds,
        json,
    } = args;

    let policy = guard::studio_policy(&open_store(config)?)?;
    let semantic = load_semantic(config)?;
    let report = guard::evaluate(&policy, &semantic, &moderation, &xstest, folds, &Bars)?;
    print(json, report.to_json(), &report);
    Ok(())
}

fn eval_topics(config: &Config, args: TopicsArgs) -> anyhow::Result<()> {
    let TopicsArgs { set, json } = args;

    let semantic = Arc::new(load_semantic(config)?);
    let report = topics::evaluate(&open_store(config)?, &semantic, &set, &Bars)?;
    print(json, report.to_json(), &report);
    if !json {
        for line in &report.near_copies {
            eprintln!("{line}");
        }
        for (count, first) in &report.misses {
            eprintln!(
                "{first}, wrong in {count} of {} contexts",
                report.contexts.len()
            );
        }
    }
    Ok(())
}

fn eval_replies(config: &Config, args: RepliesArgs) -> anyhow::Result<()> {
    let RepliesArgs { set, lexical, json } = args;

    let semantic = if lexical {
        None
    } else {
        Some(Arc::new(load_semantic(config)?))
    };
    let report = replies::evaluate(&open_store(config)?, semantic, &set, &Bars)?;
    if !json {
        for miss in &report.misses {
            eprintln!("{miss}");
        }
    }
    print(json, report.to_json(), &report);
    Ok(())
}

fn eval_output_rail(config: &Config, args: OutputRailArgs) -> anyhow::Result<()> {
    let OutputRailArgs {
        production,
        character,
        lines,
        save,
        json,
    } = args;

    let lines = read_player_lines(&lines)?;
    let options = SessionOptions {
        semantic: Some(Arc::new(load_semantic(config)?)),
        ..SessionOptions::default()
    };
    let planners = cast(
        &open_store(config)?,
        &options,
        production.as_deref(),
        character.as_deref(),
    )?;
    let params = GenParams {
        max_tokens: config.max_tokens,
        sampler: config.sampler(),
        ..GenParams::default()
    };
    let report = output_rail::evaluate(
        &planners,
        backend(config)?.as_ref(),
        &lines,
        &params,
        save.as_deref(),
        &Bars,
    )?;
    print(json, report.to_json(), &report);
    Ok(())
}

fn eval_watermark(config: &Config, args: WatermarkArgs) -> anyhow::Result<()> {
    let WatermarkArgs {
        replies,
        tokens,
        perplexity_pairs,
        prompts,
        corpora,
        gamma,
        delta,
        spike,
        save_replies,
        replies_from,
        json,
    } = args;

    let mut model = EmbeddedConfig::new(config.model.clone());
    model.threads = config.threads;
    model.n_ctx = config.n_ctx;
    let eval = watermark::WatermarkEval {
        model,
        sampler: config.sampler(),
        speakers: Box::new(|| {
            Ok(watermark::Speakers {
                planners: cast(
                    &open_store(config).map_err(|e| EvalError::Invalid(format!("{e:#}")))?,
                    &SessionOptions::default(),
                    None,
                    None,
                )?,
                lines: read_player_lines(&prompts)?,
            })
        }),
        replies,
        tokens,
        perplexity_pairs,
        corpora: corpora.unwrap_or_else(|| config.cache.join("corpora")),
        gamma,
        delta,
        spike,
        save_replies,
        replies_from,
    };
    let report = watermark::evaluate(&eval, &Bars)?;
    print(json, report.0.clone(), &report);
    Ok(())
}

pub fn train(config: &Config, what: TrainCommand) -> anyhow::Result<()> {
    let TrainCommand::Guard {
        moderation,
        xstest,
        out,
    } = what;
    let semantic = load_semantic(config)?;
    let (head, prompts) = guard::train(&semantic, &moderation, &xstest, &Bars)?;
    std::fs::write(&out, serde_json::to_string_pretty(&head)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} (threshold {:.3}, trained on {prompts} prompts)",
        out.display(),
        head.threshold
    );
    Ok(())
}
