//! The sentence encoder of the embedding layer: all-MiniLM-L6-v2, a six-layer BERT, run
//! in-process on the CPU from its `model.safetensors` and `tokenizer.json`.
//!
//! The forward pass is written out here (embeddings, self-attention, feed-forward, mean
//! pooling) because it is small and fixed; the linear layers, nearly all of its arithmetic,
//! go through `faer`'s matrix product. The tokenizer is Hugging Face's own, so word pieces are
//! exactly those the model was trained on.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Axis, Slice};
use safetensors::SafeTensors;
use tokenizers::Tokenizer;

/// Width of a sentence embedding.
pub const DIMENSION: usize = 384;
/// The most word pieces one window holds, [CLS] and [SEP] included (the model's training length).
pub const WINDOW: usize = 256;
const HEADS: usize = 12;
const LAYER_NORM_EPS: f32 = 1e-12;

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
}

struct Linear {
    /// `[in, out]`, row-major: stored transposed from PyTorch's `[out, in]` so a row of
    /// activations multiplies it directly.
    weight: Vec<f32>,
    inputs: usize,
    bias: Vec<f32>,
}

impl Linear {
    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        let (rows, outputs) = (x.nrows(), self.bias.len());
        let x: Cow<'_, [f32]> = match x.as_slice() {
            Some(data) => Cow::Borrowed(data),
            // Logical order is row-major whatever the memory layout.
            None => Cow::Owned(x.iter().copied().collect()),
        };
        let mut y = self.bias.repeat(rows);
        faer::linalg::matmul::matmul(
            faer::MatMut::from_row_major_slice_mut(&mut y, rows, outputs),
            faer::Accum::Add,
            faer::MatRef::from_row_major_slice(&x, rows, self.inputs),
            faer::MatRef::from_row_major_slice(&self.weight, self.inputs, outputs),
            1.0,
            faer::Par::Seq,
        );
        // The buffer holds rows × outputs values by construction.
        Array2::from_shape_vec((rows, outputs), y)
            .unwrap_or_else(|_| Array2::zeros((rows, outputs)))
    }
}

struct LayerNorm {
    gain: Array1<f32>,
    bias: Array1<f32>,
}

impl LayerNorm {
    fn apply(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            let n = row.len() as f32;
            let mean = row.sum() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + LAYER_NORM_EPS).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gain).zip(&self.bias) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// all-MiniLM-L6-v2, ready to embed text.
pub struct Encoder {
    tokenizer: Tokenizer,
    words: Array2<f32>,
    positions: Array2<f32>,
    token_type: Array1<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
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

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, EncoderError> {
        let data = self.tensor(name, &[rows, cols])?;
        Array2::from_shape_vec((rows, cols), data).map_err(|e| EncoderError::Tensor {
            path: self.path.to_owned(),
            name: name.to_owned(),
            message: e.to_string(),
        })
    }

    fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, EncoderError> {
        Ok(Array1::from(self.tensor(name, &[len])?))
    }

    fn linear(&self, prefix: &str, inputs: usize, outputs: usize) -> Result<Linear, EncoderError> {
        Ok(Linear {
            weight: self
                .matrix(&format!("{prefix}.weight"), outputs, inputs)?
                .reversed_axes()
                .iter()
                .copied()
                .collect(),
            inputs,
            bias: self.vector(&format!("{prefix}.bias"), outputs)?.to_vec(),
        })
    }

    fn norm(&self, prefix: &str) -> Result<LayerNorm, EncoderError> {
        Ok(LayerNorm {
            gain: self.vector(&format!("{prefix}.weight"), DIMENSION)?,
            bias: self.vector(&format!("{prefix}.bias"), DIMENSION)?,
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

        let layers = (0..6)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    query: weights.linear(
                        &format!("{p}.attention.self.query"),
                        DIMENSION,
                        DIMENSION,
                    )?,
                    key: weights.linear(
                        &format!("{p}.attention.self.key"),
                        DIMENSION,
                        DIMENSION,
                    )?,
                    value: weights.linear(
                        &format!("{p}.attention.self.value"),
                        DIMENSION,
                        DIMENSION,
                    )?,
                    attention_out: weights.linear(
                        &format!("{p}.attention.output.dense"),
                        DIMENSION,
                        DIMENSION,
                    )?,
                    attention_norm: weights.norm(&format!("{p}.attention.output.LayerNorm"))?,
                    up: weights.linear(
                        &format!("{p}.intermediate.dense"),
                        DIMENSION,
                        4 * DIMENSION,
                    )?,
                    down: weights.linear(&format!("{p}.output.dense"), 4 * DIMENSION, DIMENSION)?,
                    out_norm: weights.norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, EncoderError>>()?;
        Ok(Encoder {
            words: weights.matrix("embeddings.word_embeddings.weight", vocabulary, DIMENSION)?,
            positions: weights.matrix("embeddings.position_embeddings.weight", 512, DIMENSION)?,
            token_type: weights
                .matrix("embeddings.token_type_embeddings.weight", 2, DIMENSION)?
                .row(0)
                .to_owned(),
            embedding_norm: weights.norm("embeddings.LayerNorm")?,
            layers,
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
        let pieces = self.pieces(text)?;
        let body = WINDOW - 2;
        if pieces.is_empty() {
            return Ok(vec![self.embed_pieces(&[])]);
        }
        Ok(pieces.chunks(body).map(|w| self.embed_pieces(w)).collect())
    }

    /// The unit-length mean-pooled embedding of one window of word pieces.
    pub fn embed_pieces(&self, pieces: &[u32]) -> Vec<f32> {
        let h = self.hidden_states(pieces);
        let mut pooled = h
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(DIMENSION));
        let norm = pooled.dot(&pooled).sqrt().max(1e-12);
        pooled /= norm;
        pooled.to_vec()
    }

    /// The last layer's state of every position of one window ([CLS], the pieces, [SEP]).
    pub fn hidden_states(&self, pieces: &[u32]) -> Array2<f32> {
        let ids: Vec<u32> = std::iter::once(self.cls)
            .chain(pieces.iter().copied().take(WINDOW - 2))
            .chain(std::iter::once(self.sep))
            .collect();
        let n = ids.len();
        let mut h = Array2::<f32>::zeros((n, DIMENSION));
        for (i, &id) in ids.iter().enumerate() {
            let word = self.words.row((id as usize).min(self.words.nrows() - 1));
            let mut row = h.row_mut(i);
            row += &word;
            row += &self.positions.row(i);
            row += &self.token_type;
        }
        self.embedding_norm.apply(&mut h);
        for layer in &self.layers {
            h = layer.forward(h);
        }
        h
    }
}

impl Layer {
    fn forward(&self, mut h: Array2<f32>) -> Array2<f32> {
        let q = self.query.forward(&h);
        let k = self.key.forward(&h);
        let v = self.value.forward(&h);
        let width = DIMENSION / HEADS;
        let scale = 1.0 / (width as f32).sqrt();
        let mut context = Array2::<f32>::zeros(h.raw_dim());
        for head in 0..HEADS {
            // ndarray's `s!` macro expands to code that allows `unsafe`, which this workspace
            // forbids; slicing one axis says the same.
            let cols = Slice::from(head * width..(head + 1) * width);
            let mut scores = q
                .slice_axis(Axis(1), cols)
                .dot(&k.slice_axis(Axis(1), cols).t())
                * scale;
            for mut row in scores.rows_mut() {
                let max = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                row.mapv_inplace(|x| (x - max).exp());
                let sum = row.sum();
                row /= sum;
            }
            context
                .slice_axis_mut(Axis(1), cols)
                .assign(&scores.dot(&v.slice_axis(Axis(1), cols)));
        }
        h += &self.attention_out.forward(&context);
        self.attention_norm.apply(&mut h);
        let mut inner = self.up.forward(&h);
        match inner.as_slice_memory_order_mut() {
            Some(values) => values.iter_mut().for_each(|x| *x = gelu(*x)),
            None => inner.mapv_inplace(gelu),
        }
        h += &self.down.forward(&inner);
        self.out_norm.apply(&mut h);
        h
    }
}

/// BERT's GELU, `x·Φ(x)`. The feed-forward layer applies it to 1,536 values per word piece
/// per layer; `libm`'s branching erf took about a quarter of a pass, while this is
/// straight-line arithmetic the compiler vectorises over a contiguous buffer.
#[inline]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf as the ratio of an odd degree-13 and an even degree-8 polynomial in `x`, clamped to
/// ±4 where erf is ±1 in single precision: the rational fit Eigen and XLA use for `f32`,
/// within 1e-7 of the true value (tested against `libm`).
#[inline]
fn erf(x: f32) -> f32 {
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
