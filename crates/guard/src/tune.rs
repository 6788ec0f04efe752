//! The encoder's two upper layers fine-tuned on one policy's own texts (SetFit), so that the
//! topic heads read embeddings that carry the policy's distinctions.
//!
//! A frozen sentence encoder places "a pint at the tavern" and "a cup of tea at the inn" close
//! together; a head over it can only draw a line through that space. Tuning moves the texts
//! of one policy node together and those of different nodes apart (the cosine of a pair
//! pulled to 1 or 0, a mean squared loss), so that an unseen line which means what a topic's
//! examples mean lands among them. Only the upper two of six layers are tuned: on the
//! development data that gives as much as tuning all six (docs/benchmarks.md), and
//! the four lower layers' states of each text are computed once and read every round.
//!
//! The arithmetic is `f32` throughout, with the matrix products in `ndarray` (its threads share
//! each product's output blocks, so the sums do not depend on the number of threads). The
//! backward pass is written out for one layer (self-attention, GELU feed-forward, two layer
//! norms) and checked against central differences in the tests.

use std::collections::BTreeMap;
use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::iter::{IndexedParallelIterator, IntoParallelIterator, ParallelIterator};
use rayon::slice::{ParallelSlice, ParallelSliceMut};

use lore_canon::cache::{FNV_START, fnv};

use crate::encoder::{dot, erf, gelu};
use crate::layer::{
    DIMENSION, HEAD_WIDTH, HEADS, LAYER_NORM_EPS, LAYER_VALUES, LayerParameters, Part, QKV,
};

impl LayerParameters {
    /// A layer of small random weights and gains near one, as a trained one roughly is.
    fn random(random: &mut SplitMix) -> LayerParameters {
        let mut layer = LayerParameters::zeros();
        for part in Part::ALL {
            let (centre, spread) = match part {
                Part::AttentionNormGain | Part::OutNormGain => (1.0, 0.2),
                Part::QueryKeyValue | Part::AttentionOut | Part::Up | Part::Down => (0.0, 0.08),
                _ => (0.0, 0.05),
            };
            for v in layer.part_mut(part) {
                *v = centre + spread * random.unit();
            }
        }
        layer
    }
}

/// A batch of texts as one matrix of rows (every text's word pieces, [`DIMENSION`] wide), and
/// which rows are whose.
struct Batch {
    spans: Vec<Range<usize>>,
    rows: usize,
}

/// What a layer's forward pass keeps for its backward pass.
struct Saved {
    input: Vec<f32>,
    qkv: Vec<f32>,
    /// Per text, per head, the attention probabilities (`rows × rows`).
    probabilities: Vec<f32>,
    context: Vec<f32>,
    attention_norm: Normalised,
    /// The attention block's output (the feed-forward's input).
    middle: Vec<f32>,
    up: Vec<f32>,
    activated: Vec<f32>,
    out_norm: Normalised,
}

/// A layer norm's normalised rows and each row's inverse deviation.
struct Normalised {
    unit: Vec<f32>,
    inverse: Vec<f32>,
}

/// `x · Wᵀ + bias` for `x` `[rows, inputs]` and `W` `[outputs, inputs]`.
fn linear(x: &[f32], rows: usize, weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let outputs = bias.len();
    let inputs = weight.len() / outputs;
    let mut y: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
    general_mat_mul(
        1.0,
        &view(x, rows, inputs),
        &view(weight, outputs, inputs).t(),
        1.0,
        &mut view_mut(&mut y, rows, outputs),
    );
    y
}

/// The gradients of [`linear`] given the output's `dy`: adds to the weight's and bias's, and
/// returns the input's (unless not `wanted`).
fn linear_backward(
    x: &[f32],
    dy: &[f32],
    rows: usize,
    weight: &[f32],
    (d_weight, d_bias): (&mut [f32], &mut [f32]),
    wanted: bool,
) -> Vec<f32> {
    let outputs = d_bias.len();
    let inputs = weight.len() / outputs;
    let dy_view = view(dy, rows, outputs);
    general_mat_mul(
        1.0,
        &dy_view.t(),
        &view(x, rows, inputs),
        1.0,
        &mut view_mut(d_weight, outputs, inputs),
    );
    for row in dy.chunks_exact(outputs) {
        d_bias.iter_mut().zip(row).for_each(|(b, d)| *b += d);
    }
    if !wanted {
        return Vec::new();
    }
    let mut dx = vec![0.0; rows * inputs];
    general_mat_mul(
        1.0,
        &dy_view,
        &view(weight, outputs, inputs),
        0.0,
        &mut view_mut(&mut dx, rows, inputs),
    );
    dx
}

fn view(values: &[f32], rows: usize, columns: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, columns), values).unwrap_or_else(|_| shape_bug())
}

fn view_mut(values: &mut [f32], rows: usize, columns: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, columns), values).unwrap_or_else(|_| shape_bug())
}

/// Every shape here follows from the constants and a batch's row count.
fn shape_bug() -> ! {
    unreachable!("a matrix's shape does not match its values")
}

/// Layer norm of each row of `x` in place; returns what its backward pass needs.
fn norm_forward(x: &mut [f32], gain: &[f32], bias: &[f32]) -> Normalised {
    let mut unit = Vec::with_capacity(x.len());
    let mut inverse = Vec::with_capacity(x.len() / DIMENSION);
    for row in x.chunks_exact_mut(DIMENSION) {
        let n = DIMENSION as f32;
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + LAYER_NORM_EPS).sqrt();
        inverse.push(inv);
        for ((v, g), b) in row.iter_mut().zip(gain).zip(bias) {
            let u = (*v - mean) * inv;
            unit.push(u);
            *v = u * g + b;
        }
    }
    Normalised { unit, inverse }
}

/// The input's gradient of a layer norm given the output's `dy`; adds to the gain's and
/// bias's.
fn norm_backward(
    saved: &Normalised,
    dy: &[f32],
    gain: &[f32],
    (d_gain, d_bias): (&mut [f32], &mut [f32]),
) -> Vec<f32> {
    let mut dx = Vec::with_capacity(dy.len());
    for ((dy, unit), inv) in dy
        .chunks_exact(DIMENSION)
        .zip(saved.unit.chunks_exact(DIMENSION))
        .zip(&saved.inverse)
    {
        let mut d_unit = [0.0_f32; DIMENSION];
        for i in 0..DIMENSION {
            d_gain[i] += dy[i] * unit[i];
            d_bias[i] += dy[i];
            d_unit[i] = dy[i] * gain[i];
        }
        let n = DIMENSION as f32;
        let mean = d_unit.iter().sum::<f32>() / n;
        let mean_along = d_unit.iter().zip(unit).map(|(d, u)| d * u).sum::<f32>() / n;
        dx.extend(
            d_unit
                .iter()
                .zip(unit)
                .map(|(d, u)| inv * (d - mean - u * mean_along)),
        );
    }
    dx
}

/// d gelu(x) / dx = Φ(x) + x·φ(x).
fn gelu_slope(x: f32) -> f32 {
    let density = (-0.5 * x * x).exp() / (2.0 * std::f32::consts::PI).sqrt();
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)) + x * density
}

/// Multi-head self-attention of each text of the batch on its own rows; returns the context
/// and the probabilities.
fn attention_forward(qkv: &[f32], batch: &Batch) -> (Vec<f32>, Vec<f32>) {
    let scale = 1.0 / (HEAD_WIDTH as f32).sqrt();
    let mut context = vec![0.0_f32; batch.rows * DIMENSION];
    let mut probabilities = Vec::new();
    for span in &batch.spans {
        let rows = span.len();
        for head in 0..HEADS {
            let at = |row: usize, part: usize| {
                &qkv[(span.start + row) * QKV + part * DIMENSION + head * HEAD_WIDTH..]
                    [..HEAD_WIDTH]
            };
            for i in 0..rows {
                let query = at(i, 0);
                let mut scores: Vec<f32> =
                    (0..rows).map(|j| scale * dot(query, at(j, 1))).collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                scores.iter_mut().for_each(|s| *s = (*s - max).exp());
                let total: f32 = scores.iter().sum();
                scores.iter_mut().for_each(|s| *s /= total);
                let out =
                    &mut context[(span.start + i) * DIMENSION + head * HEAD_WIDTH..][..HEAD_WIDTH];
                for (j, p) in scores.iter().enumerate() {
                    out.iter_mut().zip(at(j, 2)).for_each(|(o, v)| *o += p * v);
                }
                probabilities.extend(scores);
            }
        }
    }
    (context, probabilities)
}

/// The gradient of [`attention_forward`]'s input given the context's `d_context`.
fn attention_backward(
    qkv: &[f32],
    probabilities: &[f32],
    d_context: &[f32],
    batch: &Batch,
) -> Vec<f32> {
    let scale = 1.0 / (HEAD_WIDTH as f32).sqrt();
    let mut d_qkv = vec![0.0_f32; qkv.len()];
    let mut offset = 0;
    for span in &batch.spans {
        let rows = span.len();
        for head in 0..HEADS {
            let column = |row: usize, part: usize| {
                (span.start + row) * QKV + part * DIMENSION + head * HEAD_WIDTH
            };
            let p = &probabilities[offset..][..rows * rows];
            offset += rows * rows;
            for i in 0..rows {
                let d_out =
                    &d_context[(span.start + i) * DIMENSION + head * HEAD_WIDTH..][..HEAD_WIDTH];
                let p_row = &p[i * rows..][..rows];
                // dP_ij = dctx_i · v_j; dv_j += P_ij dctx_i.
                let d_p: Vec<f32> = (0..rows)
                    .map(|j| dot(d_out, &qkv[column(j, 2)..][..HEAD_WIDTH]))
                    .collect();
                for (j, &pij) in p_row.iter().enumerate() {
                    let dv = &mut d_qkv[column(j, 2)..][..HEAD_WIDTH];
                    dv.iter_mut().zip(d_out).for_each(|(d, o)| *d += pij * o);
                }
                // Through the softmax: dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik).
                let along = dot(p_row, &d_p);
                for j in 0..rows {
                    let d_score = scale * p_row[j] * (d_p[j] - along);
                    for d in 0..HEAD_WIDTH {
                        d_qkv[column(i, 0) + d] += d_score * qkv[column(j, 1) + d];
                        d_qkv[column(j, 1) + d] += d_score * qkv[column(i, 0) + d];
                    }
                }
            }
        }
    }
    d_qkv
}

impl LayerParameters {
    /// The layer on `input` (`batch.rows` rows), and what its backward pass needs.
    fn forward(&self, input: Vec<f32>, batch: &Batch) -> (Vec<f32>, Saved) {
        let rows = batch.rows;
        let qkv = linear(
            &input,
            rows,
            self.part(Part::QueryKeyValue),
            self.part(Part::QueryKeyValueBias),
        );
        let (context, probabilities) = attention_forward(&qkv, batch);
        // Each block: a linear layer, the block's input added back, a layer norm.
        let block = |x: &[f32], residual: &[f32], [weight, bias, gain, shift]: [Part; 4]| {
            let mut y = linear(x, rows, self.part(weight), self.part(bias));
            y.iter_mut().zip(residual).for_each(|(y, r)| *y += r);
            let norm = norm_forward(&mut y, self.part(gain), self.part(shift));
            (y, norm)
        };
        let (middle, attention_norm) = block(
            &context,
            &input,
            [
                Part::AttentionOut,
                Part::AttentionOutBias,
                Part::AttentionNormGain,
                Part::AttentionNormBias,
            ],
        );
        let up = linear(&middle, rows, self.part(Part::Up), self.part(Part::UpBias));
        let activated: Vec<f32> = up.iter().map(|&u| gelu(u)).collect();
        let (out, out_norm) = block(
            &activated,
            &middle,
            [
                Part::Down,
                Part::DownBias,
                Part::OutNormGain,
                Part::OutNormBias,
            ],
        );
        let saved = Saved {
            input,
            qkv,
            probabilities,
            context,
            attention_norm,
            middle,
            up,
            activated,
            out_norm,
        };
        (out, saved)
    }

    /// Adds the parameters' gradients given the output's `d_out` to `grad`, and returns the
    /// input's (unless not `wanted`).
    fn backward(
        &self,
        saved: &Saved,
        d_out: &[f32],
        batch: &Batch,
        grad: &mut LayerParameters,
        wanted: bool,
    ) -> Vec<f32> {
        let rows = batch.rows;
        let mut d_middle = norm_backward(
            &saved.out_norm,
            d_out,
            self.part(Part::OutNormGain),
            grad.parts(Part::OutNormGain, Part::OutNormBias),
        );
        let d_activated = linear_backward(
            &saved.activated,
            &d_middle,
            rows,
            self.part(Part::Down),
            grad.parts(Part::Down, Part::DownBias),
            true,
        );
        let d_up: Vec<f32> = d_activated
            .iter()
            .zip(&saved.up)
            .map(|(d, &u)| d * gelu_slope(u))
            .collect();
        let d_from_up = linear_backward(
            &saved.middle,
            &d_up,
            rows,
            self.part(Part::Up),
            grad.parts(Part::Up, Part::UpBias),
            true,
        );
        d_middle
            .iter_mut()
            .zip(&d_from_up)
            .for_each(|(d, u)| *d += u);
        let mut d_input = norm_backward(
            &saved.attention_norm,
            &d_middle,
            self.part(Part::AttentionNormGain),
            grad.parts(Part::AttentionNormGain, Part::AttentionNormBias),
        );
        let d_context = linear_backward(
            &saved.context,
            &d_input,
            rows,
            self.part(Part::AttentionOut),
            grad.parts(Part::AttentionOut, Part::AttentionOutBias),
            true,
        );
        let d_qkv = attention_backward(&saved.qkv, &saved.probabilities, &d_context, batch);
        let d_from_qkv = linear_backward(
            &saved.input,
            &d_qkv,
            rows,
            self.part(Part::QueryKeyValue),
            grad.parts(Part::QueryKeyValue, Part::QueryKeyValueBias),
            wanted,
        );
        if !wanted {
            return Vec::new();
        }
        d_input
            .iter_mut()
            .zip(&d_from_qkv)
            .for_each(|(d, q)| *d += q);
        d_input
    }

    /// Two parts of a gradient at once, a weight or gain and its bias (the bias follows it).
    fn parts(&mut self, first: Part, second: Part) -> (&mut [f32], &mut [f32]) {
        let (a, b) = (first.range(), second.range());
        let (head, tail) = self.values.split_at_mut(b.start);
        (&mut head[a], &mut tail[..b.len()])
    }
}

/// The upper layers on a batch and the unit-length mean of each text's rows, with what the
/// backward pass needs.
struct Pass {
    saved: Vec<Saved>,
    /// Per text: its pooled embedding before normalising, and its length.
    pooled: Vec<(Vec<f32>, f32)>,
    embeddings: Vec<Vec<f32>>,
}

fn forward(layers: &[LayerParameters], input: Vec<f32>, batch: &Batch) -> Pass {
    let mut hidden = input;
    let mut saved = Vec::with_capacity(layers.len());
    for layer in layers {
        let (out, s) = layer.forward(hidden, batch);
        saved.push(s);
        hidden = out;
    }
    let mut pooled = Vec::new();
    let mut embeddings = Vec::new();
    for span in &batch.spans {
        let mut sum = vec![0.0_f32; DIMENSION];
        for row in hidden[span.start * DIMENSION..span.end * DIMENSION].chunks_exact(DIMENSION) {
            sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        sum.iter_mut().for_each(|s| *s /= span.len() as f32);
        let norm = dot(&sum, &sum).sqrt().max(1e-12);
        embeddings.push(sum.iter().map(|s| s / norm).collect());
        pooled.push((sum, norm));
    }
    Pass {
        saved,
        pooled,
        embeddings,
    }
}

/// Adds to `grads` the parameters' gradients given each embedding's `d_embeddings`.
fn backward(
    layers: &[LayerParameters],
    pass: &Pass,
    d_embeddings: &[Vec<f32>],
    batch: &Batch,
    grads: &mut [LayerParameters],
) {
    let mut d_hidden = vec![0.0_f32; batch.rows * DIMENSION];
    for (((span, embedding), (_, norm)), d_embedding) in batch
        .spans
        .iter()
        .zip(&pass.embeddings)
        .zip(&pass.pooled)
        .zip(d_embeddings)
    {
        // Through normalising (e = m / |m|) and the mean over the text's rows.
        let along = dot(embedding, d_embedding);
        let scale = 1.0 / (norm * span.len() as f32);
        for row in
            d_hidden[span.start * DIMENSION..span.end * DIMENSION].chunks_exact_mut(DIMENSION)
        {
            for ((d, e), de) in row.iter_mut().zip(embedding).zip(d_embedding) {
                *d = (de - e * along) * scale;
            }
        }
    }
    for (index, layer) in layers.iter().enumerate().rev() {
        d_hidden = layer.backward(
            &pass.saved[index],
            &d_hidden,
            batch,
            &mut grads[index],
            index > 0,
        );
    }
}

/// A text to tune on: which class it belongs to (its policy node) and the text itself, each
/// as a key that does not depend on the rest of the policy (what its pairs are drawn by, see
/// [`pairs`]); the lower layers' states of its word pieces (`rows × DIMENSION`); and its
/// embedding before tuning (the texts of other classes nearest it there are its rivals).
pub(crate) struct Text {
    pub(crate) class: u64,
    pub(crate) key: u64,
    pub(crate) states: Vec<f32>,
    pub(crate) embedding: Vec<f32>,
}

/// How many of a text's nearest texts of other classes are its rivals.
const RIVALS: usize = 8;

/// How the layers are tuned: the settings of the probe in docs/benchmarks.md.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// Rounds over the texts; each round pairs every text once with a text of its class and
    /// once with a text of another.
    pub(crate) rounds: usize,
    /// Pairs a step.
    pub(crate) batch: usize,
    /// AdamW's step size and decoupled weight decay.
    pub(crate) learning_rate: f32,
    pub(crate) weight_decay: f32,
    /// Salts every draw of a pair.
    pub(crate) seed: u64,
}

pub(crate) const SCHEDULE: Schedule = Schedule {
    rounds: 5,
    batch: 32,
    learning_rate: 1e-4,
    weight_decay: 0.01,
    seed: 0x005e_7f17,
};

/// SplitMix64's finaliser: a bijection of `u64` whose output bits each depend on every input
/// bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: a small generator whose sequence is fixed (the tests' and the trainer
/// fingerprint's random layers).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in [−1, 1].
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Per text, the [`RIVALS`] texts of other classes nearest it before tuning, nearest first.
fn rivals(texts: &[Text]) -> Vec<Vec<usize>> {
    (0..texts.len())
        .into_par_iter()
        .map(|i| {
            let mut near: Vec<(f32, usize)> = texts
                .iter()
                .enumerate()
                .filter(|(_, t)| t.class != texts[i].class)
                .map(|(j, t)| (dot(&texts[i].embedding, &t.embedding), j))
                .collect();
            let keep = RIVALS.min(near.len());
            if keep > 0 {
                near.select_nth_unstable_by(keep - 1, |a, b| {
                    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                });
            }
            near.truncate(keep);
            near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            near.into_iter().map(|(_, j)| j).collect()
        })
        .collect()
}

/// What a pair is drawn for: each a salt of [`draw`].
#[derive(Clone, Copy)]
enum Choice {
    OwnClass = 1,
    RivalOrClass,
    Rival,
    OtherClass,
    OtherText,
    Order,
}

/// A text's draw for `choice` against a candidate (a text's or a class's key) in a round:
/// fixed by those alone, so the same on every run, build and policy.
fn draw(schedule: &Schedule, round: usize, choice: Choice, key: u64, candidate: u64) -> u64 {
    let salt = mix(schedule.seed ^ mix(round as u64 ^ ((choice as u64) << 32)));
    mix(key ^ mix(candidate ^ salt))
}

/// Of `candidates`, the first whose draw is least. Rendezvous hashing: a candidate added or
/// removed changes the choice only where it is, or was, the least.
fn least<T: Copy>(candidates: impl IntoIterator<Item = T>, draw: impl Fn(T) -> u64) -> Option<T> {
    candidates
        .into_iter()
        .min_by_key(|&candidate| draw(candidate))
}

/// The pairs of a schedule: text indices and the cosine they are pulled to, in the order they
/// are taught. Per round each text is paired with a text of its class, and with one of
/// another: half the time a rival (one of the texts of other classes nearest it before
/// tuning: the mild insult beside the strong one, the pint of milk beside the pint of ale,
/// which a random pairing seldom meets), else a text of another class, each class as likely.
///
/// Every choice, and a pair's place in the order, is drawn from the keys of the texts and
/// classes it is between ([`draw`], [`least`]), not from one random sequence over the whole
/// policy: an example added to a policy then changes only the few pairs it wins and moves the
/// others along a little, where a sequence would be drawn afresh from that text on and the
/// whole tuning with it.
fn pairs(texts: &[Text], schedule: &Schedule) -> Vec<(usize, usize, f32)> {
    let rivals = rivals(texts);
    let mut members: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, text) in texts.iter().enumerate() {
        members.entry(text.class).or_default().push(i);
    }
    let mut drawn: Vec<(u64, usize, usize, f32)> = (0..schedule.rounds)
        .into_par_iter()
        .flat_map_iter(|round| (0..texts.len()).map(move |i| (round, i)))
        .flat_map_iter(|(round, i)| {
            let key = texts[i].key;
            let class = texts[i].class;
            let text_draw =
                |choice: Choice| move |j: &usize| draw(schedule, round, choice, key, texts[*j].key);
            let same = least(&members[&class], text_draw(Choice::OwnClass));
            let other = if draw(schedule, round, Choice::RivalOrClass, key, 0) & 1 == 0 {
                least(&rivals[i], text_draw(Choice::Rival))
            } else {
                least(members.keys().filter(|&&c| c != class), |c: &u64| {
                    draw(schedule, round, Choice::OtherClass, key, *c)
                })
                .and_then(|c| least(&members[c], text_draw(Choice::OtherText)))
            };
            [same.map(|j| (*j, 1.0)), other.map(|j| (*j, 0.0))]
                .into_iter()
                .flatten()
                .map(move |(j, target)| {
                    let order = draw(schedule, round, Choice::Order, key, texts[j].key);
                    (order, i, j, target)
                })
        })
        .collect();
    drawn.par_sort_unstable_by_key(|&(order, a, b, _)| (order, a, b));
    drawn
        .into_iter()
        .map(|(_, a, b, target)| (a, b, target))
        .collect()
}

/// How far tuning has got, for a progress display: pairs done and in all.
pub(crate) type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Tunes `layers` (the encoder's upper ones, lowest first) on `texts` by `schedule`: per
/// step, the mean over a batch of pairs of (cosine − target)², AdamW.
pub(crate) fn tune(
    layers: &mut [LayerParameters],
    texts: &[Text],
    schedule: &Schedule,
    progress: Progress<'_>,
) {
    let pairs = pairs(texts, schedule);
    let mut adam = AdamW::new(layers.len(), schedule);
    let zeros =
        || -> Vec<LayerParameters> { layers.iter().map(|_| LayerParameters::zeros()).collect() };
    let (mut grads, mut second_half) = (zeros(), zeros());
    for (step, chunk) in pairs.chunks(schedule.batch.max(1)).enumerate() {
        // The batch's two halves on two threads, each into its own gradients, added in a
        // fixed order: the sums do not depend on which thread ran first.
        let (first, second) = chunk.split_at(chunk.len() / 2);
        for g in grads.iter_mut().chain(&mut second_half) {
            g.values.iter_mut().for_each(|v| *v = 0.0);
        }
        let layers_now: &[LayerParameters] = layers;
        rayon::join(
            || pair_gradients(layers_now, texts, first, &mut grads),
            || pair_gradients(layers_now, texts, second, &mut second_half),
        );
        for (g, h) in grads.iter_mut().zip(&second_half) {
            g.values
                .iter_mut()
                .zip(&h.values)
                .for_each(|(g, h)| *g += h);
        }
        adam.step(layers, &grads, step + 1);
        progress(
            (step * schedule.batch + chunk.len()).min(pairs.len()),
            pairs.len(),
        );
    }
}

/// What this build's [`tune`] makes of a fixed toy problem, hashed: layers kept on disk by a
/// build that tunes differently (other settings or arithmetic) are not taken for this one's.
pub(crate) fn trainer_fingerprint() -> u64 {
    let mut random = SplitMix(SCHEDULE.seed);
    let mut layers: Vec<LayerParameters> = (0..2)
        .map(|_| LayerParameters::random(&mut random))
        .collect();
    let texts: Vec<Text> = [2, 3, 2, 4]
        .iter()
        .enumerate()
        .map(|(i, rows)| Text {
            class: i as u64 / 2,
            key: i as u64,
            states: (0..rows * DIMENSION).map(|_| random.unit()).collect(),
            embedding: vec![random.unit(), random.unit()],
        })
        .collect();
    let schedule = Schedule {
        rounds: 1,
        batch: 4,
        ..SCHEDULE
    };
    tune(&mut layers, &texts, &schedule, &|_, _| ());
    layers
        .iter()
        .flat_map(|l| &l.values)
        .fold(FNV_START, |hash, value| fnv(hash, &value.to_le_bytes()))
}

/// The loss of a batch of pairs, adding its parameters' gradients to `grads`.
fn pair_gradients(
    layers: &[LayerParameters],
    texts: &[Text],
    pairs: &[(usize, usize, f32)],
    grads: &mut [LayerParameters],
) -> f32 {
    // Each pair's two texts are rows of one batch, first of the pair at 2k, second at 2k+1.
    let mut input = Vec::new();
    let mut spans = Vec::new();
    for &(a, b, _) in pairs {
        for index in [a, b] {
            let start = input.len() / DIMENSION;
            input.extend_from_slice(&texts[index].states);
            spans.push(start..input.len() / DIMENSION);
        }
    }
    let batch = Batch {
        rows: input.len() / DIMENSION,
        spans,
    };
    let pass = forward(layers, input, &batch);
    let n = pairs.len() as f32;
    let mut loss = 0.0;
    let mut d_embeddings = Vec::with_capacity(2 * pairs.len());
    for (k, &(_, _, target)) in pairs.iter().enumerate() {
        let (a, b) = (&pass.embeddings[2 * k], &pass.embeddings[2 * k + 1]);
        let error = dot(a, b) - target;
        loss += error * error / n;
        let d_cosine = 2.0 * error / n;
        d_embeddings.push(b.iter().map(|v| d_cosine * v).collect());
        d_embeddings.push(a.iter().map(|v| d_cosine * v).collect());
    }
    backward(layers, &pass, &d_embeddings, &batch, grads);
    loss
}

/// AdamW as PyTorch's: decoupled weight decay, bias-corrected moments.
struct AdamW {
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
    learning_rate: f32,
    weight_decay: f32,
}

impl AdamW {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPSILON: f32 = 1e-8;

    fn new(layers: usize, schedule: &Schedule) -> AdamW {
        AdamW {
            first: vec![vec![0.0; LAYER_VALUES]; layers],
            second: vec![vec![0.0; LAYER_VALUES]; layers],
            learning_rate: schedule.learning_rate,
            weight_decay: schedule.weight_decay,
        }
    }

    fn step(&mut self, layers: &mut [LayerParameters], grads: &[LayerParameters], step: usize) {
        let t = step as i32;
        let correction1 = 1.0 - Self::BETA1.powi(t);
        let root_correction2 = (1.0 - Self::BETA2.powi(t)).sqrt();
        let decay = 1.0 - self.learning_rate * self.weight_decay;
        for (((layer, grad), m), v) in layers
            .iter_mut()
            .zip(grads)
            .zip(&mut self.first)
            .zip(&mut self.second)
        {
            // Each value on its own: shared out among the threads in runs.
            const RUN: usize = 1 << 16;
            let learning_rate = self.learning_rate;
            layer
                .values
                .par_chunks_mut(RUN)
                .zip(grad.values.par_chunks(RUN))
                .zip(m.par_chunks_mut(RUN))
                .zip(v.par_chunks_mut(RUN))
                .for_each(|(((p, g), m), v)| {
                    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                        *p *= decay;
                        *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
                        *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
                        let denominator = v.sqrt() / root_correction2 + Self::EPSILON;
                        *p -= learning_rate * (*m / correction1) / denominator;
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_texts(random: &mut SplitMix, lengths: &[usize]) -> Vec<Text> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, &rows)| Text {
                class: i as u64 % 2,
                key: i as u64,
                states: (0..rows * DIMENSION).map(|_| random.unit()).collect(),
                embedding: vec![random.unit(), random.unit()],
            })
            .collect()
    }

    #[test]
    fn the_backward_pass_matches_central_differences() {
        let mut random = SplitMix(7);
        let layers = vec![
            LayerParameters::random(&mut random),
            LayerParameters::random(&mut random),
        ];
        let texts = random_texts(&mut random, &[3, 5, 4, 2]);
        let pairs = [(0, 1, 0.9), (2, 3, -0.3), (1, 2, 0.5)];
        let mut grads = vec![LayerParameters::zeros(), LayerParameters::zeros()];
        pair_gradients(&layers, &texts, &pairs, &mut grads);
        let loss_with = |layers: &[LayerParameters]| {
            let mut scratch = vec![LayerParameters::zeros(), LayerParameters::zeros()];
            f64::from(pair_gradients(layers, &texts, &pairs, &mut scratch))
        };
        // Per layer and part (query, key and value apart), the coordinates with the largest
        // gradients (the others are below what a difference in f32 resolves).
        let regions: Vec<(Part, Range<usize>)> = Part::ALL
            .iter()
            .flat_map(|&part| {
                let range = part.range();
                let thirds = matches!(part, Part::QueryKeyValue | Part::QueryKeyValueBias);
                let pieces = if thirds { 3 } else { 1 };
                let width = range.len() / pieces;
                (0..pieces)
                    .map(move |k| (part, range.start + k * width..range.start + (k + 1) * width))
            })
            .collect();
        let mut checked = 0;
        for (l, grad) in grads.iter().enumerate() {
            for (part, range) in &regions {
                let mut order: Vec<usize> = range.clone().collect();
                order.sort_by(|a, b| grad.values[*b].abs().total_cmp(&grad.values[*a].abs()));
                for &i in order.iter().take(3) {
                    let h = 1e-2_f32;
                    let mut plus = layers.clone();
                    plus[l].values[i] += h;
                    let mut minus = layers.clone();
                    minus[l].values[i] -= h;
                    let numeric = (loss_with(&plus) - loss_with(&minus)) / (2.0 * f64::from(h));
                    let analytic = f64::from(grad.values[i]);
                    let error = (numeric - analytic).abs() / analytic.abs().max(1e-3);
                    assert!(
                        error < 0.05,
                        "layer {l} {part:?} value {i}: backward {analytic}, differences {numeric}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * 16 * 3);
    }

    #[test]
    fn tuning_pulls_a_class_together_and_pushes_classes_apart() {
        let mut random = SplitMix(11);
        let mut layers = vec![
            LayerParameters::random(&mut random),
            LayerParameters::random(&mut random),
        ];
        let texts = random_texts(&mut random, &[4, 3, 5, 4, 3, 6, 2, 4]);
        let all: Vec<(usize, usize, f32)> = (0..texts.len())
            .flat_map(|a| (0..texts.len()).map(move |b| (a, b)))
            .filter(|(a, b)| a < b)
            .map(|(a, b)| (a, b, if a % 2 == b % 2 { 1.0 } else { 0.0 }))
            .collect();
        let loss = |layers: &[LayerParameters]| {
            let mut scratch = vec![LayerParameters::zeros(), LayerParameters::zeros()];
            pair_gradients(layers, &texts, &all, &mut scratch)
        };
        let before = loss(&layers);
        let schedule = Schedule {
            rounds: 20,
            batch: 4,
            learning_rate: 1e-3,
            ..SCHEDULE
        };
        tune(&mut layers, &texts, &schedule, &|_, _| ());
        let after = loss(&layers);
        assert!(after < before / 2.0, "loss {before} -> {after}");
    }

    /// Texts of `(class, place on a line)`, keyed by their place in the list.
    fn placed_texts(placed: &[(u64, f32)]) -> Vec<Text> {
        placed
            .iter()
            .enumerate()
            .map(|(i, &(class, at))| Text {
                class,
                key: mix(i as u64),
                states: Vec::new(),
                embedding: vec![at, 1.0 - at],
            })
            .collect()
    }

    #[test]
    fn each_text_is_paired_with_its_class_and_with_a_rival_or_another_class() {
        // On a line: texts 1 and 2 are the nearest of another class to text 0; class 2 has ten
        // texts further away, the last the furthest.
        let mut placed = vec![(0, 0.0), (1, 0.1), (1, 0.2), (0, 0.15)];
        placed.extend((0..10).map(|k| (2, 5.0 + k as f32)));
        let texts = placed_texts(&placed);
        let schedule = Schedule {
            rounds: 400,
            ..SCHEDULE
        };
        let pairs = pairs(&texts, &schedule);
        assert_eq!(pairs.len(), 2 * schedule.rounds * texts.len());
        for &(a, b, target) in &pairs {
            assert_eq!(texts[a].class == texts[b].class, target == 1.0, "{a} {b}");
        }
        assert_eq!(
            pairs,
            super::pairs(&texts, &schedule),
            "the same on every run"
        );
        let rivals = rivals(&texts);
        assert_eq!(rivals[0].len(), RIVALS);
        assert_eq!(rivals[0][..2], [1, 2]);
        assert!(!rivals[0].contains(&13), "{rivals:?}");
        // A rival is text 0's partner far more often than the furthest text, which only a draw
        // of its class brings.
        let partners = |partner: usize| {
            pairs
                .iter()
                .filter(|p| p.0 == 0 && p.1 == partner && p.2 == 0.0)
                .count()
        };
        let (nearest, furthest) = (partners(1), partners(13));
        assert!(
            nearest > 3 * furthest && furthest > 0,
            "{nearest} {furthest}"
        );
    }

    #[test]
    fn a_text_added_to_the_policy_changes_only_the_pairs_it_wins() {
        let placed: Vec<(u64, f32)> = (0..60).map(|k| (k % 4, k as f32 / 60.0)).collect();
        let texts = placed_texts(&placed);
        let mut grown = placed_texts(&placed);
        grown.push(Text {
            key: mix(1000),
            ..placed_texts(&[(2, 0.5)]).remove(0)
        });
        let schedule = Schedule {
            rounds: 5,
            ..SCHEDULE
        };
        let before = pairs(&texts, &schedule);
        let after = pairs(&grown, &schedule);
        // The new text's own pairs, two a round, and those it took from others, which are
        // all that is lost: the rest keep their partners and their order.
        let new = texts.len();
        let (with_new, without_new): (Vec<(usize, usize, f32)>, Vec<_>) =
            after.into_iter().partition(|p| p.0 == new || p.1 == new);
        let taken = with_new.len() - 2 * schedule.rounds;
        assert!(
            taken * 20 < before.len(),
            "{taken} of {} pairs taken",
            before.len()
        );
        assert_eq!(without_new.len(), before.len() - taken);
        let mut rest = before.iter();
        assert!(
            without_new.iter().all(|p| rest.any(|q| q == p)),
            "the pairs kept are in their order"
        );
    }

    #[test]
    fn the_trainer_fingerprint_is_the_same_on_every_call() {
        assert_eq!(trainer_fingerprint(), trainer_fingerprint());
    }

    #[test]
    fn parts_tile_the_layer() {
        let mut end = 0;
        for part in Part::ALL {
            assert_eq!(part.range().start, end);
            end = part.range().end;
        }
        assert_eq!(end, LAYER_VALUES);
        assert_eq!(LAYER_VALUES, 1_774_464);
    }
}
