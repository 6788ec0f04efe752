//! The detector: count green tokens and ask how unlikely that many would be by chance.
//!
//! Unwatermarked text is green at each scored position with probability γ, so the count of
//! green tokens among T is Binomial(T, γ) and z = (G − γT) / √(Tγ(1−γ)). A pair of tokens
//! that occurred earlier in the text is not scored again: repeated phrases would otherwise
//! count their colour many times and make chance agreement look like a mark.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::Watermark;

/// z at and above which a text is called watermarked: p ≈ 3·10⁻⁵ for one key.
pub const Z_THRESHOLD: f64 = 4.0;

/// Fewer scored tokens than this cannot reach [`Z_THRESHOLD`] with confidence worth the
/// name; such texts are reported as too short, never as watermarked.
pub const MIN_SCORED_TOKENS: usize = 16;

/// The verdict on one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The best z-score over the keys tried (0 when nothing could be scored).
    pub z: f64,
    /// One-sided p-value of that z, multiplied by the number of keys tried (Bonferroni).
    pub p_value: f64,
    /// The key whose mark was found, if one was.
    pub key_id: Option<String>,
    /// Token pairs scored (first occurrences only).
    pub tokens_scored: usize,
    /// Whether the text carries a watermark.
    pub watermarked: bool,
    /// The verdict in words, with its reason.
    pub verdict: String,
}

/// Green count and scored positions of `tokens` under one watermark.
pub fn score(tokens: &[u32], watermark: &Watermark) -> (usize, usize) {
    let mut seen = HashSet::with_capacity(tokens.len());
    let (mut green, mut scored) = (0, 0);
    for pair in tokens.windows(2) {
        if !seen.insert((pair[0], pair[1])) {
            continue;
        }
        scored += 1;
        green += usize::from(watermark.green_list(pair[0]).contains(pair[1]));
    }
    (green, scored)
}

/// z-score of `green` out of `scored` at green share `gamma`.
pub fn z_score(green: usize, scored: usize, gamma: f64) -> f64 {
    if scored == 0 {
        return 0.0;
    }
    let t = scored as f64;
    (green as f64 - gamma * t) / (t * gamma * (1.0 - gamma)).sqrt()
}

/// One-sided p-value of a z-score under the normal approximation.
pub fn p_value(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Tries every watermark on `tokens` and reports the strongest evidence.
pub fn detect(tokens: &[u32], watermarks: &[Watermark]) -> Detection {
    if watermarks.is_empty() {
        return Detection {
            z: 0.0,
            p_value: 1.0,
            key_id: None,
            tokens_scored: 0,
            watermarked: false,
            verdict: "no watermark keys to test with; `lore keys watermark new` makes one".into(),
        };
    }
    let (best, z, scored) = watermarks
        .iter()
        .map(|w| {
            let (green, scored) = score(tokens, w);
            (w, z_score(green, scored, w.gamma()), scored)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one watermark");
    let p = (p_value(z) * watermarks.len() as f64).min(1.0);
    let keys = match watermarks.len() {
        1 => "1 key".to_owned(),
        n => format!("{n} keys"),
    };
    let (watermarked, verdict) = if scored < MIN_SCORED_TOKENS {
        (
            false,
            format!(
                "too short to tell: {scored} token pairs scored, at least {MIN_SCORED_TOKENS} needed"
            ),
        )
    } else if z >= Z_THRESHOLD {
        (
            true,
            format!(
                "watermarked with key {}: z {z:.2} over {scored} tokens",
                best.key().id()
            ),
        )
    } else {
        (
            false,
            format!(
                "no watermark found with {keys}: best z {z:.2} over {scored} tokens is below {Z_THRESHOLD}"
            ),
        )
    };
    Detection {
        z,
        p_value: p,
        key_id: watermarked.then(|| best.key().id().to_owned()),
        tokens_scored: scored,
        watermarked,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WatermarkKey;

    fn watermark(seed: u8) -> Watermark {
        Watermark::new(WatermarkKey::from_secret([seed; 32]), 0.25, 2.0, 0.9).unwrap()
    }

    /// A sequence that picks a green token at every step it can (out of 8 tries).
    fn marked(w: &Watermark, len: usize, start: u32) -> Vec<u32> {
        let mut tokens = vec![start];
        let mut next = start.wrapping_mul(7919);
        for _ in 1..len {
            let green = w.green_list(*tokens.last().unwrap());
            let pick = (0..8)
                .map(|i| (next + i * 104_729) % 50_000)
                .find(|&t| green.contains(t))
                .unwrap_or(next % 50_000);
            next = next.wrapping_mul(31).wrapping_add(17);
            tokens.push(pick);
        }
        tokens
    }

    fn unmarked(len: usize, seed: u32) -> Vec<u32> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 50_000)
            .collect()
    }

    #[test]
    fn marked_text_is_found_with_its_key_and_plain_text_is_not() {
        let (a, b) = (watermark(1), watermark(2));
        let text = marked(&a, 200, 5);
        let found = detect(&text, &[b.clone(), a.clone()]);
        assert!(found.watermarked, "{found:?}");
        assert_eq!(found.key_id.as_deref(), Some(a.key().id()));
        assert!(found.z > 10.0 && found.p_value < 1e-20, "{found:?}");
        let plain = detect(&unmarked(200, 3), &[a.clone(), b.clone()]);
        assert!(!plain.watermarked && plain.key_id.is_none(), "{plain:?}");
        assert!(plain.z < Z_THRESHOLD);
        let other_key = detect(&text, &[b]);
        assert!(!other_key.watermarked, "{other_key:?}");
    }

    #[test]
    fn repeated_pairs_are_scored_once() {
        let a = watermark(1);
        let once = marked(&a, 20, 9);
        let repeated: Vec<u32> = once.iter().copied().cycle().take(2_000).collect();
        let (_, scored) = score(&repeated, &a);
        // 19 pairs inside the phrase, plus the pair joining one copy to the next.
        assert_eq!(scored, 20);
    }

    #[test]
    fn empty_and_tiny_texts_get_a_verdict_not_a_claim() {
        let a = watermark(1);
        for tokens in [vec![], vec![3], marked(&a, 10, 1)] {
            let d = detect(&tokens, std::slice::from_ref(&a));
            assert!(!d.watermarked);
            assert!(d.verdict.contains("too short"), "{}", d.verdict);
            assert!(d.z.is_finite() && d.p_value.is_finite());
        }
        let none = detect(&[1, 2, 3], &[]);
        assert!(none.verdict.contains("no watermark keys"));
    }

    #[test]
    fn p_value_matches_the_normal_tail() {
        assert!((p_value(0.0) - 0.5).abs() < 1e-12);
        assert!((p_value(4.0) - 3.167e-5).abs() < 1e-7);
        assert!((z_score(75, 100, 0.25) - 50.0 / 100f64.mul_add(0.1875, 0.0).sqrt()).abs() < 1e-9);
    }
}
