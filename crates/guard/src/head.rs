//! A logistic head over sentence embeddings: the trained part of the embedding layer, small
//! enough to fit in a second and to store as a short JSON file.

use serde::{Deserialize, Serialize};

/// `P(unsafe | embedding) = σ(w·x + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// One weight per embedding dimension.
    pub weights: Vec<f32>,
    /// The bias.
    pub bias: f32,
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
    /// The probability that `x` is unsafe.
    pub fn score(&self, x: &[f32]) -> f32 {
        let z: f32 = self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + self.bias;
        1.0 / (1.0 + (-z).exp())
    }

    /// Fits a head to labelled embeddings by full-batch Adam on the log loss, each class
    /// weighted by the other's share so a rare class is not ignored. Deterministic.
    pub fn fit(examples: &[(&[f32], bool)], fit: Fit) -> Head {
        let dim = examples.first().map_or(0, |(x, _)| x.len());
        let positives = examples.iter().filter(|(_, y)| *y).count().max(1) as f32;
        let negatives = (examples.len() as f32 - positives).max(1.0);
        let total = examples.len().max(1) as f32;
        let (pos_weight, neg_weight) = (total / (2.0 * positives), total / (2.0 * negatives));

        let mut params = vec![0.0f32; dim + 1];
        let mut m = vec![0.0f32; dim + 1];
        let mut v = vec![0.0f32; dim + 1];
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut grad = vec![0.0f32; dim + 1];
        for step in 1..=fit.epochs {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (x, y) in examples {
                let z: f32 = params[..dim]
                    .iter()
                    .zip(*x)
                    .map(|(w, v)| w * v)
                    .sum::<f32>()
                    + params[dim];
                let p = 1.0 / (1.0 + (-z).exp());
                let (target, weight) = if *y {
                    (1.0, pos_weight)
                } else {
                    (0.0, neg_weight)
                };
                let err = weight * (p - target) / total;
                for (g, v) in grad[..dim].iter_mut().zip(*x) {
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
        let examples: Vec<(&[f32], bool)> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| (&x[..], i >= 30))
            .collect();
        let head = Head::fit(&examples, Fit::default());
        assert!(head.score(&[0.95, 0.05]) > 0.5);
        assert!(head.score(&[0.1, 0.9]) < 0.5);
    }
}
