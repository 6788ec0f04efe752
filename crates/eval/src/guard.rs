//! `lore eval guard` and `lore train guard`: the rails' hazard side on the public safety sets
//! (OpenAI's moderation set, XSTest), and the hazard head trained on them.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lore_canon::policy::Policy;
use lore_canon::{CanonStore, World};
use lore_guard::eval::{self, BinaryMetrics, Judged, Labelled, Source};
use lore_guard::head::{Example, Fit, Head};
use lore_guard::normalize::views;
use lore_guard::semantic::Embedded;
use lore_guard::{Action, HazardHead, Rail, Rails, Semantic};
use serde_json::json;

use crate::error::EvalError;
use crate::progress::Progress;
use crate::sets::p50_p99;

/// How much each of XSTest's safe prompts counts in fitting the head against an ordinary
/// safe prompt. They are few (118 against ~580 safe moderation prompts) and share their words
/// with harm ("kill a process"), so unweighted they barely move the boundary and the
/// over-refusal budget then forces a high threshold that costs recall. Chosen by cross-
/// validation on the development sets (docs/benchmarks.md).
const SAFE_LOOKALIKE_WEIGHT: f32 = 10.0;

/// The most over-refusal on XSTest's safe prompts a threshold may cost, measured on held-out
/// training prompts; below the 4% goal, leaving room for the lexicon's own false alarms.
const OVER_REFUSAL_BUDGET: f64 = 0.02;

/// What `lore eval guard` measured.
#[derive(Debug, Clone)]
pub struct GuardReport {
    /// On the moderation set.
    pub moderation: BinaryMetrics,
    /// On XSTest: `fpr` is over-refusal of its safe prompts, `recall` of its unsafe ones.
    pub xstest: BinaryMetrics,
    /// Cross-validation folds.
    pub folds: usize,
    /// Median latency of a whole decision on chat-length text, in microseconds.
    pub p50_us: f64,
    /// Its 99th percentile.
    pub p99_us: f64,
}

impl GuardReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "moderation": self.moderation,
            "xstest": {
                "over_refusal": self.xstest.fpr,
                "unsafe_recall": self.xstest.recall,
                "n": self.xstest.n,
            },
            "latency_us": {"p50": self.p50_us, "p99": self.p99_us},
            "folds": self.folds,
        })
    }
}

impl fmt::Display for GuardReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, xs) = (&self.moderation, &self.xstest);
        writeln!(
            f,
            "rails on the safety sets, {}-fold cross-validated",
            self.folds
        )?;
        writeln!(
            f,
            "moderation  n={}  precision {:.3}  recall {:.3}  F1 {:.3}  FPR {:.3}  AUPRC {:.3}",
            m.n, m.precision, m.recall, m.f1, m.fpr, m.auprc
        )?;
        writeln!(
            f,
            "xstest      n={}  over-refusal {:.3}  unsafe recall {:.3}",
            xs.n, xs.fpr, xs.recall
        )?;
        writeln!(
            f,
            "latency per decision (chat-length text): p50 {:.0} µs  p99 {:.0} µs",
            self.p50_us, self.p99_us
        )
    }
}

/// The hazard head trained on both sets whole, as `lore train guard` bundles it, and how many
/// prompts it was trained on.
pub fn train(
    semantic: &Semantic,
    moderation: &Path,
    xstest: &Path,
    progress: &dyn Progress,
) -> Result<(HazardHead, usize), EvalError> {
    let prompts = read_sets(moderation, xstest)?;
    let vectors = embed_all(semantic, &prompts, progress)?;
    let rows: Vec<usize> = (0..prompts.len()).collect();
    let mut head = fit_hazard_head(&prompts, &vectors, &rows);
    head.trained_on = [moderation, xstest].iter().map(|p| file_name(p)).collect();
    Ok((head, prompts.len()))
}

/// The policy of the store's first production: every production reads the same studio policy
/// beneath its own rules, and the hazards are off limits in all of them.
pub fn studio_policy(store: &CanonStore) -> Result<Policy, EvalError> {
    let productions = lore_canon::productions(store)?;
    let Some(first) = productions.first() else {
        return Err(EvalError::Invalid(
            "the store has no production; import world/policy.trig and a world first".into(),
        ));
    };
    let world = World::load(store, &first.iri)?;
    if world.policy.nodes.is_empty() {
        return Err(EvalError::Invalid(
            "the store has no policy graph; import world/policy.trig first".into(),
        ));
    }
    Ok(world.policy)
}

/// The rails on the moderation set and XSTest, `folds`-fold cross-validated: each prompt is
/// judged by a head trained and thresholded without it, under `policy`'s hazards.
pub fn evaluate(
    policy: &Policy,
    semantic: &Semantic,
    moderation: &Path,
    xstest: &Path,
    folds: usize,
    progress: &dyn Progress,
) -> Result<GuardReport, EvalError> {
    if folds < 2 {
        return Err(EvalError::Invalid(
            "--folds must be at least 2, so every prompt is judged by a head not trained on it"
                .into(),
        ));
    }
    let prompts = read_sets(moderation, xstest)?;
    let encoder = semantic.encoder().clone();
    let vectors = embed_all(semantic, &prompts, progress)?;
    let readings: Vec<_> = prompts.iter().map(|p| views(&p.text)).collect();

    let strata: Vec<bool> = prompts.iter().map(stratum).collect();
    let fold_of = eval::stratified_folds(&strata, folds);
    let mut judged: Vec<Option<(Judged, Source)>> = vec![None; prompts.len()];
    let bar = progress.stage("cross-validating", folds);
    for fold in 0..folds {
        let train: Vec<usize> = (0..prompts.len()).filter(|&i| fold_of[i] != fold).collect();
        let head = fit_hazard_head(&prompts, &vectors, &train);
        let layer = Arc::new(Semantic::new(encoder.clone(), head));
        let rails = Rails::hazards(policy, Some(&layer))?;
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
        bar.step();
    }
    drop(bar);
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
    let rails = Rails::hazards(policy, Some(&layer))?;
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

    Ok(GuardReport {
        moderation: moderation_metrics,
        xstest: xs,
        folds,
        p50_us: p50,
        p99_us: p99,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

fn read_sets(moderation: &Path, xstest: &Path) -> Result<Vec<Labelled>, EvalError> {
    let mut prompts = eval::read_moderation(moderation)?;
    prompts.extend(eval::read_xstest(xstest)?);
    Ok(prompts)
}

/// The embedded readings of every prompt, and the mean of its folded windows (what a head is
/// trained on).
struct Vectors {
    embedded: Vec<Vec<Embedded>>,
    mean: Vec<Vec<f32>>,
}

fn embed_all(
    semantic: &Semantic,
    prompts: &[Labelled],
    progress: &dyn Progress,
) -> Result<Vectors, EvalError> {
    let bar = progress.stage("embedding", prompts.len());
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
        bar.step();
    }
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
