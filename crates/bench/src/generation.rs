//! The embedded backend against a bare llama.cpp loop, on the same model, threads and prompt.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use lore_gen::{
    Backend, Conversation, EmbeddedBackend, EmbeddedConfig, GenError, GenParams, Role,
    SamplerConfig, Turn,
};

const N_CTX: u32 = 4096;
/// Pause before each timed phase.
const SETTLE: Duration = Duration::from_millis(500);

/// Prompt and generation speed of one loop.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Speed {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Seconds to evaluate them.
    pub prompt_secs: f64,
    /// Tokens generated.
    pub generated: usize,
    /// Seconds from the first token to the last.
    pub generation_secs: f64,
}

impl Speed {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_secs
    }

    /// Generated tokens per second, after the first.
    pub fn generation_tps(&self) -> f64 {
        (self.generated.saturating_sub(1)) as f64 / self.generation_secs
    }

    fn add(&mut self, other: Speed) {
        self.prompt_tokens += other.prompt_tokens;
        self.prompt_secs += other.prompt_secs;
        self.generated += other.generated;
        self.generation_secs += other.generation_secs;
    }
}

/// What the generation benchmark measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationReport {
    /// The engine's embedded backend, summed over runs.
    pub engine: Speed,
    /// The bare llama.cpp loop, summed over runs.
    pub bare: Speed,
    /// Median over runs of engine/bare prompt speed, each run paired with the adjacent one.
    pub prompt_ratio: f64,
    /// Median over runs of engine/bare generation speed.
    pub generation_ratio: f64,
    /// Turn 2 (median over sessions): new tokens the engine evaluated.
    pub turn2_new_tokens: usize,
    /// Turn 2 (median): the engine's time to first token.
    pub turn2_ttft: Duration,
    /// Turn 2 (median): the bare loop's time to evaluate just those new tokens and pick one.
    pub turn2_bare: Duration,
    /// Our sampler's time per token without the watermark (temperature 0.7, real logits).
    pub sample_plain: Duration,
    /// The same with the watermark: the difference is what marking costs a token.
    pub sample_marked: Duration,
    /// Candidate replies decoded side by side: how many, and the median time (prompt and
    /// all of them, on a fresh session) to write them.
    pub candidates: Vec<(usize, Duration)>,
}

impl GenerationReport {
    /// What the watermark adds to a token, as a share of the bare loop's time per token.
    pub fn watermark_share(&self) -> f64 {
        let extra = self.sample_marked.as_secs_f64() - self.sample_plain.as_secs_f64();
        extra / (self.bare.generation_secs / self.bare.generated.max(1) as f64)
    }
}

/// What the benchmark says to the model: a fixed conversation (a preamble of a realistic
/// length, about 400 tokens, and the player's line), and the lines of turn 2 in turn.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchPrompt {
    /// Turn 1.
    pub conversation: Conversation,
    /// The player's second lines, one per turn-2 session in turn.
    pub follow_ups: Vec<String>,
}

impl BenchPrompt {
    /// The prompt in JSON file `path`.
    pub fn read(path: &Path) -> Result<BenchPrompt, GenError> {
        let bad = |reason: String| GenError::Runtime(format!("{}: {reason}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let prompt: BenchPrompt = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if prompt.follow_ups.is_empty() {
            return Err(bad("`follow_ups` is empty".into()));
        }
        Ok(prompt)
    }
}

fn greedy(max_tokens: usize, stop_rules: bool) -> GenParams {
    GenParams {
        max_tokens,
        sampler: SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 1.0,
            ..SamplerConfig::default()
        },
        stop_rules,
        ..GenParams::default()
    }
}

/// Runs both loops `runs` times on `prompt`, each on a fresh context, generating `tokens`
/// tokens.
pub fn run(
    model: &Path,
    threads: usize,
    tokens: usize,
    runs: usize,
    prompt: &BenchPrompt,
) -> Result<GenerationReport, GenError> {
    let mut config = EmbeddedConfig::new(model.to_owned());
    config.threads = threads;
    config.n_ctx = N_CTX;
    config.prompt_style = lore_gen::PromptStyle::Transcript;
    let engine = EmbeddedBackend::load(config)?;
    let backend = lore_gen::llama_backend()?;
    let bare_model = LlamaModel::load_from_file(backend, model, &LlamaModelParams::default())
        .map_err(|e| GenError::ModelLoad {
            path: model.to_owned(),
            reason: e.to_string(),
        })?;
    let BenchPrompt {
        conversation,
        follow_ups,
    } = prompt;
    let prompt = conversation.transcript();

    let mut engine_speed = Speed::default();
    let mut bare_speed = Speed::default();
    let mut prompt_ratios = Vec::new();
    let mut generation_ratios = Vec::new();
    // Interleave the two, alternating which goes first, so that load on the machine affects
    // both alike; pause before each so the other's idle worker threads (OpenMP spins for a
    // while after a parallel region) have stopped competing for the cores.
    for run in 0..runs.max(1) {
        let (mut engine_run, mut bare_run) = (Speed::default(), Speed::default());
        for engine_turn in [run % 2 == 0, run % 2 == 1] {
            std::thread::sleep(SETTLE);
            if engine_turn {
                let mut session = engine.open_session()?;
                let g = session.generate(conversation, &greedy(tokens, false), &mut |_| true)?;
                engine_run = Speed {
                    prompt_tokens: g.prompt_tokens,
                    prompt_secs: g.prompt_time.as_secs_f64(),
                    generated: g.generated_tokens,
                    generation_secs: g.generation_time.as_secs_f64(),
                };
            } else {
                let mut context = bare_context(&bare_model, threads)?;
                bare_run = bare_generate(&bare_model, &mut context, &prompt, tokens)?;
            }
        }
        // Ratios of adjacent runs: a burst of load elsewhere skews one pair, not the median.
        prompt_ratios.push(engine_run.prompt_tps() / bare_run.prompt_tps());
        generation_ratios.push(engine_run.generation_tps() / bare_run.generation_tps());
        engine_speed.add(engine_run);
        bare_speed.add(bare_run);
    }

    // Turn 2: the engine reuses turn 1's cache; the baseline evaluates only the new tokens
    // on top of an already evaluated prefix. Several sessions, medians, to tame noise.
    let mut ttft = Vec::new();
    let mut bare = Vec::new();
    let mut new_tokens = Vec::new();
    for follow_up in follow_ups.iter().cycle().take(runs.max(1) * 2) {
        let mut session = engine.open_session()?;
        let mut conversation = conversation.clone();
        let first = session.generate(&conversation, &greedy(32, true), &mut |_| true)?;
        conversation.turns.push(Turn {
            role: Role::Character,
            text: first.text,
            recalled: vec![],
        });
        conversation.turns.push(Turn {
            role: Role::Player,
            text: follow_up.clone(),
            recalled: vec![],
        });
        let second = session.generate(&conversation, &greedy(8, true), &mut |_| true)?;
        ttft.push(second.time_to_first_token);
        new_tokens.push(second.evaluated_tokens);
        bare.push(bare_new_tokens(
            &bare_model,
            threads,
            &conversation.transcript(),
            second.evaluated_tokens,
        )?);
    }
    let (sample_plain, sample_marked) = sampling_cost(&bare_model, threads, &prompt)?;
    let candidates = candidates_cost(&engine, conversation, tokens, runs)?;
    Ok(GenerationReport {
        candidates,
        sample_plain,
        sample_marked,
        engine: engine_speed,
        bare: bare_speed,
        prompt_ratio: median_f64(&mut prompt_ratios),
        generation_ratio: median_f64(&mut generation_ratios),
        turn2_new_tokens: median(&mut new_tokens),
        turn2_ttft: median(&mut ttft),
        turn2_bare: median(&mut bare),
    })
}

/// Counts of candidate replies measured, the first being the single reply they compare with.
const CANDIDATE_COUNTS: [usize; 4] = [1, 2, 3, 4];

/// The median time to write 1, 2, 3 and 4 replies of `tokens` tokens side by side (sampled at
/// the default settings, each with its own seed), counts interleaved within each run.
fn candidates_cost(
    engine: &EmbeddedBackend,
    conversation: &Conversation,
    tokens: usize,
    runs: usize,
) -> Result<Vec<(usize, Duration)>, GenError> {
    let params = GenParams {
        max_tokens: tokens,
        stop_rules: false,
        ..GenParams::default()
    };
    let mut times = vec![Vec::new(); CANDIDATE_COUNTS.len()];
    for _ in 0..runs.max(1) {
        for (count, times) in CANDIDATE_COUNTS.iter().zip(&mut times) {
            let samplers: Vec<SamplerConfig> = (0..*count as u64)
                .map(|seed| SamplerConfig {
                    seed,
                    ..SamplerConfig::default()
                })
                .collect();
            std::thread::sleep(SETTLE);
            let mut session = engine.open_session()?;
            let started = Instant::now();
            session.generate_candidates(conversation, &params, &samplers, &mut || true)?;
            times.push(started.elapsed());
        }
    }
    Ok(CANDIDATE_COUNTS
        .iter()
        .zip(&mut times)
        .map(|(count, times)| (*count, median(times)))
        .collect())
}

/// Our sampler's time per token on the real logits after `prompt`, without and with the
/// watermark (median of interleaved batches, so that load affects both alike).
fn sampling_cost(
    model: &LlamaModel,
    threads: usize,
    prompt: &str,
) -> Result<(Duration, Duration), GenError> {
    const STEPS: u32 = 200;
    let mut context = bare_context(model, threads)?;
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, false);
    let index = decode(&mut context, &tokens, 0)?;
    let logits = context.get_logits_ith(index).to_vec();
    let watermark = lore_mark::Watermark::new(
        lore_mark::WatermarkKey::from_secret([7; 32]),
        lore_mark::Watermark::DEFAULT_GAMMA,
        lore_mark::Watermark::DEFAULT_DELTA,
        // Bias every step: the most a step can cost.
        1.0,
    )
    .map_err(runtime)?;
    let time = |watermark: Option<lore_mark::Watermark>| {
        let mut sampler = lore_gen::Sampler::new(SamplerConfig::default(), watermark);
        sampler.accept(tokens.last().map_or(0, |t| t.0 as u32));
        let started = Instant::now();
        for _ in 0..STEPS {
            std::hint::black_box(sampler.sample(&logits));
        }
        started.elapsed() / STEPS
    };
    let (mut plain, mut marked) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        plain.push(time(None));
        marked.push(time(Some(watermark.clone())));
    }
    Ok((median(&mut plain), median(&mut marked)))
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median<T: Ord + Copy>(values: &mut [T]) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

fn runtime(e: impl std::fmt::Display) -> GenError {
    GenError::Runtime(e.to_string())
}

fn bare_context(model: &LlamaModel, threads: usize) -> Result<LlamaContext<'_>, GenError> {
    let threads = threads as i32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(N_CTX))
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    model
        .new_context(lore_gen::llama_backend()?, params)
        .map_err(runtime)
}

/// Decodes `tokens` from position `start` in batches; logits for the last one only.
fn decode(
    context: &mut LlamaContext<'_>,
    tokens: &[llama_cpp_2::token::LlamaToken],
    start: usize,
) -> Result<i32, GenError> {
    if tokens.is_empty() {
        return Ok(0);
    }
    let mut batch = LlamaBatch::new(512, 1);
    let mut last = 0;
    for (chunk_index, chunk) in tokens.chunks(512).enumerate() {
        batch.clear();
        for (i, t) in chunk.iter().enumerate() {
            let pos = start + chunk_index * 512 + i;
            batch
                .add(*t, pos as i32, &[0], pos == start + tokens.len() - 1)
                .map_err(runtime)?;
        }
        context.decode(&mut batch).map_err(runtime)?;
        last = batch.n_tokens() - 1;
    }
    Ok(last)
}

/// The bare loop: tokenize, decode the prompt, then pick the argmax and decode, `n` times.
fn bare_generate(
    model: &LlamaModel,
    context: &mut LlamaContext<'_>,
    prompt: &str,
    n: usize,
) -> Result<Speed, GenError> {
    let started = Instant::now();
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, false);
    let mut index = decode(context, &tokens, 0)?;
    let prompt_secs = started.elapsed().as_secs_f64();
    let mut first = None;
    let mut batch = LlamaBatch::new(1, 1);
    for i in 0..n {
        let token = argmax(context.get_logits_ith(index));
        first.get_or_insert_with(Instant::now);
        batch.clear();
        batch
            .add(token, (tokens.len() + i) as i32, &[0], true)
            .map_err(runtime)?;
        context.decode(&mut batch).map_err(runtime)?;
        index = 0;
    }
    Ok(Speed {
        prompt_tokens: tokens.len(),
        prompt_secs,
        generated: n,
        generation_secs: first.map_or(0.0, |f| f.elapsed().as_secs_f64()),
    })
}

/// Time to evaluate the last `new` tokens of `prompt` on top of its evaluated prefix, and
/// pick the next token.
fn bare_new_tokens(
    model: &LlamaModel,
    threads: usize,
    prompt: &str,
    new: usize,
) -> Result<Duration, GenError> {
    let mut context = bare_context(model, threads)?;
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, false);
    let split = tokens.len().saturating_sub(new.max(1));
    decode(&mut context, &tokens[..split], 0)?;
    std::thread::sleep(SETTLE);
    let started = Instant::now();
    let index = decode(&mut context, &tokens[split..], split)?;
    std::hint::black_box(argmax(context.get_logits_ith(index)));
    Ok(started.elapsed())
}

/// The cheapest possible token choice, so the baseline is the bare runtime.
fn argmax(logits: &[f32]) -> LlamaToken {
    let best = logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
            if l > best.1 { (i, l) } else { best }
        });
    LlamaToken(best.0 as i32)
}
