//! Our token sampler: temperature, top-k, top-p, a repetition penalty, a penalty on repeating
//! runs of earlier tokens (DRY), and the watermark, over raw logits.
//!
//! It is ours rather than llama.cpp's because the watermark (a keyed bias on a green list)
//! must be applied at exactly this point, for every backend that exposes logits.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use lore_mark::Watermark;

/// Logits further than this many temperatures below the best cannot be sampled in practice
/// (their probability is under e^-20 of the best one's), so they are never sorted. With a
/// 262k-token vocabulary this keeps sampling to two linear passes.
const CUTOFF_TEMPERATURES: f32 = 20.0;

/// How tokens are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// 0 picks the most likely token.
    pub temperature: f32,
    /// Keep at most this many candidates (0: no limit).
    pub top_k: usize,
    /// Keep the smallest set of candidates whose probability reaches this.
    pub top_p: f32,
    /// Divide positive logits (multiply negative ones) of recent tokens by this.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// The penalty on repeating runs of earlier tokens.
    pub dry: DryConfig,
    /// Seed of the random stream; the same seed and logits give the same tokens.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            repeat_penalty: 1.15,
            repeat_last_n: 64,
            dry: DryConfig::default(),
            seed: 0x5eed,
        }
    }
}

/// "Don't repeat yourself" (DRY, as text-generation-webui and llama.cpp have it): a token that
/// would continue a run of `run ≥ allowed_length` tokens that already stands earlier in the
/// context, as it went on there, loses `multiplier · base^(run − allowed_length)` from its
/// logit. A small base model otherwise copies whole earlier replies from its transcript and,
/// once one copy is in the transcript, repeats it every turn. Runs stop at sequence breakers
/// ([`RunRole::Breaker`]), so the transcript's `Name:` labels and line starts are never a run.
#[derive(Debug, Clone, PartialEq)]
pub struct DryConfig {
    /// 0 turns the penalty off.
    pub multiplier: f32,
    /// How fast the penalty grows with the run's length.
    pub base: f32,
    /// Runs of up to this many tokens repeat freely (names, set phrases).
    pub allowed_length: usize,
}

impl Default for DryConfig {
    /// llama.cpp's recommended values.
    fn default() -> Self {
        DryConfig {
            multiplier: 0.8,
            base: 1.75,
            allowed_length: 2,
        }
    }
}

/// Runs longer than this count as this long: the penalty is already far past any logit.
const DRY_MAX_RUN: usize = 32;

/// How a token takes part in [`DryConfig`]'s runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRole {
    /// Part of a run, and penalised for making one longer.
    Word,
    /// Ends a run and is never penalised: a line break, a colon, a double quote, an asterisk
    /// (llama.cpp's defaults).
    Breaker,
    /// Part of a run but never penalised: a mark that ends a sentence. Penalised, it pushed
    /// the model to end sentences with odd tokens of their own instead (`."`, `.)`).
    SentenceEnd,
}

/// Each token's [`RunRole`], indexed by token id.
pub type RunRoles = Arc<[RunRole]>;

/// A sampler with its random state and recent tokens.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    watermark: Option<Watermark>,
    rng: u64,
    recent: VecDeque<u32>,
    previous: Option<u32>,
    /// Every token seen (prompt included), for DRY; empty while DRY is off.
    history: Vec<u32>,
    run_roles: Option<RunRoles>,
    candidates: Vec<(u32, f32)>,
    biased_steps: usize,
}

impl Sampler {
    /// A fresh sampler; with a watermark, every step it allows is biased toward its green list.
    pub fn new(config: SamplerConfig, watermark: Option<Watermark>) -> Sampler {
        Sampler {
            rng: config.seed,
            recent: VecDeque::with_capacity(config.repeat_last_n),
            previous: None,
            history: Vec::new(),
            run_roles: None,
            candidates: Vec::new(),
            biased_steps: 0,
            watermark,
            config,
        }
    }

    /// Turns DRY on ([`DryConfig`]) with each token's part in runs (DRY needs the vocabulary
    /// to know them, so a sampler without them never applies it).
    pub fn with_run_roles(mut self, roles: RunRoles) -> Sampler {
        if self.config.dry.multiplier > 0.0 {
            self.run_roles = Some(roles);
        }
        self
    }

    /// Steps the watermark biased so far (the others were too certain to touch).
    pub fn biased_steps(&self) -> usize {
        self.biased_steps
    }

    /// Records a token as recent, for the repetition penalty and as the watermark's context
    /// (prompt tokens included).
    pub fn accept(&mut self, token: u32) {
        self.previous = Some(token);
        if self.run_roles.is_some() {
            self.history.push(token);
        }
        if self.config.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.config.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    fn penalised(&self, token: u32, logit: f32) -> f32 {
        if self.config.repeat_penalty == 1.0 || !self.recent.contains(&token) {
            logit
        } else if logit > 0.0 {
            logit / self.config.repeat_penalty
        } else {
            logit * self.config.repeat_penalty
        }
    }

    /// Picks the next token from `logits` (one per vocabulary entry) and records it.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let token = self.choose(logits);
        self.accept(token);
        token
    }

    /// Picks the next token from `logits` without recording it: a caller that may reject it
    /// (a grammar) records the token it keeps with [`Sampler::accept`].
    pub fn choose(&mut self, logits: &[f32]) -> u32 {
        let runs = self.repeated_runs();
        // Measured from the best logit after DRY, so that the tokens DRY lets win are in; the
        // other penalties only lower logits, so a token below the cutoff stays below.
        let max = self.highest_after_dry(logits, &runs);
        let temperature = self.config.temperature.max(0.0);
        let floor = max - CUTOFF_TEMPERATURES * temperature.max(0.05);
        self.candidates.clear();
        for (token, &logit) in logits.iter().enumerate() {
            if logit >= floor {
                self.candidates.push((token as u32, logit));
            }
        }
        let mut candidates = std::mem::take(&mut self.candidates);
        if candidates.is_empty() {
            // Only NaN logits get here; any token is as good as another.
            candidates.push((0, 0.0));
        }
        for c in &mut candidates {
            c.1 = self.penalised(c.0, c.1);
        }
        if !runs.is_empty() {
            for c in &mut candidates {
                if let Some(&run) = runs.get(&c.0) {
                    c.1 -= self.dry_penalty(run);
                }
            }
        }
        if let (Some(watermark), Some(previous)) = (&self.watermark, self.previous)
            && bias_green(watermark, previous, &mut candidates, temperature)
        {
            self.biased_steps += 1;
        }
        candidates.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let chosen = if temperature == 0.0 || candidates.len() == 1 {
            candidates[0].0
        } else {
            if self.config.top_k > 0 {
                candidates.truncate(self.config.top_k);
            }
            let best = candidates[0].1;
            let mut total = 0.0f64;
            let mut probs: Vec<f64> = candidates
                .iter()
                .map(|c| {
                    let p = f64::from((c.1 - best) / temperature).exp();
                    total += p;
                    p
                })
                .collect();
            let mut cumulative = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter_mut().enumerate() {
                *p /= total;
                cumulative += *p;
                if cumulative >= f64::from(self.config.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            let kept_mass: f64 = probs[..keep].iter().sum();
            let mut r = self.next_f64() * kept_mass;
            let mut chosen = candidates[keep - 1].0;
            for (c, p) in candidates.iter().zip(&probs[..keep]) {
                if r < *p {
                    chosen = c.0;
                    break;
                }
                r -= p;
            }
            chosen
        };
        self.candidates = candidates;
        chosen
    }

    /// For DRY: per token that would continue a run of the context of at least the allowed
    /// length, the longest such run. Each earlier place where the context's last token stands
    /// is matched backwards against the context's end, up to a breaker; the token that
    /// followed it there would extend the match. Linear in the context per step, which is
    /// small against a forward pass.
    fn repeated_runs(&self) -> HashMap<u32, usize> {
        let mut runs = HashMap::new();
        let (Some(roles), Some((&last, earlier))) = (&self.run_roles, self.history.split_last())
        else {
            return runs;
        };
        let role = |t: u32| roles.get(t as usize).copied().unwrap_or(RunRole::Word);
        let breaks = |t: u32| role(t) == RunRole::Breaker;
        if breaks(last) {
            return runs;
        }
        let end = self.history.len() - 1;
        for (at, &token) in earlier.iter().enumerate() {
            if token != last {
                continue;
            }
            let next = self.history[at + 1];
            if role(next) != RunRole::Word {
                continue;
            }
            let mut run = 1;
            while run < DRY_MAX_RUN
                && run <= at
                && self.history[at - run] == self.history[end - run]
                && !breaks(self.history[at - run])
            {
                run += 1;
            }
            if run >= self.config.dry.allowed_length {
                let longest = runs.entry(next).or_insert(0);
                *longest = run.max(*longest);
            }
        }
        runs
    }

    /// What DRY takes from the logit of a token that would extend a run of `run` tokens.
    fn dry_penalty(&self, run: usize) -> f32 {
        let dry = &self.config.dry;
        dry.multiplier * dry.base.powi((run - dry.allowed_length) as i32)
    }

    /// The highest of `logits` once DRY has lowered the tokens in `runs`. The plain maximum
    /// (a pass the compiler vectorises) unless DRY lowers the best token itself; only then is
    /// the vocabulary passed over again without the penalised tokens.
    fn highest_after_dry(&self, logits: &[f32], runs: &HashMap<u32, usize>) -> f32 {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let logit = |token: u32| logits.get(token as usize).copied();
        if runs.keys().all(|&t| logit(t).is_none_or(|l| l < max)) {
            return max;
        }
        let mut rest = f32::NEG_INFINITY;
        for (token, &l) in logits.iter().enumerate() {
            if l > rest && !runs.contains_key(&(token as u32)) {
                rest = l;
            }
        }
        runs.iter()
            .filter_map(|(&t, &run)| logit(t).map(|l| l - self.dry_penalty(run)))
            .fold(rest, f32::max)
    }

    /// SplitMix64: small, fast, and reproducible across platforms.
    fn next_f64(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Adds δ to the tempered logit of every green candidate, unless the likeliest candidate is
/// already at least `spike` probable: there the model is sure (a name, a fixed phrase) and a
/// bias could only push it into an odd word. Greedy decoding is biased at temperature 1.
/// Returns whether the step was biased.
fn bias_green(
    watermark: &Watermark,
    previous: u32,
    candidates: &mut [(u32, f32)],
    temperature: f32,
) -> bool {
    let scale = if temperature > 0.0 { temperature } else { 1.0 };
    let best = candidates
        .iter()
        .map(|c| c.1)
        .fold(f32::NEG_INFINITY, f32::max);
    let mass: f32 = candidates
        .iter()
        .map(|c| ((c.1 - best) / scale).exp())
        .sum();
    if mass.recip() >= watermark.spike() {
        return false;
    }
    let green = watermark.green_list(previous);
    let bias = watermark.delta() * scale;
    for c in candidates.iter_mut().filter(|c| green.contains(c.0)) {
        c.1 += bias;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_temperature_is_argmax() {
        let mut s = Sampler::new(
            SamplerConfig {
                temperature: 0.0,
                ..SamplerConfig::default()
            },
            None,
        );
        assert_eq!(s.sample(&[0.1, 3.0, 2.9, -1.0]), 1);
    }

    #[test]
    fn repetition_penalty_changes_the_argmax() {
        let mut s = Sampler::new(
            SamplerConfig {
                temperature: 0.0,
                repeat_penalty: 2.0,
                ..SamplerConfig::default()
            },
            None,
        );
        s.accept(1);
        assert_eq!(s.sample(&[0.1, 3.0, 2.9, -1.0]), 2);
    }

    #[test]
    fn same_seed_same_tokens_and_distribution_roughly_right() {
        let logits = [1.0f32, 1.0, 0.0, -50.0];
        let config = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            ..SamplerConfig::default()
        };
        let run = || {
            let mut s = Sampler::new(config.clone(), None);
            (0..4000).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let count = |t| a.iter().filter(|&&x| x == t).count() as f64 / a.len() as f64;
        // Softmax of [1, 1, 0]: 0.42, 0.42, 0.16.
        assert!((count(0) - 0.42).abs() < 0.04, "{}", count(0));
        assert!((count(2) - 0.16).abs() < 0.03, "{}", count(2));
        assert_eq!(count(3), 0.0);
    }

    /// A greedy sampler with DRY (multiplier 1, base 2, runs of 2 free) over a vocabulary of
    /// ten tokens with `roles`, that has seen `history`.
    fn dry_sampler(roles: [RunRole; 10], history: &[u32]) -> Sampler {
        let config = SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 1.0,
            dry: DryConfig {
                multiplier: 1.0,
                base: 2.0,
                allowed_length: 2,
            },
            ..SamplerConfig::default()
        };
        let mut s = Sampler::new(config, None).with_run_roles(Arc::from(roles));
        for &t in history {
            s.accept(t);
        }
        s
    }

    #[test]
    fn dry_pushes_the_model_off_a_run_it_already_wrote() {
        // 1 2 3 4 ... 1 2 3: writing 4 would repeat a run of three, so it loses 2^(3-2) = 2
        // and the runner-up (0.5 behind) wins. A run of one (after "9 3") is free.
        let logits = [0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.5, 0.0];
        let words = [RunRole::Word; 10];
        assert_eq!(
            dry_sampler(words, &[1, 2, 3, 4, 5, 9, 1, 2, 3]).sample(&logits),
            8
        );
        assert_eq!(
            dry_sampler(words, &[1, 2, 3, 4, 5, 2, 9, 3]).sample(&logits),
            4
        );
        // The runner-up 1.5 behind, past greedy decoding's cut-off from the best logit: the
        // cut-off is measured after DRY, so the copy still loses.
        let far = [0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.5, 0.0];
        assert_eq!(
            dry_sampler(words, &[1, 2, 3, 4, 5, 9, 1, 2, 3]).sample(&far),
            8
        );
        // Without the vocabulary's roles there is no DRY.
        let mut plain = Sampler::new(dry_sampler(words, &[]).config.clone(), None);
        for t in [1, 2, 3, 4, 5, 9, 1, 2, 3] {
            plain.accept(t);
        }
        assert_eq!(plain.sample(&logits), 4);
    }

    #[test]
    fn breakers_end_runs_and_sentence_ends_are_never_penalised() {
        let logits = [0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.5, 0.0];
        let history = [1, 2, 3, 4, 5, 9, 1, 2, 3];
        // A breaker at 2 cuts the run to one token: free.
        let mut roles = [RunRole::Word; 10];
        roles[2] = RunRole::Breaker;
        assert_eq!(dry_sampler(roles, &history).sample(&logits), 4);
        // A run may go through a sentence's end, but the end itself is never pushed away.
        let mut roles = [RunRole::Word; 10];
        roles[4] = RunRole::SentenceEnd;
        assert_eq!(dry_sampler(roles, &history).sample(&logits), 4);
        roles[2] = RunRole::SentenceEnd;
        roles[4] = RunRole::Word;
        assert_eq!(dry_sampler(roles, &history).sample(&logits), 8);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(
            SamplerConfig {
                top_k: 1,
                repeat_penalty: 1.0,
                ..SamplerConfig::default()
            },
            None,
        );
        for _ in 0..50 {
            assert_eq!(s.sample(&[0.0, 0.5, 0.4]), 1);
        }
    }

    fn watermark(spike: f32) -> Watermark {
        Watermark::new(
            lore_mark::WatermarkKey::from_secret([3; 32]),
            0.25,
            2.0,
            spike,
        )
        .unwrap()
    }

    #[test]
    fn watermark_favours_green_tokens_where_the_model_is_unsure() {
        let w = watermark(0.9);
        let config = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            ..SamplerConfig::default()
        };
        let mut s = Sampler::new(config, Some(w.clone()));
        // The watermark needs a preceding token; the prompt's last one serves for the first.
        s.accept(0);
        let flat = vec![0.0f32; 1_000];
        let mut green = 0;
        for _ in 0..2_000 {
            let previous = s.previous.expect("a token was accepted");
            let token = s.sample(&flat);
            green += usize::from(w.green_list(previous).contains(token));
        }
        // Green share 0.25 with e^2 weight: 0.25e^2 / (0.25e^2 + 0.75) = 0.71.
        let share = green as f64 / 2_000.0;
        assert!((share - 0.71).abs() < 0.04, "green share {share}");
        assert_eq!(s.biased_steps(), 2_000);
    }

    #[test]
    fn a_certain_step_is_left_alone() {
        let mut logits = vec![0.0f32; 1_000];
        logits[17] = 12.0;
        let mut s = Sampler::new(
            SamplerConfig {
                temperature: 1.0,
                ..SamplerConfig::default()
            },
            Some(watermark(0.9)),
        );
        s.accept(5);
        for _ in 0..200 {
            assert_eq!(s.sample(&logits), 17);
        }
        assert_eq!(s.biased_steps(), 0);
    }
}
