//! A logistic head over sentence embeddings: the trained part of the embedding layer, small
//! enough to fit in a second and to store as a short JSON file.

use serde::{Deserialize, Serialize};

/// `P(positive | embedding) = σ(w·x + b)`: unsafe for the hazard head, about the topic for
/// a topic's head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// One weight per embedding dimension.
    pub weights: Vec<f32>,
    /// The bias.
    pub bias: f32,
}

/// One labelled embedding to fit a head to.
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    /// The embedding.
    pub features: &'a [f32],
    /// Its label: in the class the head scores.
    pub is_positive: bool,
    /// How much it counts against the others of its class (1 for most).
    pub weight: f32,
}

/// How a head is fitted.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// Passes over the data.
    pub epochs: usize,
    /// Adam's step size.
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
}

impl Default for Fit {
    fn default() -> Fit {
        Fit {
            epochs: 400,
            learning_rate: 0.05,
            l2: 1e-3,
        }
    }
}

impl Head {
    /// The probability that `x` is in the class.
    pub fn score(&self, x: &[f32]) -> f32 {
        let z = crate::encoder::dot(&self.weights, x) + self.bias;
        1.0 / (1.0 + (-z).exp())
    }

    /// Fits a head to labelled embeddings by full-batch Adam on the weighted log loss, each
    /// class weighted by the other's share so a rare class is not ignored. Deterministic.
    pub fn fit(examples: &[Example<'_>], fit: Fit) -> Head {
        let dim = examples.first().map_or(0, |e| e.features.len());
        let class_total = |class: bool| -> f32 {
            examples
                .iter()
                .filter(|e| e.is_positive == class)
                .map(|e| e.weight)
                .sum::<f32>()
                .max(f32::MIN_POSITIVE)
        };
        let (positives, negatives) = (class_total(true), class_total(false));
        let total = positives + negatives;
        let (pos_weight, neg_weight) = (total / (2.0 * positives), total / (2.0 * negatives));

        let mut params = vec![0.0f32; dim + 1];
        let mut m = vec![0.0f32; dim + 1];
        let mut v = vec![0.0f32; dim + 1];
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut grad = vec![0.0f32; dim + 1];
        for step in 1..=fit.epochs {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for example in examples {
                let x = example.features;
                let z = crate::encoder::dot(&params[..dim], x) + params[dim];
                let p = 1.0 / (1.0 + (-z).exp());
                let (target, weight) = if example.is_positive {
                    (1.0, pos_weight)
                } else {
                    (0.0, neg_weight)
                };
                let err = weight * example.weight * (p - target) / total;
                for (g, v) in grad[..dim].iter_mut().zip(x) {
                    *g += err * v;
                }
                grad[dim] += err;
            }
            for (g, w) in grad[..dim].iter_mut().zip(&params[..dim]) {
                *g += fit.l2 * w;
            }
            let t = step as i32;
            for i in 0..=dim {
                m[i] = beta1 * m[i] + (1.0 - beta1) * grad[i];
                v[i] = beta2 * v[i] + (1.0 - beta2) * grad[i] * grad[i];
                let m_hat = m[i] / (1.0 - beta1.powi(t));
                let v_hat = v[i] / (1.0 - beta2.powi(t));
                params[i] -= fit.learning_rate * m_hat / (v_hat.sqrt() + eps);
            }
        }
        let bias = params.pop().unwrap_or(0.0);
        Head {
            weights: params,
            bias,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_separates_what_a_line_separates() {
        let xs: Vec<[f32; 2]> = (0..40)
            .map(|i| {
                let t = i as f32 / 40.0;
                [t, 1.0 - t]
            })
            .collect();
        let examples: Vec<Example<'_>> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| Example {
                features: &x[..],
                is_positive: i >= 30,
                weight: 1.0,
            })
            .collect();
        let head = Head::fit(&examples, Fit::default());
        assert!(head.score(&[0.95, 0.05]) > 0.5);
        assert!(head.score(&[0.1, 0.9]) < 0.5);
    }

    #[test]
    fn weighting_safe_lookalikes_moves_the_boundary_away_from_them() {
        // Unsafe at x = 1, safe at x = 0, and a few safe lookalikes at x = 0.7.
        let (unsafe_x, safe_x, lookalike_x) = ([1.0f32], [0.0f32], [0.7f32]);
        let set = |lookalike_weight: f32| -> Vec<Example<'_>> {
            let mut set = Vec::new();
            for _ in 0..20 {
                set.push(Example {
                    features: &unsafe_x,
                    is_positive: true,
                    weight: 1.0,
                });
                set.push(Example {
                    features: &safe_x,
                    is_positive: false,
                    weight: 1.0,
                });
            }
            for _ in 0..3 {
                set.push(Example {
                    features: &lookalike_x,
                    is_positive: false,
                    weight: lookalike_weight,
                });
            }
            set
        };
        let plain = Head::fit(&set(1.0), Fit::default());
        let weighted = Head::fit(&set(10.0), Fit::default());
        assert!(
            weighted.score(&lookalike_x) < plain.score(&lookalike_x),
            "weighted {} vs plain {}",
            weighted.score(&lookalike_x),
            plain.score(&lookalike_x)
        );
        assert!(weighted.score(&unsafe_x) > 0.5);
    }
}
