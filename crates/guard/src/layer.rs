//! One layer of the encoder (all-MiniLM-L6-v2): its shape, and its parameters in `f32` laid
//! out as the forward pass reads them and tuning writes them.

use std::ops::Range;

/// Width of a sentence embedding.
pub const DIMENSION: usize = 384;
pub(crate) const HEADS: usize = 12;
pub(crate) const HEAD_WIDTH: usize = DIMENSION / HEADS;
pub(crate) const LAYER_NORM_EPS: f32 = 1e-12;
pub(crate) const INNER: usize = 4 * DIMENSION;
pub(crate) const QKV: usize = 3 * DIMENSION;

/// One tensor of a layer's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Query, key and value weights stacked (`[3 × 384, 384]`).
    QueryKeyValue,
    QueryKeyValueBias,
    AttentionOut,
    AttentionOutBias,
    AttentionNormGain,
    AttentionNormBias,
    Up,
    UpBias,
    Down,
    DownBias,
    OutNormGain,
    OutNormBias,
}

impl Part {
    /// Every part, in the order [`LayerParameters`] holds them.
    pub(crate) const ALL: [Part; 12] = [
        Part::QueryKeyValue,
        Part::QueryKeyValueBias,
        Part::AttentionOut,
        Part::AttentionOutBias,
        Part::AttentionNormGain,
        Part::AttentionNormBias,
        Part::Up,
        Part::UpBias,
        Part::Down,
        Part::DownBias,
        Part::OutNormGain,
        Part::OutNormBias,
    ];

    /// How many values the part holds.
    pub(crate) const fn len(self) -> usize {
        match self {
            Part::QueryKeyValue => QKV * DIMENSION,
            Part::QueryKeyValueBias => QKV,
            Part::AttentionOut => DIMENSION * DIMENSION,
            Part::Up | Part::Down => INNER * DIMENSION,
            Part::UpBias => INNER,
            Part::AttentionOutBias
            | Part::AttentionNormGain
            | Part::AttentionNormBias
            | Part::DownBias
            | Part::OutNormGain
            | Part::OutNormBias => DIMENSION,
        }
    }

    /// Where the part lies in [`LayerParameters::values`].
    pub(crate) fn range(self) -> Range<usize> {
        let start = Part::ALL
            .iter()
            .take_while(|p| **p != self)
            .map(|p| p.len())
            .sum();
        start..start + self.len()
    }
}

/// The values of one layer: the parts of [`Part::ALL`] one after the other.
pub(crate) const LAYER_VALUES: usize = {
    let mut total = 0;
    let mut i = 0;
    while i < Part::ALL.len() {
        total += Part::ALL[i].len();
        i += 1;
    }
    total
};

/// One encoder layer's parameters in `f32`, each tensor in PyTorch's layout (a linear layer's
/// weight `[outputs, inputs]`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerParameters {
    /// The parts of [`Part::ALL`], one after the other ([`LAYER_VALUES`] in all).
    pub(crate) values: Vec<f32>,
}

impl LayerParameters {
    /// Zeros: a gradient's starting point.
    pub(crate) fn zeros() -> LayerParameters {
        LayerParameters {
            values: vec![0.0; LAYER_VALUES],
        }
    }

    pub(crate) fn part(&self, part: Part) -> &[f32] {
        &self.values[part.range()]
    }

    pub(crate) fn part_mut(&mut self, part: Part) -> &mut [f32] {
        &mut self.values[part.range()]
    }
}
