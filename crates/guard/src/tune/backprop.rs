//! One encoder layer's forward pass kept for its backward pass, and the backward pass itself
//! (self-attention, GELU feed-forward, two layer norms), in `f32` with `ndarray`'s products.

use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::encoder::{dot, erf, gelu};
use crate::layer::{DIMENSION, HEAD_WIDTH, HEADS, LAYER_NORM_EPS, LayerParameters, Part, QKV};
use crate::tune::pairs::SplitMix;

impl LayerParameters {
    /// A layer of small random weights and gains near one, as a trained one roughly is.
    pub(super) fn random(random: &mut SplitMix) -> LayerParameters {
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
pub(super) struct Batch {
    pub(super) spans: Vec<Range<usize>>,
    pub(super) rows: usize,
}

/// What a layer's forward pass keeps for its backward pass.
pub(super) struct Saved {
    pub(super) input: Vec<f32>,
    pub(super) qkv: Vec<f32>,
    /// Per text, per head, the attention probabilities (`rows × rows`).
    pub(super) probabilities: Vec<f32>,
    pub(super) context: Vec<f32>,
    pub(super) attention_norm: Normalised,
    /// The attention block's output (the feed-forward's input).
    pub(super) middle: Vec<f32>,
    pub(super) up: Vec<f32>,
    pub(super) activated: Vec<f32>,
    pub(super) out_norm: Normalised,
}

/// A layer norm's normalised rows and each row's inverse deviation.
pub(super) struct Normalised {
    unit: Vec<f32>,
    inverse: Vec<f32>,
}

/// `x · Wᵀ + bias` for `x` `[rows, inputs]` and `W` `[outputs, inputs]`.
pub(super) fn linear(x: &[f32], rows: usize, weight: &[f32], bias: &[f32]) -> Vec<f32> {
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
pub(super) fn linear_backward(
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

pub(super) fn view(values: &[f32], rows: usize, columns: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, columns), values).unwrap_or_else(|_| shape_bug())
}

pub(super) fn view_mut(values: &mut [f32], rows: usize, columns: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, columns), values).unwrap_or_else(|_| shape_bug())
}

/// Every shape here follows from the constants and a batch's row count.
pub(super) fn shape_bug() -> ! {
    unreachable!("a matrix's shape does not match its values")
}

/// Layer norm of each row of `x` in place; returns what its backward pass needs.
pub(super) fn norm_forward(x: &mut [f32], gain: &[f32], bias: &[f32]) -> Normalised {
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
pub(super) fn norm_backward(
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
pub(super) fn gelu_slope(x: f32) -> f32 {
    let density = (-0.5 * x * x).exp() / (2.0 * std::f32::consts::PI).sqrt();
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)) + x * density
}

/// Multi-head self-attention of each text of the batch on its own rows; returns the context
/// and the probabilities.
pub(super) fn attention_forward(qkv: &[f32], batch: &Batch) -> (Vec<f32>, Vec<f32>) {
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
pub(super) fn attention_backward(
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
    pub(super) fn forward(&self, input: Vec<f32>, batch: &Batch) -> (Vec<f32>, Saved) {
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
    pub(super) fn backward(
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
    pub(super) fn parts(&mut self, first: Part, second: Part) -> (&mut [f32], &mut [f32]) {
        let (a, b) = (first.range(), second.range());
        let (head, tail) = self.values.split_at_mut(b.start);
        (&mut head[a], &mut tail[..b.len()])
    }
}

/// The upper layers on a batch and the unit-length mean of each text's rows, with what the
/// backward pass needs.
pub(super) struct Pass {
    pub(super) saved: Vec<Saved>,
    /// Per text: its pooled embedding before normalising, and its length.
    pub(super) pooled: Vec<(Vec<f32>, f32)>,
    pub(super) embeddings: Vec<Vec<f32>>,
}

pub(super) fn forward(layers: &[LayerParameters], input: Vec<f32>, batch: &Batch) -> Pass {
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
pub(super) fn backward(
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
