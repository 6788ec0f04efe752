//! `lore eval guard`, `lore eval topics`, `lore eval replies` and `lore train guard`: the rails
//! measured on labelled sets, and the hazard head trained, with progress on the terminal and
//! numbers on stdout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use lore_canon::policy::Policy;
use lore_canon::{EntityKind, World};
use lore_engine::{SentenceVerdict, SessionOptions, TurnPlanner};
use lore_guard::eval::{self, BinaryMetrics, Judged, Labelled, Source};
use lore_guard::head::{Example, Fit, Head};
use lore_guard::normalize::views;
use lore_guard::semantic::{Embedded, cosine};
use lore_guard::{Action, Audience, HazardHead, Rail, Rails, Semantic};
use serde_json::json;

use crate::chat::load_semantic;
use crate::config::Config;
use crate::query::open_store;

#[derive(Subcommand)]
pub enum EvalCommand {
    /// The rails on the OpenAI moderation set and XSTest, cross-validated: no prompt is judged
    /// by a head that was trained on it.
    Guard {
        /// The moderation set (JSON lines: prompt and 0/1 labels).
        #[arg(long, value_name = "FILE")]
        moderation: PathBuf,
        /// XSTest (CSV: prompt, label safe/unsafe).
        #[arg(long, value_name = "FILE")]
        xstest: PathBuf,
        /// Cross-validation folds.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The off-limit-topics set of a world: every line under every character of every
    /// production, and under each rating tier.
    Topics {
        /// The set (TSV: policy node or `-`, tab, text).
        #[arg(long, value_name = "FILE", default_value = "world/eval/topics.tsv")]
        set: PathBuf,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The watermark: detection in the embedded model's replies (clean, edited, pasted into
    /// human text), false positives on human text, and the perplexity it costs.
    Watermark {
        /// Watermarked replies to generate.
        #[arg(long, default_value_t = 500)]
        replies: usize,
        /// Tokens per reply (and per human passage).
        #[arg(long, default_value_t = 200)]
        tokens: usize,
        /// Replies also generated unwatermarked, to compare perplexity.
        #[arg(long, default_value_t = 100)]
        perplexity_pairs: usize,
        /// Player lines (one per line; `#` comments).
        #[arg(
            long,
            value_name = "FILE",
            default_value = "world/eval/watermark-prompts.txt"
        )]
        prompts: PathBuf,
        /// The human corpora (default: $cache/corpora, where scripts/fetch-corpus.sh puts them).
        #[arg(long, value_name = "DIR")]
        corpora: Option<PathBuf>,
        /// Green share of the evaluation's key.
        #[arg(long, default_value_t = lore_mark::Watermark::DEFAULT_GAMMA)]
        gamma: f64,
        /// Green bias of the evaluation's key.
        #[arg(long, default_value_t = lore_mark::Watermark::DEFAULT_DELTA)]
        delta: f32,
        /// Spike threshold of the evaluation's key.
        #[arg(long, default_value_t = lore_mark::Watermark::DEFAULT_SPIKE)]
        spike: f32,
        /// Append each generated reply to this JSON Lines file as it is made, so that a
        /// detector can be measured again on the same replies (`--replies-from`).
        #[arg(long, value_name = "FILE", conflicts_with = "replies_from")]
        save_replies: Option<PathBuf>,
        /// Score the replies a `--save-replies` run wrote instead of generating (no model
        /// needed; no perplexity). They must have been made with the same key settings.
        #[arg(long, value_name = "FILE")]
        replies_from: Option<PathBuf>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The output rail on the model's own replies: every character of every production
    /// answers every player line (unwatermarked, nothing withheld), and each sentence is
    /// judged as the rail judges a streamed one.
    OutputRail {
        /// Only this production's characters.
        #[arg(short, long)]
        production: Option<String>,
        /// Only this character.
        #[arg(short, long)]
        character: Option<String>,
        /// Player lines (one per line; `#` comments).
        #[arg(
            long,
            value_name = "FILE",
            default_value = "world/eval/watermark-prompts.txt"
        )]
        lines: PathBuf,
        /// Write every sentence with the rail's verdict to this TSV file, in the format of
        /// `lore eval replies --set`, for a person to label.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The output rail (the policy and the canon check) on a labelled set of reply sentences:
    /// off-limit talk, leaks, the dead spoken of as alive, wrong family ties, invented places,
    /// and sentences that are fine.
    Replies {
        /// The set (TSV: production, character, beat or `-`, expected kind, sentence).
        #[arg(long, value_name = "FILE", default_value = "world/eval/replies.tsv")]
        set: PathBuf,
        /// Without the embedding layer: the rules over words alone.
        #[arg(long)]
        lexical: bool,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
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

/// How much each of XSTest's safe prompts counts in fitting the head against an ordinary
/// safe prompt. They are few (118 against ~580 safe moderation prompts) and share their words
/// with harm ("kill a process"), so unweighted they barely move the boundary and the
/// over-refusal budget then forces a high threshold that costs recall. Chosen by cross-
/// validation on the development sets (5, 10, 20, 40 tried; see docs/benchmarks.md).
const SAFE_LOOKALIKE_WEIGHT: f32 = 10.0;

/// The most over-refusal on XSTest's safe prompts a threshold may cost, measured on held-out
/// training prompts; below the 4% goal, leaving room for the lexicon's own false alarms.
const OVER_REFUSAL_BUDGET: f64 = 0.02;

pub fn eval(config: &Config, what: EvalCommand) -> anyhow::Result<()> {
    match what {
        EvalCommand::Guard {
            moderation,
            xstest,
            folds,
            json,
        } => eval_guard(config, &moderation, &xstest, folds, json),
        EvalCommand::Topics { set, json } => eval_topics(config, &set, json),
        EvalCommand::Replies { set, lexical, json } => eval_replies(config, &set, lexical, json),
        EvalCommand::OutputRail {
            production,
            character,
            lines,
            save,
            json,
        } => crate::eval_output::run(
            config,
            &crate::eval_output::OutputRailEval {
                production,
                character,
                lines,
                save,
                json,
            },
        ),
        EvalCommand::Watermark {
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
        } => crate::eval_watermark::run(
            config,
            &crate::eval_watermark::WatermarkEval {
                replies,
                tokens,
                perplexity_pairs,
                prompts,
                corpora: corpora.unwrap_or_else(|| config.cache.join("corpora")),
                gamma,
                delta,
                spike,
                save_replies,
                replies_from,
                json,
            },
        ),
    }
}

pub fn train(config: &Config, what: TrainCommand) -> anyhow::Result<()> {
    let TrainCommand::Guard {
        moderation,
        xstest,
        out,
    } = what;
    let prompts = read_sets(&moderation, &xstest)?;
    let semantic = load_semantic(config)?;
    let vectors = embed_all(&semantic, &prompts)?;
    let rows: Vec<usize> = (0..prompts.len()).collect();
    let mut head = fit_hazard_head(&prompts, &vectors, &rows);
    head.trained_on = [&moderation, &xstest]
        .iter()
        .map(|p| file_name(p))
        .collect();
    std::fs::write(&out, serde_json::to_string_pretty(&head)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} (threshold {:.3}, trained on {} prompts)",
        out.display(),
        head.threshold,
        prompts.len()
    );
    Ok(())
}

/// The median and 99th percentile of some timings (0 for none).
fn p50_p99(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        times
            .get(((times.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (quantile(0.5), quantile(0.99))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

fn read_sets(moderation: &Path, xstest: &Path) -> anyhow::Result<Vec<Labelled>> {
    let mut prompts = eval::read_moderation(moderation)?;
    prompts.extend(eval::read_xstest(xstest)?);
    Ok(prompts)
}

pub(crate) fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// The embedded readings of every prompt, and the mean of its folded windows (what a head is
/// trained on).
struct Vectors {
    embedded: Vec<Vec<Embedded>>,
    mean: Vec<Vec<f32>>,
}

fn embed_all(semantic: &Semantic, prompts: &[Labelled]) -> anyhow::Result<Vectors> {
    let bar = progress(prompts.len(), "embedding");
    let mut embedded = Vec::with_capacity(prompts.len());
    let mut mean = Vec::with_capacity(prompts.len());
    for p in prompts {
        let e = semantic.embed_views(&views(&p.text), None)?;
        let folded: Vec<&Embedded> = e
            .iter()
            .filter(|e| e.view == lore_guard::normalize::ViewKind::Folded)
            .collect();
        let mut m = vec![0.0f32; lore_guard::encoder::DIMENSION];
        for w in &folded {
            for (a, b) in m.iter_mut().zip(&w.vector) {
                *a += b / folded.len() as f32;
            }
        }
        mean.push(m);
        embedded.push(e);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Vectors { embedded, mean })
}

/// The class a prompt is stratified by: its label and set alike, so each fold has its share of
/// both sets' classes (XSTest is mostly the rare kind, safe prompts that look unsafe).
fn stratum(prompt: &Labelled) -> bool {
    prompt.is_unsafe ^ (prompt.source == Source::XsTest)
}

/// Fits a head on `rows` and picks its threshold from held-out scores within those rows: the
/// best F1 on moderation prompts whose over-refusal on XSTest's safe prompts stays in budget.
fn fit_hazard_head(prompts: &[Labelled], vectors: &Vectors, rows: &[usize]) -> HazardHead {
    let fit = Fit::default();
    let examples = |rows: &[usize]| -> Vec<Example<'_>> {
        rows.iter()
            .map(|&i| Example {
                features: vectors.mean[i].as_slice(),
                is_positive: prompts[i].is_unsafe,
                weight: if prompts[i].source == Source::XsTest && !prompts[i].is_unsafe {
                    SAFE_LOOKALIKE_WEIGHT
                } else {
                    1.0
                },
            })
            .collect()
    };
    let labels: Vec<bool> = rows.iter().map(|&i| stratum(&prompts[i])).collect();
    let inner = eval::stratified_folds(&labels, 4);
    let mut held_out = Vec::with_capacity(rows.len());
    for fold in 0..4 {
        let train: Vec<usize> = (0..rows.len())
            .filter(|&j| inner[j] != fold)
            .map(|j| rows[j])
            .collect();
        let head = Head::fit(&examples(&train), fit);
        for j in (0..rows.len()).filter(|&j| inner[j] == fold) {
            let i = rows[j];
            held_out.push((head.score(&vectors.mean[i]), &prompts[i]));
        }
    }
    let mut best = (f64::MIN, 0.5f32);
    for step in 1..100 {
        let threshold = step as f32 / 100.0;
        let flagged = |p: &Labelled, s: f32| Judged {
            score: s,
            flagged: s >= threshold,
            is_unsafe: p.is_unsafe,
        };
        let moderation: Vec<Judged> = held_out
            .iter()
            .filter(|(_, p)| p.source == Source::Moderation)
            .map(|(s, p)| flagged(p, *s))
            .collect();
        let safe_xstest: Vec<Judged> = held_out
            .iter()
            .filter(|(_, p)| p.source == Source::XsTest && !p.is_unsafe)
            .map(|(s, p)| flagged(p, *s))
            .collect();
        let over_refusal = eval::binary_metrics(&safe_xstest).fpr;
        let f1 = eval::binary_metrics(&moderation).f1;
        if over_refusal <= OVER_REFUSAL_BUDGET && f1 > best.0 {
            best = (f1, threshold);
        }
    }
    HazardHead {
        head: Head::fit(&examples(rows), fit),
        threshold: best.1,
        trained_on: Vec::new(),
    }
}

/// The first production's world: every production reads the same studio policy beneath its
/// own rules, and the hazards are off limits in all of them.
fn studio_policy(config: &Config) -> anyhow::Result<Policy> {
    let store = open_store(config)?;
    let productions = lore_canon::productions(&store)?;
    let Some(first) = productions.first() else {
        bail!("the store has no production; import world/policy.trig and a world first");
    };
    let world = World::load(&store, &first.iri)?;
    if world.policy.nodes.is_empty() {
        bail!("the store has no policy graph; import world/policy.trig first");
    }
    Ok(world.policy)
}

fn eval_guard(
    config: &Config,
    moderation: &Path,
    xstest: &Path,
    folds: usize,
    json: bool,
) -> anyhow::Result<()> {
    if folds < 2 {
        bail!("--folds must be at least 2, so every prompt is judged by a head not trained on it");
    }
    let policy = studio_policy(config)?;
    let prompts = read_sets(moderation, xstest)?;
    let semantic = load_semantic(config)?;
    let encoder = semantic.encoder().clone();
    let vectors = embed_all(&semantic, &prompts)?;
    let readings: Vec<_> = prompts.iter().map(|p| views(&p.text)).collect();

    let strata: Vec<bool> = prompts.iter().map(stratum).collect();
    let fold_of = eval::stratified_folds(&strata, folds);
    let mut judged: Vec<Option<(Judged, Source)>> = vec![None; prompts.len()];
    let bar = progress(folds, "cross-validating");
    for fold in 0..folds {
        let train: Vec<usize> = (0..prompts.len()).filter(|&i| fold_of[i] != fold).collect();
        let head = fit_hazard_head(&prompts, &vectors, &train);
        let layer = Arc::new(Semantic::new(encoder.clone(), head));
        let rails = Rails::hazards(&policy, Some(&layer))?;
        for i in (0..prompts.len()).filter(|&i| fold_of[i] == fold) {
            let decision = rails.decide(&readings[i], &vectors.embedded[i], Rail::Input);
            let flagged = decision.action != Action::Allow;
            let score = decision
                .fired
                .iter()
                .map(|f| f.score)
                .fold(rails.hazard_score(&vectors.embedded[i]), f32::max);
            judged[i] = Some((
                Judged {
                    score,
                    flagged,
                    is_unsafe: prompts[i].is_unsafe,
                },
                prompts[i].source,
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let of = |source: Source| -> Vec<Judged> {
        judged
            .iter()
            .flatten()
            .filter(|(_, s)| *s == source)
            .map(|(j, _)| *j)
            .collect()
    };
    let moderation_metrics = eval::binary_metrics(&of(Source::Moderation));
    let xs = eval::binary_metrics(&of(Source::XsTest));

    // Latency of a whole decision (reading, embedding, deciding) on chat-length text: the
    // XSTest prompts, judged by the rails with the bundled head.
    let layer = Arc::new(Semantic::new(encoder, HazardHead::bundled()));
    let rails = Rails::hazards(&policy, Some(&layer))?;
    let chat: Vec<&str> = prompts
        .iter()
        .filter(|p| p.source == Source::XsTest)
        .map(|p| p.text.as_str())
        .collect();
    let mut micros = Vec::with_capacity(chat.len() * 3);
    for _ in 0..3 {
        for text in &chat {
            let start = Instant::now();
            rails.check(text)?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let (p50, p99) = p50_p99(&mut micros);

    let xstest_json = json!({
        "over_refusal": xs.fpr,
        "unsafe_recall": xs.recall,
        "n": xs.n,
    });
    if json {
        println!(
            "{}",
            json!({
                "moderation": moderation_metrics,
                "xstest": xstest_json,
                "latency_us": {"p50": p50, "p99": p99},
                "folds": folds,
            })
        );
    } else {
        print_guard(&moderation_metrics, &xs, folds, p50, p99);
    }
    Ok(())
}

fn print_guard(m: &BinaryMetrics, xs: &BinaryMetrics, folds: usize, p50: f64, p99: f64) {
    println!("rails on the safety sets, {folds}-fold cross-validated");
    println!(
        "moderation  n={}  precision {:.3}  recall {:.3}  F1 {:.3}  FPR {:.3}  AUPRC {:.3}",
        m.n, m.precision, m.recall, m.f1, m.fpr, m.auprc
    );
    println!(
        "xstest      n={}  over-refusal {:.3}  unsafe recall {:.3}",
        xs.n, xs.fpr, xs.recall
    );
    println!("latency per decision (chat-length text): p50 {p50:.0} µs  p99 {p99:.0} µs");
}

/// One line of the topics set.
struct TopicLine {
    node: Option<String>,
    text: String,
}

/// The lines of a hand-written evaluation set that carry data, with their 1-based numbers:
/// blank lines and `#` comments are skipped.
fn data_lines(path: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(i, line)| (i + 1, line.to_owned()))
        .collect())
}

/// Player lines from a file, one a line (blank lines and `#` comments skipped).
pub(crate) fn read_player_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let lines: Vec<String> = data_lines(path)?
        .into_iter()
        .map(|(_, line)| line.trim().to_owned())
        .collect();
    if lines.is_empty() {
        bail!("{}: no player lines", path.display());
    }
    Ok(lines)
}

/// A planner for every character of every production in the store (or of `production`, or
/// only `character` wherever it appears), each without a beat of story time.
pub(crate) fn cast(
    config: &Config,
    options: &SessionOptions,
    production: Option<&str>,
    character: Option<&str>,
) -> anyhow::Result<Vec<TurnPlanner>> {
    let store = open_store(config)?;
    let productions = match production {
        Some(name) => vec![name.to_owned()],
        None => lore_canon::productions(&store)?
            .into_iter()
            .map(|p| p.iri)
            .collect(),
    };
    let mut planners = Vec::new();
    for production in &productions {
        let world = Arc::new(World::load(&store, production)?);
        let characters: Vec<String> = match character {
            // Named with the production, it must be there (resolving says why not).
            Some(name) if world.character(name).is_some() || productions.len() == 1 => {
                vec![name.to_owned()]
            }
            Some(_) => Vec::new(),
            None => world
                .entities
                .iter()
                .filter(|e| e.kind == EntityKind::Character)
                .map(|e| e.iri.clone())
                .collect(),
        };
        for name in &characters {
            let resolved = world.resolve(&store, name, None)?;
            planners.push(TurnPlanner::new(world.clone(), resolved, options.clone())?);
        }
    }
    if planners.is_empty() {
        match character {
            Some(name) => bail!("no production of the store has a character {name:?}"),
            None => {
                bail!("the store has no characters; import world/policy.trig and a world first")
            }
        }
    }
    Ok(planners)
}

fn read_topics(path: &Path) -> anyhow::Result<Vec<TopicLine>> {
    let mut out = Vec::new();
    for (number, line) in data_lines(path)? {
        let Some((node, text)) = line.split_once('\t') else {
            bail!("{}:{number}: expected `node<TAB>text`", path.display());
        };
        let node = match node {
            "-" => None,
            n => Some(expand(n).with_context(|| format!("{}:{number}", path.display()))?),
        };
        out.push(TopicLine {
            node,
            text: text.to_owned(),
        });
    }
    if out.is_empty() {
        bail!("{}: no lines", path.display());
    }
    Ok(out)
}

fn expand(name: &str) -> anyhow::Result<String> {
    const PREFIXES: [(&str, &str); 2] = [
        ("lore:", "https://lorekeeper.dev/ns/lore#"),
        ("bm:", "https://lorekeeper.dev/worlds/brindlemoor#"),
    ];
    if name.contains("://") {
        return Ok(name.to_owned());
    }
    PREFIXES
        .iter()
        .find_map(|(p, iri)| name.strip_prefix(p).map(|local| format!("{iri}{local}")))
        .with_context(|| format!("{name:?} is neither an IRI nor lore:/bm: prefixed"))
}

/// One place a line is judged: a character of a production, or a rating tier.
struct Judge {
    name: String,
    rails: Rails,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    should_block: usize,
    blocked: usize,
    should_allow: usize,
    allowed: usize,
}

impl Tally {
    fn add(&mut self, expect_block: bool, blocked: bool) {
        if expect_block {
            self.should_block += 1;
            self.blocked += usize::from(blocked);
        } else {
            self.should_allow += 1;
            self.allowed += usize::from(!blocked);
        }
    }

    fn rates(&self) -> (f64, f64) {
        let rate = |a: usize, n: usize| if n == 0 { 1.0 } else { a as f64 / n as f64 };
        (
            rate(self.blocked, self.should_block),
            rate(self.allowed, self.should_allow),
        )
    }
}

/// How near a set's line may come to a policy example before it is reported as a copy of
/// one: such a line measures what the topics' heads were taught, not how they read new talk.
const NEAR_COPY: f32 = 0.9;

fn eval_topics(config: &Config, set: &Path, json: bool) -> anyhow::Result<()> {
    let lines = read_topics(set)?;
    let store = open_store(config)?;
    let semantic = Arc::new(load_semantic(config)?);
    let mut contexts = Vec::new();
    let mut policy = None;
    for production in lore_canon::productions(&store)? {
        let world = World::load(&store, &production.iri)?;
        let characters = world
            .entities
            .iter()
            .filter(|e| e.kind == lore_canon::EntityKind::Character);
        for character in characters {
            contexts.push(Judge {
                name: format!("{} / {}", world.production.title, character.name),
                rails: Rails::new(&world, &character.iri, Some(&semantic))?,
            });
        }
        policy.get_or_insert(world.policy);
    }
    let Some(policy) = policy else {
        bail!("the store has no production; import world/policy.trig and a world first");
    };
    for rating in &policy.ratings {
        contexts.push(Judge {
            name: format!("rating {}", rating.label),
            rails: Rails::for_audience(
                &policy,
                Audience {
                    production_off_limits: &[],
                    character_off_limits: &[],
                    age: rating.minimum_age,
                },
                Some(&semantic),
            )?,
        });
    }
    for line in &lines {
        if let Some(node) = &line.node
            && policy.node(node).is_none()
        {
            bail!("{}: {node} is not a node of the policy", set.display());
        }
    }

    let examples = policy
        .nodes
        .iter()
        .flat_map(|n| &n.examples)
        .map(|text| Ok((text.as_str(), semantic.example(text)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut near_copies: Vec<String> = Vec::new();

    let bar = progress(lines.len(), "judging");
    let mut total = Tally::default();
    let mut per_context = vec![Tally::default(); contexts.len()];
    // Per wrong line: how many contexts judged it wrong, and the first such judgement.
    let mut misses: Vec<(usize, String)> = Vec::new();
    // A decision is the line read and embedded once, then judged under one context's rails
    // (what `Rails::check` does).
    let mut micros = Vec::with_capacity(lines.len() * contexts.len());
    // Contexts whose rails read text alike (one policy, one tuning) share a line's embedding:
    // per context, the first context it shares with.
    let readers: Vec<usize> = contexts
        .iter()
        .map(|c| {
            contexts
                .iter()
                .position(|d| d.rails.embeds_like(&c.rails))
                .unwrap_or(0)
        })
        .collect();
    for line in &lines {
        let start = Instant::now();
        let readings = views(&line.text);
        let mut embeddings: Vec<Option<Vec<Embedded>>> = vec![None; contexts.len()];
        for &reader in &readers {
            if embeddings[reader].is_none() {
                embeddings[reader] = Some(contexts[reader].rails.embed(&readings)?);
            }
        }
        let reading = start.elapsed() / embeddings.iter().flatten().count().max(1) as u32;
        if let Some((similarity, example)) = embeddings
            .iter()
            .flatten()
            .flatten()
            .flat_map(|e| examples.iter().map(|(t, v)| (cosine(&e.vector, v), *t)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|n| n.0 >= NEAR_COPY)
        {
            near_copies.push(format!(
                "near copy ({similarity:.2}): {:?} ~ policy example {example:?}",
                line.text
            ));
        }
        let mut wrong: Option<(usize, String)> = None;
        for (c, context) in contexts.iter().enumerate() {
            let expect_block = line
                .node
                .as_deref()
                .is_some_and(|n| context.rails.blocks(n));
            let start = Instant::now();
            let embedded = embeddings[readers[c]].as_deref().unwrap_or_default();
            let decision = context.rails.decide(&readings, embedded, Rail::Input);
            micros.push((reading + start.elapsed()).as_secs_f64() * 1e6);
            let blocked = decision.action != Action::Allow;
            total.add(expect_block, blocked);
            per_context[c].add(expect_block, blocked);
            if expect_block != blocked {
                let (count, _) = wrong.get_or_insert_with(|| {
                    let why = decision
                        .fired
                        .first()
                        .map(|f| format!(" ({} via {} {:?})", f.label, f.layer.name(), f.term))
                        .unwrap_or_default();
                    let verdict = if expect_block { "missed" } else { "blocked" };
                    (
                        0,
                        format!("{}: {verdict} {:?}{why}", context.name, line.text),
                    )
                });
                *count += 1;
            }
        }
        misses.extend(wrong);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (p50, p99) = p50_p99(&mut micros);
    let (blocked, allowed) = total.rates();
    if json {
        let contexts: Vec<_> = contexts
            .iter()
            .zip(&per_context)
            .map(|(c, t)| {
                let (b, a) = t.rates();
                json!({"context": c.name, "off_limits_blocked": b, "allowed_allowed": a,
                       "n_off_limits": t.should_block, "n_allowed": t.should_allow})
            })
            .collect();
        println!(
            "{}",
            json!({
                "lines": lines.len(),
                "interactions": total.should_block + total.should_allow,
                "off_limits_blocked": blocked,
                "allowed_allowed": allowed,
                "n_off_limits": total.should_block,
                "n_allowed": total.should_allow,
                "near_copies": near_copies.len(),
                "latency_us": {"p50": p50, "p99": p99},
                "contexts": contexts,
            })
        );
    } else {
        println!(
            "{} lines × {} contexts = {} interactions",
            lines.len(),
            contexts.len(),
            total.should_block + total.should_allow
        );
        println!(
            "off limits blocked {:.1}% of {}   allowed lines allowed {:.1}% of {}",
            100.0 * blocked,
            total.should_block,
            100.0 * allowed,
            total.should_allow
        );
        println!("latency per decision: p50 {p50:.0} µs  p99 {p99:.0} µs");
        for (c, t) in contexts.iter().zip(&per_context) {
            let (b, a) = t.rates();
            println!(
                "  {:<40} blocked {:>5.1}% of {:>3}   allowed {:>5.1}% of {:>3}",
                c.name,
                100.0 * b,
                t.should_block,
                100.0 * a,
                t.should_allow
            );
        }
        if !near_copies.is_empty() {
            println!(
                "{} lines are near copies of policy examples (cosine ≥ {NEAR_COPY}): they \
                 measure what the topics' heads were taught, not unseen talk",
                near_copies.len()
            );
        }
        for line in &near_copies {
            eprintln!("{line}");
        }
        // The lines wrong in the most contexts first: a studio-wide topic's miss counts once
        // per character.
        misses.sort_by_key(|(count, _)| std::cmp::Reverse(*count));
        for (count, first) in &misses {
            eprintln!("{first}, wrong in {count} of {} contexts", contexts.len());
        }
    }
    Ok(())
}

/// The kinds a reply sentence can be labelled with: fine, off limits by the policy, or one of
/// the canon check's problems.
const REPLY_KINDS: [&str; 7] = [
    "ok",
    "off_limits",
    "leak",
    "dead_as_alive",
    "wrong_relationship",
    "stale_fact",
    "unknown_place",
];

/// What the output rail's verdict on a sentence makes it, as a kind of the replies set: off
/// limits when the policy fired, else the canon check's first finding, else ok.
pub(crate) fn verdict_kind(verdict: &SentenceVerdict) -> &'static str {
    match (verdict.policy.fired.first(), verdict.canon.first()) {
        (Some(_), _) => "off_limits",
        (None, Some(finding)) => finding.problem.kind(),
        (None, None) => "ok",
    }
}

/// One line of the replies set.
struct ReplyLine {
    line: usize,
    production: String,
    character: String,
    beat: Option<String>,
    expected: String,
    sentence: String,
}

fn read_replies(path: &Path) -> anyhow::Result<Vec<ReplyLine>> {
    let mut out = Vec::new();
    for (n, line) in data_lines(path)? {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        let [production, character, beat, expected, sentence] = fields.as_slice() else {
            bail!(
                "{}:{}: expected `production<TAB>character<TAB>beat<TAB>kind<TAB>sentence`",
                path.display(),
                n
            );
        };
        if !REPLY_KINDS.contains(expected) {
            bail!(
                "{}:{}: kind {expected:?} is not one of {}",
                path.display(),
                n,
                REPLY_KINDS.join(", ")
            );
        }
        out.push(ReplyLine {
            line: n,
            production: (*production).to_owned(),
            character: (*character).to_owned(),
            beat: (*beat != "-").then(|| (*beat).to_owned()),
            expected: (*expected).to_owned(),
            sentence: (*sentence).to_owned(),
        });
    }
    if out.is_empty() {
        bail!("{}: no lines", path.display());
    }
    Ok(out)
}

fn eval_replies(config: &Config, set: &Path, lexical: bool, json: bool) -> anyhow::Result<()> {
    let lines = read_replies(set)?;
    let store = open_store(config)?;
    let options = SessionOptions {
        semantic: if lexical {
            None
        } else {
            Some(Arc::new(load_semantic(config)?))
        },
        ..SessionOptions::default()
    };
    let mut worlds: HashMap<String, Arc<World>> = HashMap::new();
    let mut planners: HashMap<(String, String, Option<String>), TurnPlanner> = HashMap::new();
    let bar = progress(lines.len(), "checking");
    // Per kind: lines labelled with it, and of those, withheld at all and found as that kind.
    let mut labelled = [0usize; REPLY_KINDS.len()];
    let mut flagged = [0usize; REPLY_KINDS.len()];
    let mut right_kind = [0usize; REPLY_KINDS.len()];
    // Fine sentences withheld by the policy and by the canon check.
    let (mut ok_by_policy, mut ok_by_canon) = (0usize, 0usize);
    let mut latencies = Vec::new();
    let mut misses = Vec::new();
    for line in &lines {
        let at = |e: anyhow::Error| e.context(format!("{}:{}", set.display(), line.line));
        if !worlds.contains_key(&line.production) {
            let world = Arc::new(World::load(&store, &line.production).map_err(|e| at(e.into()))?);
            worlds.insert(line.production.clone(), world);
        }
        let key = (
            line.production.clone(),
            line.character.clone(),
            line.beat.clone(),
        );
        if !planners.contains_key(&key) {
            let world = &worlds[&line.production];
            let resolved = world
                .resolve(&store, &line.character, line.beat.as_deref())
                .map_err(|e| at(e.into()))?;
            let planner = TurnPlanner::new(world.clone(), resolved, options.clone())
                .map_err(|e| at(e.into()))?;
            planners.insert(key.clone(), planner);
        }
        let started = Instant::now();
        let verdict = planners[&key].check_sentence(&line.sentence)?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        let policy_fired = verdict.policy.fired.first();
        let kind = verdict_kind(&verdict);
        let k = REPLY_KINDS
            .iter()
            .position(|k| *k == line.expected)
            .unwrap_or(0);
        labelled[k] += 1;
        flagged[k] += usize::from(kind != "ok");
        right_kind[k] += usize::from(match line.expected.as_str() {
            "ok" => kind == "ok",
            "off_limits" => policy_fired.is_some(),
            expected => verdict.canon.iter().any(|f| f.problem.kind() == expected),
        });
        if line.expected == "ok" {
            ok_by_policy += usize::from(policy_fired.is_some());
            ok_by_canon += usize::from(!verdict.canon.is_empty());
        }
        if (kind == "ok") != (line.expected == "ok") {
            let why = match (policy_fired, verdict.canon.first()) {
                (Some(f), _) => format!(" ({} by {}, {:.2})", f.label, f.layer.name(), f.score),
                (None, Some(f)) => format!(" ({}: {})", f.problem.kind(), f.evidence),
                (None, None) => String::new(),
            };
            misses.push(format!(
                "{}:{} {} / {}: expected {}, got {kind}{why}: {:?}",
                set.display(),
                line.line,
                line.production,
                line.character,
                line.expected,
                line.sentence
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (p50, p99) = p50_p99(&mut latencies);
    let problems: usize = labelled[1..].iter().sum();
    let caught: usize = flagged[1..].iter().sum();
    let recall = caught as f64 / problems.max(1) as f64;
    let false_alarms = flagged[0] as f64 / labelled[0].max(1) as f64;
    let rate = |a: usize, n: usize| if n == 0 { 1.0 } else { a as f64 / n as f64 };
    if json {
        let kinds: serde_json::Map<String, serde_json::Value> = REPLY_KINDS
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, name)| {
                (
                    (*name).to_owned(),
                    json!({"n": labelled[k], "caught": rate(flagged[k], labelled[k]),
                           "right_kind": rate(right_kind[k], labelled[k])}),
                )
            })
            .collect();
        println!(
            "{}",
            json!({"problems": {"n": problems, "caught": recall}, "ok": {"n": labelled[0],
                   "false_alarms": false_alarms, "by_policy": ok_by_policy,
                   "by_canon": ok_by_canon}, "kinds": kinds, "embedding_layer": !lexical,
                   "latency_us": {"p50": p50, "p99": p99}})
        );
    } else {
        for m in &misses {
            eprintln!("{m}");
        }
        println!(
            "output rail on reply sentences: policy and canon check ({}; {} sentences)",
            if lexical {
                "rules over words"
            } else {
                "rules over words + embedding layer"
            },
            lines.len()
        );
        println!(
            "problems caught: {caught} of {problems} ({:.1}%)   false alarms on fine sentences: {} of {} ({:.1}%)",
            100.0 * recall,
            flagged[0],
            labelled[0],
            100.0 * false_alarms
        );
        if flagged[0] > 0 {
            println!(
                "  fine sentences withheld by the policy: {ok_by_policy}, by the canon check: {ok_by_canon}"
            );
        }
        for (k, name) in REPLY_KINDS.iter().enumerate().skip(1) {
            println!(
                "  {name:<20} {:>3} lines  caught {:>5.1}%  as this kind {:>5.1}%",
                labelled[k],
                100.0 * rate(flagged[k], labelled[k]),
                100.0 * rate(right_kind[k], labelled[k])
            );
        }
        println!("latency per sentence: p50 {p50:.0} µs  p99 {p99:.0} µs");
    }
    Ok(())
}
