//! The embedding layer: what a text means, not only which words it uses.
//!
//! A text is embedded (its folded reading and any decoded payload) and compared with each
//! off-limits node's examples; a node fires when the nearest example is within the node's
//! threshold. A trained [`Head`] also scores the text for hazards in general, so that harm
//! phrased unlike any example is still caught; it cites the hazard whose examples are nearest.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, Examples};
use crate::encoder::{Encoder, EncoderError, TUNED_LAYERS, TunedLayers, WINDOW};
use crate::head::Head;
use crate::normalize::{View, ViewKind, fold, spell_out};
use crate::topics::{self, PolicyTexts, TopicHeads};
use crate::tune;
use lore_canon::cache::{FNV_START, fnv};
use lore_canon::policy::{Policy, PolicyKind};

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
    /// Where examples' embeddings, tunings and topic heads are kept between runs, if anywhere.
    cache: Option<Cache>,
    /// Topic heads by policy fingerprint: trained once per policy, shared by its rails.
    topic_heads: Mutex<HashMap<u64, Slot<TopicHeads>>>,
    /// The embeddings of each policy's texts, by policy fingerprint.
    policy_texts: Mutex<HashMap<u64, Slot<PolicyTexts>>>,
    /// Each policy's tuning of the encoder, by policy fingerprint.
    tunings: Mutex<HashMap<u64, Slot<Tuning>>>,
    /// Told how far a tuning has got (pairs done, pairs in all), if anyone is.
    progress: Option<Arc<dyn Fn(usize, usize) + Send + Sync>>,
    /// The last lines embedded by [`Semantic::embed_views`], by reading: a turn's retrieval
    /// asks for the line the input rail has just embedded.
    recent: Mutex<VecDeque<(String, Arc<[f32]>)>>,
}

/// Lines [`Semantic::line`] can find without the encoder: enough for the turns of a busy
/// server that are between the input rail and retrieval at once.
const RECENT_LINES: usize = 32;

/// One policy's tuning of the encoder ([`crate::tune`]): the upper layers tuned on the
/// policy's texts, and those texts' embeddings through them. The topic side of the rails reads
/// these; the hazard side keeps the shipped layers, which the hazard head was trained on.
pub struct Tuning {
    layers: TunedLayers,
    texts: Arc<PolicyTexts>,
}

impl std::fmt::Debug for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tuning")
            .field("nodes", &self.texts.len())
            .finish_non_exhaustive()
    }
}

impl Tuning {
    /// The embeddings of every node's texts through the tuned layers.
    pub fn texts(&self) -> &Arc<PolicyTexts> {
        &self.texts
    }
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
    /// Its embedding through the shipped encoder.
    pub vector: Vec<f32>,
    /// Its embedding through a policy's [`Tuning`], where one was asked for.
    pub topic: Option<Vec<f32>>,
}

impl Embedded {
    /// What the topic side of the rails reads: the tuned embedding, else the shipped one.
    pub fn topic_vector(&self) -> &[f32] {
        self.topic.as_deref().unwrap_or(&self.vector)
    }
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
            tunings: Mutex::new(HashMap::new()),
            progress: None,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_LINES)),
        }
    }

    /// Tells `progress` how far each tuning of the encoder to a policy has got (pairs done,
    /// pairs in all): minutes of work the first time a policy is seen.
    pub fn with_progress(mut self, progress: Arc<dyn Fn(usize, usize) + Send + Sync>) -> Semantic {
        self.progress = Some(progress);
        self
    }

    /// Keeps the embeddings of policy examples, each policy's tuning and the topic heads in
    /// `dir` between runs ([`crate::cache`]), so that a policy's rails are built without
    /// embedding every example, tuning the encoder and fitting its heads again: the examples
    /// the folder holds are read now, a tuning when its policy is first asked for; each file is
    /// rewritten when what it keeps had to be made. Costs a few encoder passes and a toy
    /// tuning, to fingerprint the encoder and the tuner.
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
    /// With a policy's `tuning`, each window is also embedded through it.
    pub fn embed_views(
        &self,
        views: &[View],
        tuning: Option<&Tuning>,
    ) -> Result<Vec<Embedded>, EncoderError> {
        let mut out = Vec::new();
        for view in views {
            if matches!(
                view.kind,
                ViewKind::Folded | ViewKind::Base64 | ViewKind::Rot13
            ) {
                let text = spell_out(&view.text);
                let first = out.len();
                match tuning {
                    Some(tuning) => {
                        for (vector, topic) in self.encoder.embed_tuned(&text, &tuning.layers)? {
                            out.push(Embedded {
                                view: view.kind,
                                vector,
                                topic: Some(topic),
                            });
                        }
                    }
                    None => {
                        for vector in self.encoder.embed(&text)? {
                            out.push(Embedded {
                                view: view.kind,
                                vector,
                                topic: None,
                            });
                        }
                    }
                }
                if view.kind == ViewKind::Folded
                    && let Some(embedded) = out.get(first)
                {
                    self.remember_line(text.into_owned(), embedded.vector.as_slice().into());
                }
            }
        }
        Ok(out)
    }

    /// The embedding of a player's line, read as [`Semantic::embed_views`] reads its folded
    /// view (its first window): the one the input rail just made when there is one, else a
    /// pass of the encoder. Lines are not kept beyond the last few.
    pub fn line(&self, text: &str) -> Result<Arc<[f32]>, EncoderError> {
        let reading = spell_out(&fold(text)).into_owned();
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, vector)) = recent.iter().find(|(r, _)| *r == reading) {
            return Ok(vector.clone());
        }
        drop(recent);
        let vector: Arc<[f32]> = self
            .encoder
            .embed(&reading)?
            .into_iter()
            .next()
            .unwrap_or_default()
            .into();
        self.remember_line(reading, vector.clone());
        Ok(vector)
    }

    fn remember_line(&self, reading: String, vector: Arc<[f32]>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back((reading, vector));
    }

    /// The encoder tuned to `policy` ([`crate::tune`]), read from the cache or tuned on first
    /// use: minutes on two cores for a policy of a few thousand texts.
    pub fn tuning(&self, policy: &Policy) -> Result<Arc<Tuning>, EncoderError> {
        let key = topics::fingerprint(policy);
        memoized(&self.tunings, key, || {
            let texts = tuning_texts(policy);
            if let Some((parameters, vectors)) = self.cache.as_ref().and_then(|c| c.tuning(key))
                && parameters.len() == TUNED_LAYERS
                && vectors.len() == texts.len()
                && let Ok(layers) = TunedLayers::new(&parameters)
            {
                return Ok(Arc::new(Tuning {
                    layers,
                    texts: Arc::new(by_node(policy, vectors)),
                }));
            }
            let started = std::time::Instant::now();
            let lower = texts
                .iter()
                .map(|(class, key, reading)| {
                    let pieces = self.encoder.pieces(reading)?;
                    let window = &pieces[..pieces.len().min(WINDOW - 2)];
                    let states = self.encoder.lower_states(window);
                    Ok(tune::Text {
                        class: *class,
                        key: *key,
                        embedding: self.encoder.finish_shipped(states.clone()),
                        states,
                    })
                })
                .collect::<Result<Vec<_>, EncoderError>>()?;
            let mut parameters = self.encoder.upper_parameters().to_vec();
            let progress = |done: usize, all: usize| {
                if let Some(progress) = &self.progress {
                    progress(done, all);
                }
            };
            tune::tune(&mut parameters, &lower, &tune::SCHEDULE, &progress);
            let layers =
                TunedLayers::new(&parameters).map_err(|e| EncoderError::Tuning(e.to_string()))?;
            let vectors: Vec<Arc<[f32]>> = lower
                .into_iter()
                .map(|text| self.encoder.finish_tuned(text.states, &layers).into())
                .collect();
            tracing::info!(
                texts = texts.len(),
                elapsed_s = started.elapsed().as_secs(),
                "tuned the encoder's upper layers to the policy"
            );
            if let Some(cache) = &self.cache {
                cache.save_tuning(key, &parameters, &vectors);
            }
            Ok(Arc::new(Tuning {
                layers,
                texts: Arc::new(by_node(policy, vectors)),
            }))
        })
    }

    /// The topic heads of `policy`, read from the cache or trained on first use
    /// ([`crate::topics`]) over its texts' embeddings through its [`Tuning`].
    pub fn topic_heads(&self, policy: &Policy) -> Result<Arc<TopicHeads>, EncoderError> {
        let key = topics::fingerprint(policy);
        self.heads_over(policy, key, || Ok(self.tuning(policy)?.texts().clone()))
    }

    /// The topic heads of `policy` over its texts' embeddings through the shipped encoder: on
    /// the hazard head's scale, which was trained there, so that the two can be compared.
    pub fn shipped_topic_heads(&self, policy: &Policy) -> Result<Arc<TopicHeads>, EncoderError> {
        let key = fnv(topics::fingerprint(policy), b"shipped encoder");
        self.heads_over(policy, key, || self.policy_texts(policy))
    }

    /// The topic heads kept under `key`, else trained over the policy's `texts`.
    fn heads_over(
        &self,
        policy: &Policy,
        key: u64,
        texts: impl FnOnce() -> Result<Arc<PolicyTexts>, EncoderError>,
    ) -> Result<Arc<TopicHeads>, EncoderError> {
        memoized(&self.topic_heads, key, || {
            if let Some(heads) = self.cache.as_ref().and_then(|c| c.heads(key)) {
                return Ok(heads);
            }
            let texts = texts()?;
            let started = std::time::Instant::now();
            let heads = Arc::new(topics::train(policy, &texts));
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

/// The texts a policy's tuning is taught, in the policy's order (each node's examples, then
/// its terms), each with its class: its node, except that all ordinary talk is one class and
/// all hazards another (what tuning should separate is the topics, from each other and from
/// the rest). Read as [`Semantic::example`] reads them. The class and the text are also given
/// as keys of their own words (the node's IRI, the reading), which the rest of the policy does
/// not change ([`tune::Text`]).
fn tuning_texts(policy: &Policy) -> Vec<(u64, u64, String)> {
    policy
        .nodes
        .iter()
        .flat_map(|node| {
            let class = fnv(
                FNV_START,
                match node.kind {
                    PolicyKind::OrdinaryTalk => &b"ordinary talk"[..],
                    PolicyKind::Hazard => &b"hazard"[..],
                    PolicyKind::Topic | PolicyKind::Descriptor => node.iri.as_bytes(),
                },
            );
            node.examples.iter().chain(&node.terms).map(move |text| {
                let reading = spell_out(&fold(text)).into_owned();
                (class, fnv(class, reading.as_bytes()), reading)
            })
        })
        .collect()
}

/// `vectors`, one per text of [`tuning_texts`], by node.
fn by_node(policy: &Policy, vectors: Vec<Arc<[f32]>>) -> PolicyTexts {
    let mut vectors = vectors.into_iter();
    policy
        .nodes
        .iter()
        .map(|node| {
            let count = node.examples.len() + node.terms.len();
            (node.iri.clone(), vectors.by_ref().take(count).collect())
        })
        .collect()
}

/// What `map` holds under `key`, made by `make` and kept there the first time. Callers
/// asking for the same key wait for the first to make it (a tuning takes minutes); a failure
/// is not kept.
fn memoized<T>(
    map: &Mutex<HashMap<u64, Slot<T>>>,
    key: u64,
    make: impl FnOnce() -> Result<Arc<T>, EncoderError>,
) -> Result<Arc<T>, EncoderError> {
    let slot = map
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone();
    let mut value = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(value) = &*value {
        return Ok(value.clone());
    }
    let made = make()?;
    *value = Some(made.clone());
    Ok(made)
}

/// One key's value of a [`memoized`] map, made once.
type Slot<T> = Arc<Mutex<Option<Arc<T>>>>;

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    crate::encoder::dot(a, b)
}
