//! The green list: which tokens the watermark favours after a given token.
//!
//! Context width 1 with the candidate itself in the hash: whether token `t` is green after
//! token `p` is a keyed pseudo-random function of the pair `(p, t)`. One substituted token
//! changes the colour of at most two scored pairs, the most robust choice to edits
//! (Kirchenbauer et al. 2023b, "On the reliability of watermarks", LeftHash with h = 1), and
//! a detector needs nothing but the key and the tokens.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::MarkError;

/// A secret that keys the green lists, with a public id that names it.
#[derive(Clone, PartialEq, Eq)]
pub struct WatermarkKey {
    id: String,
    secret: [u8; 32],
}

impl std::fmt::Debug for WatermarkKey {
    // The secret must not reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatermarkKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl WatermarkKey {
    /// A new random key.
    pub fn generate() -> WatermarkKey {
        WatermarkKey::from_secret(rand::random())
    }

    /// The key for `secret`; its id is derived from it, so the same secret has the same id.
    pub fn from_secret(secret: [u8; 32]) -> WatermarkKey {
        let digest = Sha256::new()
            .chain_update(b"lorekeeper watermark key id\0")
            .chain_update(secret)
            .finalize();
        let id = format!("wm-{}", hex(&digest[..6]));
        WatermarkKey { id, secret }
    }

    /// The public name of the key, recorded with every reply it marks.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a reply was watermarked with; recorded with the reply and in its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkSettings {
    /// The key's id.
    pub key_id: String,
    /// Share of the vocabulary that is green after any token.
    pub gamma: f64,
    /// Added to a green token's tempered logit.
    pub delta: f32,
    /// Tokens of context the green list depends on (the candidate itself is also hashed).
    pub context_width: u32,
    /// A step whose likeliest token already has at least this probability is left alone:
    /// a name from canon or a fixed phrase is not pushed into an odd word.
    pub spike: f32,
}

/// A key with the settings it marks with.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    key: WatermarkKey,
    gamma: f64,
    delta: f32,
    spike: f32,
}

impl Watermark {
    /// Green share 0.25 and δ = 2: the strength Kirchenbauer et al. report 98% detection at
    /// T = 200 with; steps with a token above 0.9 probability are not biased.
    pub const DEFAULT_GAMMA: f64 = 0.25;
    /// See [`Watermark::DEFAULT_GAMMA`].
    pub const DEFAULT_DELTA: f32 = 2.0;
    /// See [`Watermark::DEFAULT_GAMMA`].
    pub const DEFAULT_SPIKE: f32 = 0.9;

    /// A watermark, checking that the settings make sense.
    pub fn new(
        key: WatermarkKey,
        gamma: f64,
        delta: f32,
        spike: f32,
    ) -> Result<Watermark, MarkError> {
        if !(gamma > 0.0 && gamma < 1.0) {
            return Err(MarkError::BadSettings(format!(
                "gamma {gamma} must lie strictly between 0 and 1"
            )));
        }
        if !(delta.is_finite() && delta >= 0.0) {
            return Err(MarkError::BadSettings(format!(
                "delta {delta} must be 0 or more"
            )));
        }
        if !(spike > 0.0 && spike <= 1.0) {
            return Err(MarkError::BadSettings(format!(
                "spike {spike} must lie in (0, 1]"
            )));
        }
        Ok(Watermark {
            key,
            gamma,
            delta,
            spike,
        })
    }

    /// The key.
    pub fn key(&self) -> &WatermarkKey {
        &self.key
    }

    /// Share of green tokens.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Bias added to green tokens' tempered logits.
    pub fn delta(&self) -> f32 {
        self.delta
    }

    /// Probability of the likeliest token above which a step is not biased.
    pub fn spike(&self) -> f32 {
        self.spike
    }

    /// What to record with a reply this watermark marked.
    pub fn settings(&self) -> WatermarkSettings {
        WatermarkSettings {
            key_id: self.key.id.clone(),
            gamma: self.gamma,
            delta: self.delta,
            context_width: 1,
            spike: self.spike,
        }
    }

    /// The green list that follows `previous`. One SHA-256 per step; testing a candidate
    /// is then a few multiplications, so a step with thousands of candidates stays cheap.
    pub fn green_list(&self, previous: u32) -> GreenList {
        let digest = Sha256::new()
            .chain_update(self.key.secret)
            .chain_update(previous.to_le_bytes())
            .finalize();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        GreenList {
            seed: u64::from_le_bytes(seed),
            // γ·2^64, so that a uniform 64-bit hash falls below it with probability γ.
            threshold: (self.gamma * 18_446_744_073_709_551_616.0) as u64,
        }
    }
}

/// The green tokens after one context.
#[derive(Debug, Clone, Copy)]
pub struct GreenList {
    seed: u64,
    threshold: u64,
}

impl GreenList {
    /// Whether `token` is green here.
    pub fn contains(&self, token: u32) -> bool {
        mix(self.seed ^ u64::from(token).wrapping_mul(0x9e37_79b9_7f4a_7c15)) < self.threshold
    }
}

/// The SplitMix64 finaliser: a bijection whose output bits each depend on every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watermark(gamma: f64) -> Watermark {
        Watermark::new(WatermarkKey::from_secret([7; 32]), gamma, 2.0, 0.9).unwrap()
    }

    #[test]
    fn green_share_is_gamma_and_depends_on_context_and_key() {
        for gamma in [0.25, 0.5] {
            let w = watermark(gamma);
            let green = w.green_list(42);
            let share = (0..100_000).filter(|&t| green.contains(t)).count() as f64 / 100_000.0;
            assert!((share - gamma).abs() < 0.01, "gamma {gamma}: share {share}");
        }
        let w = watermark(0.5);
        let (a, b) = (w.green_list(1), w.green_list(2));
        let same = (0..10_000)
            .filter(|&t| a.contains(t) == b.contains(t))
            .count();
        assert!(
            (4_500..5_500).contains(&same),
            "lists after 1 and 2 agree on {same}"
        );
        let other = Watermark::new(WatermarkKey::from_secret([8; 32]), 0.5, 2.0, 0.9).unwrap();
        let c = other.green_list(1);
        let same = (0..10_000)
            .filter(|&t| a.contains(t) == c.contains(t))
            .count();
        assert!((4_500..5_500).contains(&same), "two keys agree on {same}");
    }

    #[test]
    fn key_ids_are_stable_and_secrets_stay_out_of_debug() {
        let a = WatermarkKey::from_secret([1; 32]);
        assert_eq!(a.id(), WatermarkKey::from_secret([1; 32]).id());
        assert_ne!(a.id(), WatermarkKey::from_secret([2; 32]).id());
        assert!(a.id().starts_with("wm-") && a.id().len() == 15);
        assert!(!format!("{a:?}").contains("secret"));
        assert_ne!(WatermarkKey::generate().id(), WatermarkKey::generate().id());
    }

    #[test]
    fn bad_settings_are_named() {
        let key = WatermarkKey::from_secret([1; 32]);
        for (gamma, delta, spike, word) in [
            (0.0, 2.0, 0.9, "gamma"),
            (1.0, 2.0, 0.9, "gamma"),
            (0.25, -1.0, 0.9, "delta"),
            (0.25, f32::NAN, 0.9, "delta"),
            (0.25, 2.0, 0.0, "spike"),
        ] {
            let err = Watermark::new(key.clone(), gamma, delta, spike).unwrap_err();
            assert!(err.to_string().contains(word), "{err}");
        }
    }
}
