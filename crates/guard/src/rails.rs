//! Decisions: which policy nodes a text touches that are off limits for one character in one
//! production, and what the rails do about it.
//!
//! Which nodes are off limits, and why, depends only on the production and the character, so
//! [`Rails::new`] settles it once (and embeds the blocked nodes' examples); a check is then the
//! normalised views of the text run through one automaton of the blocked nodes' terms, and,
//! with the embedding layer, the text's embedding compared with the blocked hazards' examples
//! and scored by the topics' heads and the hazard head.

use std::sync::Arc;

use lore_canon::World;
use lore_canon::policy::{Policy, PolicyKind, PolicyNode, RailAction};

use crate::encoder::EncoderError;
use crate::head::Head;
use crate::lexicon::{Lexicon, LexiconError, Term};
use crate::normalize::{View, ViewKind, fold, views};
use crate::semantic::{Embedded, Semantic, Tuning, cosine};
use crate::topics;

/// How similar a text must be to a hazard's example to fire it, when the hazard sets no
/// `lore:threshold`. Topics are read by their heads alone: with a few dozen examples each,
/// nearest-example similarity fired on lines that share a setting's words with an example
/// ("this fog", "lamplighter") and, on the development topics set, added no blocking to the
/// heads at any threshold from 0.5 to 0.9.
pub const DEFAULT_SIMILARITY: f32 = 0.5;

/// How sure a topic's heads (the mean of its head over the tuned encoder and its head over the
/// shipped one) must be that a text is about the topic to fire it. Chosen on the development
/// topics sets (docs/benchmarks.md).
pub const TOPIC_HEAD_PROBABILITY: f32 = 0.5;

/// [`TOPIC_HEAD_PROBABILITY`] on the output rail, for a sentence of a reply: the heads were
/// taught on players' lines and read narrative less surely, and the input rail has already
/// deflected what a player asked. Chosen on the development half of the model's labelled
/// sentences (docs/benchmarks.md); the hazard head keeps its bar on both rails.
pub const OUTPUT_TOPIC_HEAD_PROBABILITY: f32 = 0.6;

/// A topic's head does not fire on a text that is nearer, by more than this cosine, to a text
/// of talk allowed here (ordinary talk, and the examples and terms of topics allowed here) than
/// to every text the head was taught as the topic. The head is one linear boundary across the
/// whole embedding space, and lines that share words with a topic fall on its side while they
/// sit beside allowed talk; the nearest texts read them locally. Tuning already moves much of
/// such talk away from the topics, so no margin is needed (docs/benchmarks.md).
pub const NEARER_ALLOWED_MARGIN: f32 = 0.0;

/// The embedding layer's side of the rails: each blocked node's examples (read through the
/// policy's tuning for topics, the shipped encoder for hazards) and heads, and the texts and
/// heads of talk allowed here. `with_topics` is false for rails that block hazards alone.
fn semantic_rails(
    layer: &Arc<Semantic>,
    policy: &Policy,
    with_topics: bool,
    blocked: &[Blocked],
    blocked_nodes: Vec<&PolicyNode>,
    allowed_topics: &[&str],
) -> Result<SemanticRails, GuardError> {
    // Topics are read through the policy's tuning; rails that block hazards alone
    // have no topic in view, and need neither.
    let (heads, shipped_heads, tuning) = if with_topics {
        (
            layer.topic_heads(policy)?,
            layer.shipped_topic_heads(policy)?,
            Some(layer.tuning(policy)?),
        )
    } else {
        (Arc::default(), Arc::default(), None)
    };
    let texts = layer.policy_texts(policy)?;
    let topic_texts = tuning.as_ref().map_or(&texts, |t| t.texts());
    let embedded_texts = |keep: &dyn Fn(&PolicyNode) -> bool| -> Vec<Arc<[f32]>> {
        policy
            .nodes
            .iter()
            .filter(|n| keep(n))
            .flat_map(|n| topics::node_texts(topic_texts, &n.iri).iter().cloned())
            .collect()
    };
    let topic_head = |iri: &str| {
        Some(TopicHead {
            tuned: heads.get(iri)?.clone(),
            shipped: shipped_heads.get(iri)?.clone(),
        })
    };
    let lineages = topics::lineages(policy);
    let nodes = blocked_nodes
        .into_iter()
        .zip(blocked)
        .map(|(node, b)| {
            let read = match b.rule {
                Rule::Hazard(_) => &texts,
                _ => topic_texts,
            };
            let head = topic_head(&node.iri);
            let taught = match head {
                Some(_) => embedded_texts(&|n: &PolicyNode| {
                    lineages[n.iri.as_str()].contains(&node.iri.as_str())
                }),
                None => Vec::new(),
            };
            NodeSemantics {
                threshold: node.threshold.unwrap_or(DEFAULT_SIMILARITY),
                // A node's texts are its examples, then its terms.
                examples: node
                    .examples
                    .iter()
                    .cloned()
                    .zip(topics::node_texts(read, &node.iri).iter().cloned())
                    .collect(),
                head,
                taught,
            }
        })
        .collect();
    let allowed_texts = embedded_texts(&|n: &PolicyNode| {
        n.kind == PolicyKind::OrdinaryTalk || allowed_topics.contains(&n.iri.as_str())
    });
    Ok(SemanticRails {
        layer: layer.clone(),
        tuning,
        nodes,
        allowed_texts,
        allowed_heads: allowed_topics
            .iter()
            .filter_map(|iri| topic_head(iri))
            .collect(),
    })
}

/// Which rail judges a text. The topics' heads were taught on players' lines; a sentence of a
/// reply is narrative, and they read it less surely, so the output rail holds them to a bar
/// of its own ([`OUTPUT_TOPIC_HEAD_PROBABILITY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rail {
    /// A player's line (or text proposed for canon).
    Input,
    /// A sentence of a character's reply.
    Output,
}

impl Rail {
    /// How sure a topic's heads must be to fire it.
    fn topic_bar(self) -> f32 {
        match self {
            Rail::Input => TOPIC_HEAD_PROBABILITY,
            Rail::Output => OUTPUT_TOPIC_HEAD_PROBABILITY,
        }
    }
}

/// What the rails decided for a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Nothing off limits.
    Allow,
    /// The character steers away in its own voice.
    Deflect,
    /// The character declines plainly.
    Refuse,
    /// The session ends.
    EndSession,
}

impl From<RailAction> for Action {
    fn from(a: RailAction) -> Action {
        match a {
            RailAction::Deflect => Action::Deflect,
            RailAction::Refuse => Action::Refuse,
            RailAction::EndSession => Action::EndSession,
        }
    }
}

impl Action {
    /// Its name on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deflect => "deflect",
            Action::Refuse => "refuse",
            Action::EndSession => "end_session",
        }
    }
}

/// Why a node is off limits here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// It is (or falls under) a hazard: off limits everywhere. Carries the hazard's IRI.
    Hazard(String),
    /// The studio puts it (or a broader node, named) off limits in every production.
    Studio(String),
    /// The production puts it (or a broader node, named) off limits.
    Production(String),
    /// The speaking character puts it (or a broader node, named) off limits.
    Character(String),
    /// It needs a rating (IRI) above the production's.
    Rating(String),
}

/// Which layer of the rails fired a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// One of the node's terms is in the text.
    Lexicon,
    /// The text is close in meaning to one of the node's examples.
    Similarity,
    /// The hazard head scored the text as harmful; the node is the nearest hazard.
    Head,
    /// The topic's own head ([`crate::topics`]) scored the text as about the topic.
    Topic,
}

impl Layer {
    /// Its name on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Lexicon => "lexicon",
            Layer::Similarity => "similarity",
            Layer::Head => "head",
            Layer::Topic => "topic",
        }
    }
}

/// One policy node that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The node's IRI.
    pub node: String,
    /// The node's name.
    pub label: String,
    /// Why it is off limits here.
    pub rule: Rule,
    /// Which layer fired it.
    pub layer: Layer,
    /// The term found, or the example the text is nearest to.
    pub term: String,
    /// The reading of the text it was found in.
    pub view: ViewKind,
    /// How sure the layer is, 0..1: the lexicon 1, similarity the cosine to the example, the
    /// head its probability.
    pub score: f32,
}

/// The rails' decision on one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The nodes that fired, most severe first.
    pub fired: Vec<Fired>,
}

/// A node that is off limits here, with why and what to do.
#[derive(Debug, Clone)]
struct Blocked {
    node: String,
    label: String,
    rule: Rule,
    action: Action,
}

/// What can go wrong building the rails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A policy term folds to nothing, so it could never match.
    #[error("policy node {node}: term {term:?} is empty once normalised")]
    EmptyTerm {
        /// The node.
        node: String,
        /// The term.
        term: String,
    },
    /// The matcher could not be built.
    #[error(transparent)]
    Lexicon(#[from] LexiconError),
    /// The encoder failed on a text or an example.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
}

/// The rails for one character of one production.
#[derive(Debug, Clone)]
pub struct Rails {
    blocked: Vec<Blocked>,
    lexicon: Option<Lexicon<usize>>,
    semantic: Option<SemanticRails>,
}

/// The embedding layer's part of the rails: the blocked nodes' example embeddings.
#[derive(Debug, Clone)]
struct SemanticRails {
    layer: Arc<Semantic>,
    /// The encoder tuned to the policy, which the topic side reads (none for rails that block
    /// hazards alone, where no topic is in view).
    tuning: Option<Arc<Tuning>>,
    /// Per blocked node (same index).
    nodes: Vec<NodeSemantics>,
    /// The heads of topics allowed here. A blocked topic fires only when its heads are surer
    /// than every one of these: a line more about romance than about sex is romance, which a
    /// Teen audience may hear. The hazard head fires only when it is surer than every one of
    /// their heads over the shipped encoder, on its own scale (coarse abuse that it flags is
    /// strong language, which a Mature production allows).
    allowed_heads: Vec<TopicHead>,
    /// The embeddings of talk allowed here, through the tuning: ordinary talk's examples, and
    /// the examples and terms of topics allowed here (see [`NEARER_ALLOWED_MARGIN`]).
    allowed_texts: Vec<Arc<[f32]>>,
}

/// A policy example and its embedding.
type Example = (String, Arc<[f32]>);

/// A topic's two heads ([`crate::topics`]), trained on the policy's texts through the tuned
/// encoder and through the shipped one. Tuning sharpens what the policy's own texts say and
/// the shipped encoder keeps what it knew before; on the development sets the mean of the two
/// blocked more and deflected less than the tuned head alone (see [`TOPIC_HEAD_PROBABILITY`]).
#[derive(Debug, Clone)]
struct TopicHead {
    tuned: Head,
    shipped: Head,
}

impl TopicHead {
    /// The mean of the two heads' probabilities over the surest embedded window, and its
    /// reading.
    fn score(&self, embedded: &[Embedded]) -> Option<(f32, ViewKind)> {
        surest_window(embedded, |e| {
            (self.tuned.score(e.topic_vector()) + self.shipped.score(shipped(e))) / 2.0
        })
    }
}

/// What the embedding layer knows of one blocked node.
#[derive(Debug, Clone)]
struct NodeSemantics {
    /// The cosine to an example at which a hazard fires.
    threshold: f32,
    /// A hazard's examples through the shipped encoder, a topic's through the tuning.
    examples: Vec<Example>,
    /// A topic's trained heads: what fires a topic, citing the nearest example.
    head: Option<TopicHead>,
    /// The embeddings (through the tuning) of what the head was taught as the topic: the
    /// examples and terms of the topic and of every narrower one (empty without a head).
    taught: Vec<Arc<[f32]>>,
}

/// What the policy puts off limits for one speaker: the production's and the character's
/// rules and the audience's age.
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    /// Nodes the production puts off limits.
    pub production_off_limits: &'a [String],
    /// Nodes the character puts off limits.
    pub character_off_limits: &'a [String],
    /// The youngest age the production's rating admits.
    pub age: i64,
}

impl Rails {
    /// Settles which of `world`'s policy nodes are off limits for `character` (an IRI), and
    /// builds the matcher of their terms and, given the embedding layer, embeds their examples.
    pub fn new(
        world: &World,
        character: &str,
        semantic: Option<&Arc<Semantic>>,
    ) -> Result<Rails, GuardError> {
        Self::in_production(world, world.policy.off_limits_for(character), semantic)
    }

    /// The rails of `world`'s production for text no character speaks (material proposed
    /// for canon): its hazards, its own off-limit topics and its rating.
    pub fn for_production(
        world: &World,
        semantic: Option<&Arc<Semantic>>,
    ) -> Result<Rails, GuardError> {
        Self::in_production(world, &[], semantic)
    }

    fn in_production(
        world: &World,
        character_off_limits: &[String],
        semantic: Option<&Arc<Semantic>>,
    ) -> Result<Rails, GuardError> {
        let policy = &world.policy;
        // A production without a known rating is treated as the youngest audience.
        let age = world
            .production
            .rating
            .as_deref()
            .and_then(|rating| policy.rating(rating))
            .map_or(0, |r| r.minimum_age);
        let audience = Audience {
            production_off_limits: &policy.production_off_limits,
            character_off_limits,
            age,
        };
        Self::for_audience(policy, audience, semantic)
    }

    /// Rails that block only the hazards: what is off limits everywhere, whatever the
    /// production, rating or character.
    pub fn hazards(policy: &Policy, semantic: Option<&Arc<Semantic>>) -> Result<Rails, GuardError> {
        Self::build(policy, None, semantic)
    }

    /// The rails for an audience of `policy`.
    pub fn for_audience(
        policy: &Policy,
        audience: Audience<'_>,
        semantic: Option<&Arc<Semantic>>,
    ) -> Result<Rails, GuardError> {
        Self::build(policy, Some(audience), semantic)
    }

    /// The rails for `audience`, or for the hazards alone without one (then no topic is in
    /// view, to block or to excuse a text).
    fn build(
        policy: &Policy,
        audience: Option<Audience<'_>>,
        semantic: Option<&Arc<Semantic>>,
    ) -> Result<Rails, GuardError> {
        let mut blocked = Vec::new();
        let mut terms = Vec::new();
        let mut blocked_nodes = Vec::new();
        let mut allowed_topics = Vec::new();
        for node in &policy.nodes {
            // Ordinary talk is never off limits, whatever a rule names; `lore check` reports
            // such rules. (Its examples teach the topics' heads what they are not.)
            if node.kind == PolicyKind::OrdinaryTalk {
                continue;
            }
            let lineage = policy.lineage(&node.iri);
            let rule = match &audience {
                Some(audience) => rule_for(policy, &lineage, audience),
                None => hazard_rule(policy, &lineage),
            };
            let Some(rule) = rule else {
                if audience.is_some() {
                    allowed_topics.push(node.iri.as_str());
                }
                continue;
            };
            let action = lineage
                .iter()
                .filter_map(|iri| policy.node(iri))
                .filter_map(|n| n.action)
                .max()
                .map_or_else(|| default_action(&rule), Action::from);
            for term in &node.terms {
                if fold(term).is_empty() {
                    return Err(GuardError::EmptyTerm {
                        node: node.iri.clone(),
                        term: term.clone(),
                    });
                }
                terms.push(Term {
                    text: term.clone(),
                    node: blocked.len(),
                });
            }
            blocked_nodes.push(node);
            blocked.push(Blocked {
                node: node.iri.clone(),
                label: node.label.clone(),
                rule,
                action,
            });
        }
        let lexicon = if terms.is_empty() {
            None
        } else {
            Some(Lexicon::new(terms)?)
        };
        let semantic = semantic
            .map(|layer| {
                semantic_rails(
                    layer,
                    policy,
                    audience.is_some(),
                    &blocked,
                    blocked_nodes,
                    &allowed_topics,
                )
            })
            .transpose()?;
        Ok(Rails {
            blocked,
            lexicon,
            semantic,
        })
    }

    /// Checks `text` on the input rail: a player's line, or text proposed for canon. (A
    /// sentence of a reply is judged by [`Rails::decide`] with [`Rail::Output`].)
    pub fn check(&self, text: &str) -> Result<Decision, GuardError> {
        let views = views(text);
        let embedded = self.embed(&views)?;
        Ok(self.decide(&views, &embedded, Rail::Input))
    }

    /// The embeddings of a text's readings as these rails read them: through the shipped
    /// encoder and the policy's tuning (none without the embedding layer).
    pub fn embed(&self, views: &[View]) -> Result<Vec<Embedded>, GuardError> {
        Ok(match &self.semantic {
            Some(s) => s.layer.embed_views(views, s.tuning.as_deref())?,
            None => Vec::new(),
        })
    }

    /// Whether `other` embeds text as these rails do ([`Rails::embed`]), so that one
    /// embedding serves both.
    pub fn embeds_like(&self, other: &Rails) -> bool {
        let tuning = |r: &Rails| {
            r.semantic
                .as_ref()
                .map(|s| s.tuning.as_ref().map(Arc::as_ptr))
        };
        tuning(self) == tuning(other)
    }

    /// The decision of `rail` on a text already read ([`views`]) and embedded
    /// ([`Rails::embed`]); what [`Rails::check`] does after the reading, for callers that judge
    /// one text under many rails of one policy, or a sentence of a reply.
    pub fn decide(&self, views: &[View], embedded: &[Embedded], rail: Rail) -> Decision {
        let mut fired: Vec<(Action, Fired)> = Vec::new();
        let mut seen = vec![false; self.blocked.len()];
        let mut fire = |index: usize, layer, term: String, view, score| {
            if std::mem::replace(&mut seen[index], true) {
                return;
            }
            let b = &self.blocked[index];
            fired.push((
                b.action,
                Fired {
                    node: b.node.clone(),
                    label: b.label.clone(),
                    rule: b.rule.clone(),
                    layer,
                    term,
                    view,
                    score,
                },
            ));
        };
        if let Some(lexicon) = &self.lexicon {
            for hit in lexicon.find(views) {
                fire(hit.node, Layer::Lexicon, hit.term, hit.view, 1.0);
            }
        }
        if let Some(semantic) = &self.semantic {
            let is_hazard = |index: usize| matches!(self.blocked[index].rule, Rule::Hazard(_));
            // Per hazard, its nearest example over every embedded window (a topic's is looked
            // up only to cite it).
            let nearest: Vec<Option<(f32, &str, ViewKind)>> = (0..semantic.nodes.len())
                .map(|index| {
                    is_hazard(index)
                        .then(|| nearest_example(&semantic.nodes[index], embedded, shipped))
                        .flatten()
                })
                .collect();
            // A topic allowed here that the text is as surely about overrules a blocked topic or
            // a hazard (a mild insult near a strong one is the mild kind where mild language
            // is allowed), each compared on its own scale. The allowed heads are scored once,
            // whatever fires.
            let allowed = &semantic.allowed_heads;
            let allowed_best = surest(allowed.iter().map(|head| head.score(embedded)));
            let allowed_topic = |probability: f32| allowed_best >= probability;
            // How near the text comes to talk allowed here: looked up once, when a head would
            // fire.
            let allowed_nearest = std::cell::OnceCell::new();
            let beside_allowed_talk = |taught: &[Arc<[f32]>]| {
                let allowed = *allowed_nearest
                    .get_or_init(|| nearest_cosine(&semantic.allowed_texts, embedded));
                allowed > nearest_cosine(taught, embedded) + NEARER_ALLOWED_MARGIN
            };
            for (index, node) in semantic.nodes.iter().enumerate() {
                if is_hazard(index)
                    && let Some((score, text, view)) =
                        nearest[index].filter(|n| n.0 >= node.threshold)
                {
                    fire(index, Layer::Similarity, text.to_owned(), view, score);
                }
                if let Some(head) = &node.head
                    && let Some((probability, view)) = head
                        .score(embedded)
                        .filter(|s| s.0 >= rail.topic_bar() && !allowed_topic(s.0))
                    && !beside_allowed_talk(&node.taught)
                {
                    let cited =
                        nearest_example(node, embedded, Embedded::topic_vector).map_or("", |n| n.1);
                    fire(index, Layer::Topic, cited.to_owned(), view, probability);
                }
            }
            let threshold = semantic.layer.hazard().threshold;
            if let Some((probability, view)) =
                head_score(&semantic.layer, embedded).filter(|s| s.0 >= threshold)
            {
                let nearest_hazard = (0..self.blocked.len())
                    .filter_map(|i| nearest[i].map(|(score, text, _)| (i, score, text)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((index, _, text)) = nearest_hazard
                    && surest(
                        allowed
                            .iter()
                            .map(|head| best_score(&head.shipped, embedded, shipped)),
                    ) < probability
                {
                    fire(index, Layer::Head, text.to_owned(), view, probability);
                }
            }
        }
        fired.sort_by_key(|(action, _)| std::cmp::Reverse(*action));
        Decision {
            action: fired.first().map_or(Action::Allow, |(a, _)| *a),
            fired: fired.into_iter().map(|(_, f)| f).collect(),
        }
    }

    /// The hazard head's score of an embedded text (0 without the embedding layer): the
    /// ranking behind the head's decision, for measuring it.
    pub fn hazard_score(&self, embedded: &[Embedded]) -> f32 {
        self.semantic
            .as_ref()
            .and_then(|s| head_score(&s.layer, embedded))
            .map_or(0.0, |(score, _)| score)
    }

    /// Whether the node `iri` is off limits here.
    pub fn blocks(&self, iri: &str) -> bool {
        self.blocked.iter().any(|b| b.node == iri)
    }

    /// How many policy nodes are off limits here.
    pub fn blocked_nodes(&self) -> usize {
        self.blocked.len()
    }
}

/// The hazard head's highest score over the embedded windows, and the reading it came from.
fn head_score(layer: &Semantic, embedded: &[Embedded]) -> Option<(f32, ViewKind)> {
    best_score(&layer.hazard().head, embedded, shipped)
}

/// A window's embedding through the shipped encoder, what the hazard side reads.
fn shipped(e: &Embedded) -> &[f32] {
    &e.vector
}

/// A node's example nearest to any embedded window (each window's vector as `read` picks it):
/// its cosine, text, and the window's reading.
fn nearest_example<'a>(
    node: &'a NodeSemantics,
    embedded: &[Embedded],
    read: fn(&Embedded) -> &[f32],
) -> Option<(f32, &'a str, ViewKind)> {
    let mut best: Option<(f32, &str, ViewKind)> = None;
    for e in embedded {
        for (text, vector) in &node.examples {
            let score = cosine(read(e), vector);
            if best.is_none_or(|(b, _, _)| score > b) {
                best = Some((score, text, e.view));
            }
        }
    }
    best
}

/// The highest cosine between an embedded window's topic vector and one of `vectors` (-1
/// with none).
fn nearest_cosine(vectors: &[Arc<[f32]>], embedded: &[Embedded]) -> f32 {
    embedded
        .iter()
        .flat_map(|e| vectors.iter().map(|v| cosine(e.topic_vector(), v)))
        .fold(-1.0, f32::max)
}

/// The highest of some heads' scores (-inf with none).
fn surest(scores: impl Iterator<Item = Option<(f32, ViewKind)>>) -> f32 {
    scores
        .flatten()
        .map(|s| s.0)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// A head's highest score over the embedded windows (each window's vector as `read` picks
/// it), and the reading it came from.
fn best_score(
    head: &Head,
    embedded: &[Embedded],
    read: fn(&Embedded) -> &[f32],
) -> Option<(f32, ViewKind)> {
    surest_window(embedded, |e| head.score(read(e)))
}

/// The highest of `score` over the embedded windows, and the reading it came from.
fn surest_window(
    embedded: &[Embedded],
    score: impl Fn(&Embedded) -> f32,
) -> Option<(f32, ViewKind)> {
    embedded
        .iter()
        .map(|e| (score(e), e.view))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

fn default_action(rule: &Rule) -> Action {
    match rule {
        Rule::Hazard(_) => Action::Refuse,
        Rule::Studio(_) | Rule::Production(_) | Rule::Character(_) | Rule::Rating(_) => {
            Action::Deflect
        }
    }
}

/// The hazard a node is (or falls under), if any: off limits everywhere.
fn hazard_rule(policy: &Policy, lineage: &[&str]) -> Option<Rule> {
    lineage
        .iter()
        .filter_map(|i| policy.node(i))
        .find(|n| n.kind == PolicyKind::Hazard)
        .map(|hazard| Rule::Hazard(hazard.iri.clone()))
}

/// Why a node is off limits here, if it is: the first of hazard, studio rule, character
/// rule, production rule, rating, looking at the node and every broader node (its `lineage`).
fn rule_for(policy: &Policy, lineage: &[&str], audience: &Audience<'_>) -> Option<Rule> {
    if let Some(hazard) = hazard_rule(policy, lineage) {
        return Some(hazard);
    }
    if let Some(i) = lineage
        .iter()
        .find(|i| policy.studio_off_limits.iter().any(|o| o == *i))
    {
        return Some(Rule::Studio((*i).to_owned()));
    }
    if let Some(i) = lineage
        .iter()
        .find(|i| audience.character_off_limits.iter().any(|o| o == *i))
    {
        return Some(Rule::Character((*i).to_owned()));
    }
    if let Some(i) = lineage
        .iter()
        .find(|i| audience.production_off_limits.iter().any(|o| o == *i))
    {
        return Some(Rule::Production((*i).to_owned()));
    }
    lineage
        .iter()
        .filter_map(|i| policy.node(i))
        .filter_map(|n| n.minimum_rating.as_deref())
        .find(|rating| {
            // An unknown rating is checked by `lore check`; here it blocks, to be safe.
            policy
                .rating(rating)
                .is_none_or(|r| r.minimum_age > audience.age)
        })
        .map(|rating| Rule::Rating(rating.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logistic(z: f32) -> f32 {
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn a_topic_is_the_mean_of_each_head_on_its_own_vector() {
        // The tuned head reads the first value, the shipped head the second.
        let head = TopicHead {
            tuned: Head {
                weights: vec![1.0, 0.0],
                bias: 0.0,
            },
            shipped: Head {
                weights: vec![0.0, 1.0],
                bias: 0.0,
            },
        };
        let window = |view, shipped: [f32; 2], tuned: [f32; 2]| Embedded {
            view,
            vector: shipped.to_vec(),
            topic: Some(tuned.to_vec()),
        };
        let embedded = [
            // Both heads fairly sure, each on its own vector.
            window(ViewKind::Folded, [0.0, 2.0], [2.0, 0.0]),
            // Both heads sure if each read the other's vector.
            window(ViewKind::Base64, [5.0, -2.0], [-2.0, 5.0]),
            // The tuned head certain, the shipped one certain it is not: the mean is unsure.
            window(ViewKind::Rot13, [0.0, -10.0], [10.0, 0.0]),
        ];
        let (probability, view) = head.score(&embedded).unwrap();
        assert!((probability - logistic(2.0)).abs() < 1e-6, "{probability}");
        assert_eq!(view, ViewKind::Folded);
        assert_eq!(head.score(&[]), None);
    }
}
