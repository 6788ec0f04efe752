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

mod backprop;
mod pairs;

use rayon::iter::{IndexedParallelIterator, ParallelIterator};
use rayon::slice::{ParallelSlice, ParallelSliceMut};

use lore_canon::cache::{FNV_START, fnv};

use crate::encoder::dot;
use crate::layer::{DIMENSION, LAYER_VALUES, LayerParameters};

use backprop::{Batch, backward, forward};
pub(crate) use pairs::{SCHEDULE, Schedule, Text};
use pairs::{SplitMix, pairs};

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
    use std::ops::Range;

    use super::pairs::{RIVALS, mix, rivals};
    use super::*;
    use crate::layer::Part;

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
