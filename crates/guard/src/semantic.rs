//! The embedding layer: what a text means, not only which words it uses.
//!
//! A text is embedded (its folded reading and any decoded payload) and compared with each
//! off-limits node's examples; a node fires when the nearest example is within the node's
//! threshold. A trained [`Head`] also scores the text for hazards in general, so that harm
//! phrased unlike any example is still caught; it cites the hazard whose examples are nearest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::encoder::{Encoder, EncoderError};
use crate::head::Head;
use crate::normalize::{View, ViewKind, fold, spell_out};
use crate::topics::{self, TopicHeads};
use lore_canon::cache::{FNV_START, fnv, write_replacing};
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
    examples: Mutex<HashMap<String, Arc<[f32]>>>,
    /// Where the examples' embeddings are kept between runs, if anywhere.
    example_cache: Option<ExampleCache>,
    /// Topic heads by policy fingerprint: trained once per policy, shared by its rails.
    topic_heads: Mutex<HashMap<u64, Arc<TopicHeads>>>,
}

/// A file of policy examples' embeddings, valid for one encoder.
struct ExampleCache {
    file: PathBuf,
    /// What the encoder makes of a few fixed sentences, hashed: a file written by another
    /// encoder, or by arithmetic that gives other bits, has another fingerprint.
    fingerprint: u64,
    /// How many embeddings the file holds (so that it is rewritten only when there are more).
    stored: Mutex<usize>,
}

/// The first bytes of an example cache file.
const EXAMPLE_CACHE_MAGIC: &[u8; 8] = b"LOREEMB1";

/// Sentences whose embeddings fingerprint an encoder: short, medium and long, so that every
/// path of a pass (one row or pairs of rows a thread, one window) is taken.
const FINGERPRINT_PROBES: [&str; 3] = [
    "Hello there.",
    "The lamplighter walked along the quay at dusk, lighting every lamp by the river.",
    "Will you tell me, before the fog comes in off the marsh tonight, where the ferry \
     stops, who keeps the lighthouse, and whether the old chapel bell still rings at \
     midnight when nobody is pulling its rope?",
];

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
            example_cache: None,
            topic_heads: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the embeddings of policy examples in `file` between runs, so that a policy's topic
    /// heads are trained without embedding every example again: what the file holds is read
    /// now (a file written by another encoder, or damaged, is ignored with a warning), and the
    /// file is rewritten whenever topic heads were trained from examples it lacked. Costs a
    /// few encoder passes, to fingerprint the encoder.
    pub fn with_example_cache(mut self, file: PathBuf) -> Result<Semantic, EncoderError> {
        let mut fingerprint = FNV_START;
        for probe in FINGERPRINT_PROBES {
            for window in self.encoder.embed(probe)? {
                for value in window {
                    fingerprint = fnv(fingerprint, &value.to_le_bytes());
                }
            }
        }
        let stored = match std::fs::read(&file) {
            Ok(bytes) => match read_example_cache(&bytes, fingerprint) {
                Ok(examples) => {
                    let count = examples.len();
                    *self.examples.get_mut().unwrap_or_else(|e| e.into_inner()) = examples;
                    count
                }
                Err(why) => {
                    tracing::warn!(file = %file.display(), "ignoring the example cache: {why}");
                    0
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::warn!(file = %file.display(), "ignoring the example cache: {e}");
                0
            }
        };
        self.example_cache = Some(ExampleCache {
            file,
            fingerprint,
            stored: Mutex::new(stored),
        });
        Ok(self)
    }

    /// How many policy examples' embeddings are held (computed or read from the cache).
    pub fn known_examples(&self) -> usize {
        self.examples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Writes the example cache if it holds fewer embeddings than are known. A failure is
    /// logged, not returned: the cache only saves time.
    fn save_example_cache(&self) {
        let Some(cache) = &self.example_cache else {
            return;
        };
        let mut stored = cache.stored.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let examples = self.examples.lock().unwrap_or_else(|e| e.into_inner());
            if examples.len() <= *stored {
                return;
            }
            *stored = examples.len();
            write_example_cache(&examples, cache.fingerprint)
        };
        if let Err(e) = write_replacing(&cache.file, &bytes) {
            tracing::warn!(file = %cache.file.display(), "could not write the example cache: {e}");
        }
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

    /// The topic heads of `policy`, trained on first use ([`crate::topics`]).
    pub fn topic_heads(&self, policy: &Policy) -> Result<Arc<TopicHeads>, EncoderError> {
        let key = topics::fingerprint(policy);
        if let Some(heads) = self
            .topic_heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(heads.clone());
        }
        let started = std::time::Instant::now();
        let heads = Arc::new(topics::train(policy, |text| self.example(text))?);
        tracing::info!(
            topics = heads.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "trained the policy's topic heads"
        );
        self.save_example_cache();
        self.topic_heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, heads.clone());
        Ok(heads)
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

/// An example cache file: [`EXAMPLE_CACHE_MAGIC`], the encoder's fingerprint, then per
/// example the length of its reading, the reading (UTF-8), its dimension and its values, all
/// little-endian.
fn write_example_cache(examples: &HashMap<String, Arc<[f32]>>, fingerprint: u64) -> Vec<u8> {
    let mut out = EXAMPLE_CACHE_MAGIC.to_vec();
    out.extend(fingerprint.to_le_bytes());
    let mut sorted: Vec<_> = examples.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (reading, vector) in sorted {
        for len in [reading.len(), vector.len()] {
            out.extend(u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        }
        out.extend(reading.as_bytes());
        for value in vector.iter() {
            out.extend(value.to_le_bytes());
        }
    }
    out
}

/// The examples of a cache file written for the encoder with `fingerprint`, or what is wrong.
fn read_example_cache(
    bytes: &[u8],
    fingerprint: u64,
) -> Result<HashMap<String, Arc<[f32]>>, String> {
    let mut rest = bytes
        .strip_prefix(EXAMPLE_CACHE_MAGIC)
        .ok_or("not an example cache (its first bytes are wrong)")?;
    let written_for = u64::from_le_bytes(take(&mut rest, bytes.len())?);
    if written_for != fingerprint {
        return Err("written for another encoder".into());
    }
    let mut examples = HashMap::new();
    while !rest.is_empty() {
        let reading_len = u32::from_le_bytes(take(&mut rest, bytes.len())?) as usize;
        let dimension = u32::from_le_bytes(take(&mut rest, bytes.len())?) as usize;
        let reading = take_slice(&mut rest, reading_len, bytes.len())?;
        let reading = std::str::from_utf8(reading)
            .map_err(|e| format!("an example's reading is not UTF-8: {e}"))?
            .to_owned();
        let values = take_slice(&mut rest, dimension.saturating_mul(4), bytes.len())?;
        let vector: Arc<[f32]> = values
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        examples.insert(reading, vector);
    }
    Ok(examples)
}

/// The next `N` bytes of `rest`, as an array; `total` is the file's length, for the error.
fn take<const N: usize>(rest: &mut &[u8], total: usize) -> Result<[u8; N], String> {
    let head = take_slice(rest, N, total)?;
    head.try_into().map_err(|_| "cut short".to_owned())
}

/// The next `n` bytes of `rest`; `total` is the file's length, for the error.
fn take_slice<'a>(rest: &mut &'a [u8], n: usize, total: usize) -> Result<&'a [u8], String> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or_else(|| format!("cut short at byte {}", total - rest.len()))?;
    *rest = tail;
    Ok(head)
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    crate::encoder::dot(a, b)
}
