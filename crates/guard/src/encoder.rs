//! The sentence encoder of the embedding layer: all-MiniLM-L6-v2, a six-layer BERT, run
//! in-process on the CPU from its `model.safetensors` and `tokenizer.json`.
//!
//! The forward pass is written out here (embeddings, self-attention, feed-forward, mean
//! pooling) because it is small and fixed; the linear layers, nearly all of its arithmetic,
//! run on int8 weights ([`crate::int8`]). The tokenizer is Hugging Face's own, so word pieces are
//! exactly those the model was trained on.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use tokenizers::Tokenizer;

use crate::int8::{Int8Matrix, ShapeError, Vectorised};
pub use crate::layer::DIMENSION;
use crate::layer::{HEAD_WIDTH, HEADS, LAYER_NORM_EPS, LAYER_VALUES, LayerParameters, Part};

/// The most word pieces one window holds, [CLS] and [SEP] included (the model's training length).
pub const WINDOW: usize = 256;
/// How many layers the model has, and how many of the top ones a policy's tuning changes.
const LAYERS: usize = 6;
pub(crate) const TUNED_LAYERS: usize = 2;

/// What can go wrong loading the encoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncoderError {
    /// A model file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The weights file is not valid safetensors.
    #[error("{path}: not a safetensors file: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A tensor the model needs is missing or has the wrong type or shape.
    #[error("{path}: tensor {name}: {message}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The tokenizer file could not be loaded.
    #[error("{path}: not a tokenizer.json: {message}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Text could not be tokenized.
    #[error("tokenizing: {0}")]
    Tokenize(String),
    /// Tuned layers could not be packed for this CPU's product.
    #[error("tuning the encoder: {0}")]
    Tuning(String),
}

struct Linear {
    weight: Int8Matrix,
    bias: Vec<f32>,
}

impl Linear {
    /// `x` and the result are row-major, `inputs` and `outputs` wide.
    #[inline(always)]
    fn forward(&self, x: &[f32], activation: impl Fn(f32) -> f32) -> Vec<f32> {
        self.weight.multiply(x, &self.bias, activation)
    }
}

struct LayerNorm {
    gain: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    /// Normalises each row of `x` (row-major, [`DIMENSION`] wide).
    #[inline(always)]
    fn apply(&self, x: &mut [f32]) {
        for row in x.chunks_exact_mut(DIMENSION) {
            let n = DIMENSION as f32;
            let mean = lane_sum(row, |v| v) / n;
            let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
            let inv = 1.0 / (var + LAYER_NORM_EPS).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gain).zip(&self.bias) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

struct Layer {
    /// Query, key and value side by side, so each row is quantised once for all three.
    query_key_value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

impl Layer {
    /// The layer of `parameters`, its linear layers quantised.
    fn new(parameters: &LayerParameters) -> Result<Layer, ShapeError> {
        let linear = |weight: Part, bias: Part| -> Result<Linear, ShapeError> {
            let bias = parameters.part(bias).to_vec();
            let weight = Int8Matrix::quantise(
                parameters.part(weight),
                bias.len(),
                weight.len() / bias.len(),
            )?;
            Ok(Linear { weight, bias })
        };
        let norm = |gain: Part, bias: Part| LayerNorm {
            gain: parameters.part(gain).to_vec(),
            bias: parameters.part(bias).to_vec(),
        };
        Ok(Layer {
            query_key_value: linear(Part::QueryKeyValue, Part::QueryKeyValueBias)?,
            attention_out: linear(Part::AttentionOut, Part::AttentionOutBias)?,
            attention_norm: norm(Part::AttentionNormGain, Part::AttentionNormBias),
            up: linear(Part::Up, Part::UpBias)?,
            down: linear(Part::Down, Part::DownBias)?,
            out_norm: norm(Part::OutNormGain, Part::OutNormBias),
        })
    }
}

/// The encoder's upper [`TUNED_LAYERS`] layers as one policy's tuning left them, ready to run
/// in place of the shipped ones.
pub(crate) struct TunedLayers {
    layers: Vec<Layer>,
}

impl TunedLayers {
    /// The layers of `parameters`, quantised as the shipped ones are.
    pub(crate) fn new(parameters: &[LayerParameters]) -> Result<TunedLayers, ShapeError> {
        Ok(TunedLayers {
            layers: parameters
                .iter()
                .map(Layer::new)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// One window's embeddings through the shipped upper layers and through a tuning's.
pub(crate) type ShippedAndTuned = (Vec<f32>, Vec<f32>);

/// all-MiniLM-L6-v2, ready to embed text.
pub struct Encoder {
    tokenizer: Tokenizer,
    /// Row-major, [`DIMENSION`] wide, as are the other embedding tables.
    words: Vec<f32>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    /// The upper [`TUNED_LAYERS`] layers in `f32`, where a policy's tuning starts.
    upper: Vec<LayerParameters>,
    cls: u32,
    sep: u32,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

struct Weights<'a> {
    path: &'a Path,
    tensors: SafeTensors<'a>,
}

impl Weights<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EncoderError> {
        let bad = |message: String| EncoderError::Tensor {
            path: self.path.to_owned(),
            name: name.to_owned(),
            message,
        };
        let view = self.tensors.tensor(name).map_err(|e| bad(e.to_string()))?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(bad(format!("type {:?}, expected F32", view.dtype())));
        }
        if view.shape() != shape {
            return Err(bad(format!("shape {:?}, expected {shape:?}", view.shape())));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The parameters of layer `index`, in [`Part::ALL`]'s order: query, key and value side
    /// by side, so that each row is quantised once for all three.
    fn layer(&self, index: usize) -> Result<LayerParameters, EncoderError> {
        let p = format!("encoder.layer.{index}");
        let mut values = Vec::with_capacity(LAYER_VALUES);
        // Each tensor's weights, then their biases, PyTorch's shapes.
        let mut push = |names: &[&str], shape: &[usize]| -> Result<(), EncoderError> {
            for name in names {
                values.extend(self.tensor(&format!("{p}.{name}.weight"), shape)?);
            }
            for name in names {
                values.extend(self.tensor(&format!("{p}.{name}.bias"), &shape[..1])?);
            }
            Ok(())
        };
        push(
            &[
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
            ],
            &[DIMENSION, DIMENSION],
        )?;
        push(&["attention.output.dense"], &[DIMENSION, DIMENSION])?;
        push(&["attention.output.LayerNorm"], &[DIMENSION])?;
        push(&["intermediate.dense"], &[4 * DIMENSION, DIMENSION])?;
        push(&["output.dense"], &[DIMENSION, 4 * DIMENSION])?;
        push(&["output.LayerNorm"], &[DIMENSION])?;
        Ok(LayerParameters { values })
    }

    fn norm(&self, prefix: &str) -> Result<LayerNorm, EncoderError> {
        Ok(LayerNorm {
            gain: self.tensor(&format!("{prefix}.weight"), &[DIMENSION])?,
            bias: self.tensor(&format!("{prefix}.bias"), &[DIMENSION])?,
        })
    }
}

impl Encoder {
    /// Loads the encoder from a directory holding `model.safetensors` and `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Encoder, EncoderError> {
        let weights_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path).map_err(|source| EncoderError::Read {
            path: weights_path.clone(),
            source,
        })?;
        let weights = Weights {
            path: &weights_path,
            tensors: SafeTensors::deserialize(&bytes).map_err(|e| EncoderError::Weights {
                path: weights_path.clone(),
                message: e.to_string(),
            })?,
        };
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer_error = |message: String| EncoderError::Tokenizer {
            path: tokenizer_path.clone(),
            message,
        };
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| tokenizer_error(e.to_string()))?;
        // Windows are cut here, not by the tokenizer, so long text is read whole.
        tokenizer
            .with_truncation(None)
            .map_err(|e| tokenizer_error(e.to_string()))?;
        tokenizer.with_padding(None);
        let special = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| tokenizer_error(format!("no {token} token")))
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let vocabulary = tokenizer.get_vocab_size(true);

        let parameters = (0..LAYERS)
            .map(|i| weights.layer(i))
            .collect::<Result<Vec<_>, EncoderError>>()?;
        let layers = parameters
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Layer::new(p).map_err(|e| EncoderError::Tensor {
                    path: weights_path.clone(),
                    name: format!("encoder.layer.{i}"),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, EncoderError>>()?;
        let upper = parameters[LAYERS - TUNED_LAYERS..].to_vec();
        Ok(Encoder {
            words: weights.tensor(
                "embeddings.word_embeddings.weight",
                &[vocabulary, DIMENSION],
            )?,
            positions: weights
                .tensor("embeddings.position_embeddings.weight", &[512, DIMENSION])?,
            token_type: weights
                .tensor("embeddings.token_type_embeddings.weight", &[2, DIMENSION])?[..DIMENSION]
                .to_vec(),
            embedding_norm: weights.norm("embeddings.LayerNorm")?,
            layers,
            upper,
            tokenizer,
            cls,
            sep,
        })
    }

    /// The word pieces of `text`, without [CLS] and [SEP].
    pub fn pieces(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EncoderError::Tokenize(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The embeddings of `text`, one per window of at most [`WINDOW`] word pieces, so that cost
    /// grows linearly with length and nothing past the first window goes unread. Empty text
    /// has one window.
    pub fn embed(&self, text: &str) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(self
            .windows(text)?
            .iter()
            .map(|w| self.embed_pieces(w))
            .collect())
    }

    /// [`Encoder::embed`] twice, through the shipped upper layers and through `tuned` in their
    /// place: per window, both embeddings, from one pass of the lower layers.
    pub(crate) fn embed_tuned(
        &self,
        text: &str,
        tuned: &TunedLayers,
    ) -> Result<Vec<ShippedAndTuned>, EncoderError> {
        Ok(self
            .windows(text)?
            .iter()
            .map(|w| {
                let lower = self.lower_states(w);
                (
                    self.finish_shipped(lower.clone()),
                    self.finish_tuned(lower, tuned),
                )
            })
            .collect())
    }

    /// The word pieces of `text` cut into windows of at most [`WINDOW`] − 2 (one, empty, for
    /// empty text).
    fn windows(&self, text: &str) -> Result<Vec<Vec<u32>>, EncoderError> {
        let pieces = self.pieces(text)?;
        if pieces.is_empty() {
            return Ok(vec![Vec::new()]);
        }
        Ok(pieces.chunks(WINDOW - 2).map(<[u32]>::to_vec).collect())
    }

    /// The unit-length mean-pooled embedding of one window of word pieces.
    pub fn embed_pieces(&self, pieces: &[u32]) -> Vec<f32> {
        self.finish_shipped(self.lower_states(pieces))
    }

    fn shipped_upper(&self) -> &[Layer] {
        &self.layers[LAYERS - TUNED_LAYERS..]
    }

    /// The upper layers as shipped, in `f32`: where a policy's tuning starts.
    pub(crate) fn upper_parameters(&self) -> &[LayerParameters] {
        &self.upper
    }

    /// The states of one window's positions ([CLS], the pieces, [SEP]) after every layer but
    /// the upper [`TUNED_LAYERS`], row-major, [`DIMENSION`] wide.
    pub(crate) fn lower_states(&self, pieces: &[u32]) -> Vec<f32> {
        let ids: Vec<u32> = std::iter::once(self.cls)
            .chain(pieces.iter().copied().take(WINDOW - 2))
            .chain(std::iter::once(self.sep))
            .collect();
        let vocabulary = self.words.len() / DIMENSION;
        let mut h = Vec::with_capacity(ids.len() * DIMENSION);
        for (i, &id) in ids.iter().enumerate() {
            let word = &self.words[(id as usize).min(vocabulary - 1) * DIMENSION..][..DIMENSION];
            let position = &self.positions[i * DIMENSION..][..DIMENSION];
            h.extend(
                word.iter()
                    .zip(position)
                    .zip(&self.token_type)
                    .map(|((w, p), t)| w + p + t),
            );
        }
        crate::int8::vectorised(Pass {
            embedding_norm: Some(&self.embedding_norm),
            layers: &self.layers[..LAYERS - TUNED_LAYERS],
            hidden: &mut h,
        });
        h
    }

    /// The embedding of a window from its [`Encoder::lower_states`], as shipped.
    pub(crate) fn finish_shipped(&self, lower: Vec<f32>) -> Vec<f32> {
        self.finish(lower, self.shipped_upper())
    }

    /// The embedding of a window from its [`Encoder::lower_states`], through `tuned`.
    pub(crate) fn finish_tuned(&self, lower: Vec<f32>, tuned: &TunedLayers) -> Vec<f32> {
        self.finish(lower, &tuned.layers)
    }

    /// The unit-length mean over the positions of `hidden` after `layers`.
    fn finish(&self, mut hidden: Vec<f32>, layers: &[Layer]) -> Vec<f32> {
        crate::int8::vectorised(Pass {
            embedding_norm: None,
            layers,
            hidden: &mut hidden,
        });
        let rows = (hidden.len() / DIMENSION).max(1) as f32;
        let mut pooled = vec![0.0_f32; DIMENSION];
        for row in hidden.chunks_exact(DIMENSION) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        pooled.iter_mut().for_each(|p| *p /= rows);
        let norm = lane_sum(&pooled, |p| p * p).sqrt().max(1e-12);
        pooled.iter_mut().for_each(|p| *p /= norm);
        pooled
    }
}

/// Layers' work on one window's states (after the embeddings' norm, where given), compiled
/// for the CPU's widest vectors.
struct Pass<'a> {
    embedding_norm: Option<&'a LayerNorm>,
    layers: &'a [Layer],
    hidden: &'a mut [f32],
}

impl Vectorised for Pass<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        if let Some(norm) = self.embedding_norm {
            norm.apply(self.hidden);
        }
        for layer in self.layers {
            layer.forward(self.hidden);
        }
    }
}

impl Layer {
    #[inline(always)]
    fn forward(&self, h: &mut [f32]) {
        let context = attention(&self.query_key_value.forward(h, identity));
        add(h, &self.attention_out.forward(&context, identity));
        self.attention_norm.apply(h);
        let inner = self.up.forward(h, gelu);
        add(h, &self.down.forward(&inner, identity));
        self.out_norm.apply(h);
    }
}

/// Multi-head self-attention over rows of query, key and value side by side
/// (`3 × DIMENSION` wide); the context is [`DIMENSION`] wide. Written out rather than as
/// matrix products: at a dozen rows per head a general product spends most of its time
/// packing operands.
#[inline(always)]
fn attention(qkv: &[f32]) -> Vec<f32> {
    let stride = 3 * DIMENSION;
    let rows = qkv.len() / stride;
    let scale = 1.0 / (HEAD_WIDTH as f32).sqrt();
    let mut context = vec![0.0_f32; rows * DIMENSION];
    // Scores are computed sixteen keys at a time, over keys padded with zeros to a multiple
    // of sixteen, so every step is a whole vector.
    const KEYS: usize = 16;
    let padded = rows.next_multiple_of(KEYS);
    let mut scores = vec![0.0_f32; padded];
    // One head's keys, transposed (`HEAD_WIDTH × padded`): sixteen keys' scores are then sums of
    // contiguous runs scaled by the query's components, held in registers.
    let mut keys = vec![0.0_f32; HEAD_WIDTH * padded];
    for head in 0..HEADS {
        let column = |row: usize, part: usize| row * stride + part * DIMENSION + head * HEAD_WIDTH;
        for j in 0..rows {
            for (d, &k) in qkv[column(j, 1)..][..HEAD_WIDTH].iter().enumerate() {
                keys[d * padded + j] = k;
            }
        }
        for i in 0..rows {
            let query = &qkv[column(i, 0)..][..HEAD_WIDTH];
            for (c, chunk) in scores.as_chunks_mut::<KEYS>().0.iter_mut().enumerate() {
                let mut acc = [0.0_f32; KEYS];
                for (d, &q) in query.iter().enumerate() {
                    let k = &keys[d * padded + c * KEYS..][..KEYS];
                    acc.iter_mut().zip(k).for_each(|(a, k)| *a += q * k);
                }
                *chunk = acc.map(|a| a * scale);
            }
            let weights = &mut scores[..rows];
            // A comparison, not `f32::max`, whose NaN handling costs a test per score; a NaN
            // score cannot arise from finite weights.
            let max = weights
                .iter()
                .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
            weights.iter_mut().for_each(|w| *w = exp(*w - max));
            let inverse = 1.0 / lane_sum(weights, |w| w);
            // A local row, which the compiler knows aliases nothing, so the sum vectorises.
            let mut out = [0.0_f32; HEAD_WIDTH];
            for (j, w) in weights.iter().enumerate() {
                let w = w * inverse;
                let value = &qkv[column(j, 2)..][..HEAD_WIDTH];
                out.iter_mut().zip(value).for_each(|(o, v)| *o += w * v);
            }
            context[i * DIMENSION + head * HEAD_WIDTH..][..HEAD_WIDTH].copy_from_slice(&out);
        }
    }
    context
}

#[inline(always)]
fn identity(x: f32) -> f32 {
    x
}

/// `h += x`, elementwise (the residual connections).
#[inline(always)]
fn add(h: &mut [f32], x: &[f32]) {
    h.iter_mut().zip(x).for_each(|(h, x)| *h += x);
}

/// Lanes of running sums: the compiler vectorises them, where one running total is a chain
/// of dependent additions it may not reorder.
const LANES: usize = 8;

/// `Σ f(v)` over `values`, in [`LANES`] running sums.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0_f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += f(v));
    }
    lanes.iter().sum::<f32>() + rest
}

/// `a · b`, in [`LANES`] running sums (for the similarity and head scores of embeddings).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0_f32; LANES];
    let (a, b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = a
        .remainder()
        .iter()
        .zip(b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a.zip(b) {
        for ((l, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// `eˣ` for the softmax: `2ⁿ · eʳ` with `n` the nearest integer to `x·log₂e` and `eʳ` on
/// `|r| ≤ ln2/2` from Cephes' degree-6 polynomial; within 2e-7 of the true value relatively
/// (tested), and straight-line arithmetic, unlike `libm`'s `expf`, which was a tenth of a
/// pass. Inputs below −87 give the smallest normal number's neighbourhood, not 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUNDER: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer.
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ]
    .iter()
    .fold(0.0, |acc, c| acc * r + c);
    let e_r = p * r * r + r + 1.0;
    // The integer sits in the low mantissa bits of `shifted`; move it to the exponent.
    let n = (shifted.to_bits() as i32).wrapping_sub(0x4B40_0000);
    e_r * f32::from_bits(((n + 127) << 23) as u32)
}

/// BERT's GELU, `x·Φ(x)`. The feed-forward layer applies it to 1,536 values per word piece
/// per layer; `libm`'s branching erf took about a quarter of a pass, while this is
/// straight-line arithmetic the compiler vectorises in the loop that rescales the product.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf as the ratio of an odd degree-13 and an even degree-8 polynomial in `x`, clamped to
/// ±4 where erf is ±1 in single precision: the rational fit Eigen and XLA use for `f32`,
/// within 1e-7 of the true value (tested against `libm`).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const NUMERATOR: [f32; 7] = [
        -1.609_603_3e-2,
        -2.954_6e-3,
        -7.349_906_3e-4,
        -5.692_506_4e-5,
        -2.101_024e-6,
        2.770_681_4e-8,
        -2.726_142_3e-10,
    ];
    const DENOMINATOR: [f32; 5] = [
        -1.426_473_9e-2,
        -7.373_329e-3,
        -1.682_827e-3,
        -2.133_740_6e-4,
        -1.456_607_2e-5,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = NUMERATOR.iter().rev().fold(0.0, |acc, c| acc * x2 + c);
    let q = DENOMINATOR.iter().rev().fold(0.0, |acc, c| acc * x2 + c);
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm_across_its_range() {
        let worst = (-6_000..=6_000)
            .map(|i| i as f32 / 1_000.0)
            .map(|x| (erf(x) - libm::erff(x)).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst < 5e-7, "largest error {worst}");
    }

    #[test]
    fn exp_matches_the_standard_library_across_the_softmax_range() {
        let worst = (-87_000..=10_000)
            .map(|i| i as f32 / 1_000.0)
            .map(|x| ((exp(x) - x.exp()) / x.exp()).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst < 2e-7, "largest relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), (-87.0_f32).exp());
    }

    #[test]
    fn lane_sums_add_every_value_including_a_ragged_tail() {
        let values: Vec<f32> = (1..=19).map(|i| i as f32).collect();
        assert_eq!(lane_sum(&values, |v| v), 190.0);
        assert_eq!(lane_sum(&values, |v| v * v), 2_470.0);
        assert_eq!(dot(&values, &values), 2_470.0);
    }

    #[test]
    fn gelu_has_its_known_values() {
        // x·Φ(x): Φ(1) = 0.841_344_7, Φ(3) = 0.998_650_1.
        for (x, want) in [
            (0.0, 0.0),
            (1.0, 0.841_344_7),
            (-1.0, -0.158_655_3),
            (3.0, 2.995_950_3),
            (-10.0, 0.0),
            (10.0, 10.0),
        ] {
            assert!((gelu(x) - want).abs() < 1e-6, "gelu({x}) = {}", gelu(x));
        }
    }
}
