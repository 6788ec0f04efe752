//! The embedding layer: what a text means, not only which words it uses.
//!
//! A text is embedded (its folded reading and any decoded payload) and compared with each
//! off-limits node's examples; a node fires when the nearest example is within the node's
//! threshold. A trained [`Head`] also scores the text for hazards in general, so that harm
//! phrased unlike any example is still caught; it cites the hazard whose examples are nearest.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, Examples};
use crate::encoder::{Encoder, EncoderError};
use crate::head::Head;
use crate::normalize::{View, ViewKind, fold, spell_out};
use crate::topics::{self, PolicyTexts, TopicHeads};
use lore_canon::policy::Policy;

/// The hazard head that ships with Lorekeeper, trained by `lore train guard` on the
/// development safety sets (README, "Policy and rails").
pub const BUNDLED_HEAD: &str = include_str!("../hazard-head.json");

/// A trained hazard head and the score from which it flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HazardHead {
    /// The head.
    pub head: Head,
    /// Scores at or above this are flagged.
    pub threshold: f32,
    /// What it was trained on, for the record.
    pub trained_on: Vec<String>,
}

impl HazardHead {
    /// Parses a head written by `lore train guard`.
    pub fn from_json(text: &str) -> Result<HazardHead, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The head built into the binary.
    pub fn bundled() -> HazardHead {
        // The file is checked by a test; a broken one cannot ship.
        Self::from_json(BUNDLED_HEAD).unwrap_or_else(|_| HazardHead {
            head: Head {
                weights: Vec::new(),
                bias: f32::NEG_INFINITY,
            },
            threshold: 1.0,
            trained_on: Vec::new(),
        })
    }
}

/// The encoder, the hazard head, and the embeddings of policy examples seen so far (rails for
/// many characters share the same examples).
pub struct Semantic {
    encoder: Arc<Encoder>,
    hazard: HazardHead,
    /// Policy examples' embeddings, by the text the encoder was handed.
    examples: Mutex<Examples>,
    /// Where examples' embeddings and topic heads are kept between runs, if anywhere.
    cache: Option<Cache>,
    /// Topic heads by policy fingerprint: trained once per policy, shared by its rails.
    topic_heads: Mutex<HashMap<u64, Arc<TopicHeads>>>,
    /// The embeddings of each policy's texts, by policy fingerprint.
    policy_texts: Mutex<HashMap<u64, Arc<PolicyTexts>>>,
}

impl std::fmt::Debug for Semantic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semantic")
            .field("hazard_threshold", &self.hazard.threshold)
            .finish_non_exhaustive()
    }
}

/// One embedded window of one reading of a text.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Which reading.
    pub view: ViewKind,
    /// Its embedding.
    pub vector: Vec<f32>,
}

impl Semantic {
    /// The layer over an encoder and a hazard head.
    pub fn new(encoder: Arc<Encoder>, hazard: HazardHead) -> Semantic {
        Semantic {
            encoder,
            hazard,
            examples: Mutex::new(HashMap::new()),
            cache: None,
            topic_heads: Mutex::new(HashMap::new()),
            policy_texts: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the embeddings of policy examples and the topic heads trained from them in `dir`
    /// between runs ([`crate::cache`]), so that a policy's rails are built without embedding
    /// every example and fitting its heads again: the examples the folder holds are read now;
    /// the example file is rewritten when a policy's texts had to be embedded, the heads file
    /// when heads were trained. Costs a few encoder passes, to fingerprint the encoder.
    pub fn with_cache(mut self, dir: &Path) -> Result<Semantic, EncoderError> {
        let (cache, examples) = Cache::open(dir, &self.encoder)?;
        *self.examples.get_mut().unwrap_or_else(|e| e.into_inner()) = examples;
        self.cache = Some(cache);
        Ok(self)
    }

    /// How many policy examples' embeddings are held (computed or read from the cache).
    pub fn known_examples(&self) -> usize {
        self.examples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Loads the encoder from `dir` and uses the bundled hazard head.
    pub fn load(dir: &Path) -> Result<Semantic, EncoderError> {
        Ok(Self::new(
            Arc::new(Encoder::load(dir)?),
            HazardHead::bundled(),
        ))
    }

    /// The hazard head.
    pub fn hazard(&self) -> &HazardHead {
        &self.hazard
    }

    /// The encoder.
    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    /// Embeds the readings of a text that carry meaning of their own: the folded text, and
    /// any decoded base64 or rot13 payload, with chat shorthand spelt out ([`spell_out`]).
    /// (Leetspeak and spaced letters are word-level tricks the lexicon reads; a sentence
    /// encoder reads them as the words they imitate.)
    pub fn embed_views(&self, views: &[View]) -> Result<Vec<Embedded>, EncoderError> {
        let mut out = Vec::new();
        for view in views {
            if matches!(
                view.kind,
                ViewKind::Folded | ViewKind::Base64 | ViewKind::Rot13
            ) {
                for vector in self.encoder.embed(&spell_out(&view.text))? {
                    out.push(Embedded {
                        view: view.kind,
                        vector,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The topic heads of `policy`, read from the cache or trained on first use
    /// ([`crate::topics`]).
    pub fn topic_heads(&self, policy: &Policy) -> Result<Arc<TopicHeads>, EncoderError> {
        let key = topics::fingerprint(policy);
        memoized(&self.topic_heads, key, || {
            if let Some(heads) = self.cache.as_ref().and_then(|c| c.heads(key)) {
                return Ok(heads);
            }
            let started = std::time::Instant::now();
            let heads = Arc::new(topics::train(policy, &*self.policy_texts(policy)?));
            tracing::info!(
                topics = heads.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "trained the policy's topic heads"
            );
            if let Some(cache) = &self.cache {
                cache.save_heads(key, &heads);
            }
            Ok(heads)
        })
    }

    /// The embeddings of every node's texts of `policy` (its examples, then its terms), looked
    /// up once per policy; the example cache is written when some had to be computed.
    pub fn policy_texts(&self, policy: &Policy) -> Result<Arc<PolicyTexts>, EncoderError> {
        memoized(&self.policy_texts, topics::fingerprint(policy), || {
            let known = self.known_examples();
            let texts = topics::embed_texts(policy, |text| self.example(text))?;
            if let Some(cache) = &self.cache
                && self.known_examples() > known
            {
                cache.save_examples(&self.examples);
            }
            Ok(Arc::new(texts))
        })
    }

    /// The embedding of a policy example (read as [`Semantic::embed_views`] reads a text's
    /// folded view), computed once.
    pub fn example(&self, text: &str) -> Result<Arc<[f32]>, EncoderError> {
        let reading = spell_out(&fold(text)).into_owned();
        if let Some(v) = self
            .examples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&reading)
        {
            if let Some(cache) = &self.cache {
                cache.used(&reading);
            }
            return Ok(v.clone());
        }
        let windows = self.encoder.embed(&reading)?;
        let vector: Arc<[f32]> = windows.into_iter().next().unwrap_or_default().into();
        self.examples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reading, vector.clone());
        Ok(vector)
    }
}

/// What `map` holds under `key`, made by `make` and kept there the first time. (Two threads
/// may both make it; the values are the same.)
fn memoized<T>(
    map: &Mutex<HashMap<u64, Arc<T>>>,
    key: u64,
    make: impl FnOnce() -> Result<Arc<T>, EncoderError>,
) -> Result<Arc<T>, EncoderError> {
    if let Some(value) = map.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(value.clone());
    }
    let value = make()?;
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, value.clone());
    Ok(value)
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    crate::encoder::dot(a, b)
}
