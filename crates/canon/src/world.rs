//! One production's canon, layered over the shared graphs it extends, held in memory.

use std::collections::HashMap;
use std::path::Path;

use oxigraph::model::{GraphNameRef, NamedNode, NamedNodeRef, NamedOrBlankNode, Term};

use crate::cache::{FNV_START, fnv, write_replacing};
use crate::consent::{LikenessConsent, LikenessUse, Portrayal};
use crate::error::CanonError;
use crate::names::{local_name, matches_name};
use crate::policy::{Policy, PolicyKind, PolicyNode, RailAction, Rating};
use crate::production::{self, Production};
use crate::store::CanonStore;
use crate::vocab;

/// Index of an [`Entity`] in [`World::entities`].
pub type EntityId = usize;
/// Index of a [`Fact`] in [`World::facts`].
pub type FactId = usize;

/// What sort of thing an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EntityKind {
    /// `lore:Character`
    Character,
    /// `lore:Place`
    Place,
    /// `lore:Object`
    Object,
    /// `lore:Faction`
    Faction,
    /// `lore:Event`
    Event,
    /// `lore:Concept`
    Concept,
}

/// A named thing of the story.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entity {
    /// Its IRI.
    pub iri: String,
    /// What it is.
    pub kind: EntityKind,
    /// Its main name (`rdfs:label`).
    pub name: String,
    /// Other names players may use.
    pub aliases: Vec<String>,
    /// For characters: who they are, for the model.
    pub persona: Option<String>,
    /// For characters: how they speak.
    pub speech_style: Option<String>,
    /// For characters: what they want.
    pub goals: Vec<String>,
    /// For characters: lines in their voice.
    pub sample_lines: Vec<String>,
    /// For characters: lines in their voice that steer away from an off-limits subject.
    pub deflections: Vec<String>,
    /// Productions it is declared to appear in.
    pub appears_in: Vec<String>,
    /// For characters: the beat order from which they are dead (`lore:diedAt`).
    pub died_at: Option<i64>,
}

impl Entity {
    /// Whether the entity is a character who is dead at `beat`.
    pub fn dead_at(&self, beat: Option<i64>) -> bool {
        matches!((self.died_at, beat), (Some(died), Some(beat)) if beat >= died)
    }
}

/// A span of story time, in beat numbers: `[from, until)`; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// First beat it holds at.
    pub from: Option<i64>,
    /// First beat it no longer holds at.
    pub until: Option<i64>,
}

impl Span {
    /// Whether the span holds at `beat`; with no beat (timeless session), everything holds.
    pub fn holds_at(&self, beat: Option<i64>) -> bool {
        let Some(beat) = beat else { return true };
        self.from.is_none_or(|f| f <= beat) && self.until.is_none_or(|u| beat < u)
    }

    /// Whether two spans share at least one beat.
    pub fn overlaps(&self, other: &Span) -> bool {
        let starts_before_other_ends = match (self.from, other.until) {
            (Some(f), Some(u)) => f < u,
            _ => true,
        };
        let other_starts_before_self_ends = match (other.from, self.until) {
            (Some(f), Some(u)) => f < u,
            _ => true,
        };
        starts_before_other_ends && other_starts_before_self_ends
    }
}

/// A structured claim a fact makes: `subject property value`, checkable for contradictions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// The entity's IRI.
    pub subject: String,
    /// The property's IRI.
    pub property: String,
    /// The value: an IRI or a literal's lexical form.
    pub value: String,
}

/// A statement of canon over a span of story time, and who knows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Fact {
    /// Its IRI.
    pub iri: String,
    /// The sentence that may be put to the model.
    pub statement: String,
    /// Entities it is about.
    pub about: Vec<EntityId>,
    /// When it holds.
    pub span: Span,
    /// Known to every character while it holds.
    pub common: bool,
    /// Marked secret: only its knowers know it.
    pub secret: bool,
    /// Characters who know it, and from which beat (`None`: from when it holds).
    pub knowers: Vec<(EntityId, Option<i64>)>,
    /// The structured claim, when the fact has one.
    pub claim: Option<Claim>,
    /// Phrases its writers say give it away (`lore:giveaway`), for the canon check of
    /// replies; never put to the model.
    pub giveaways: Vec<String>,
}

impl Fact {
    /// Whether `character` knows this fact at `beat`.
    pub fn known_by(&self, character: EntityId, beat: Option<i64>) -> bool {
        if self.common {
            return true;
        }
        self.knowers.iter().any(|&(who, since)| {
            who == character
                && match (since, beat) {
                    (Some(since), Some(beat)) => since <= beat,
                    _ => true,
                }
        })
    }
}

/// How a character stands towards another entity.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Relationship {
    /// Its IRI.
    pub iri: String,
    /// The character it belongs to.
    pub source: EntityId,
    /// Whom or what it is towards.
    pub target: EntityId,
    /// A word for it: mentor, rival, sister.
    pub kind: String,
    /// From -1 to 1.
    pub strength: Option<f64>,
    /// A sentence about it.
    pub description: Option<String>,
    /// When it holds.
    pub span: Span,
}

/// A named point of story time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Beat {
    /// Its IRI.
    pub iri: String,
    /// Its name.
    pub name: String,
    /// Its place on the timeline.
    pub order: i64,
}

/// One production's canon: its own graph layered over the shared graphs it extends.
///
/// Layering is per property: when the production's graph states a property of a node, its
/// values replace those of the shared graphs for that property; other properties stay shared.
/// A production's fact can also drop a shared fact with `lore:supersedes`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct World {
    /// The production.
    pub production: Production,
    /// Its entities.
    pub entities: Vec<Entity>,
    /// Its facts.
    pub facts: Vec<Fact>,
    /// Its relationships.
    pub relationships: Vec<Relationship>,
    /// Its beats, in story order.
    pub beats: Vec<Beat>,
    /// Its moral policy: the studio-wide graph `lore:policy` beneath its own rules.
    pub policy: Policy,
    /// Portrayals of its characters by real performers, with their likeness consent.
    pub portrayals: Vec<Portrayal>,
    /// The commit of canon this world was read at (empty before the first): what
    /// provenance records name as the canon a reply was grounded in.
    pub canon_revision: String,
    /// Rebuilt from `entities` after reading a snapshot.
    #[serde(skip)]
    entity_by_iri: HashMap<String, EntityId>,
}

/// Values of one property of one node, from the highest-priority graph that states it.
struct Layered {
    priority: usize,
    values: Vec<Term>,
}

type Description = HashMap<String, Layered>;

impl World {
    /// Reads the production named `production` (an IRI, its local name, or its title).
    pub fn load(store: &CanonStore, production: &str) -> Result<World, CanonError> {
        Self::read(store, production::production(store, production)?)
    }

    /// Like [`World::load`], but through a snapshot in `cache_dir` keyed by the store's canon
    /// revision, so only the first session after a change pays for reading the store. A
    /// missing, stale or unreadable snapshot is rebuilt; failing to write one only warns.
    pub fn load_cached(
        store: &CanonStore,
        production: &str,
        cache_dir: &Path,
    ) -> Result<World, CanonError> {
        let production = production::production(store, production)?;
        if store.path().as_os_str().is_empty() {
            return Self::read(store, production);
        }
        let key = snapshot_key(store, &production)?;
        let file = cache_dir.join(format!("{key:016x}.world"));
        if let Some(world) = std::fs::read(&file)
            .ok()
            .and_then(|bytes| postcard::from_bytes::<World>(&bytes).ok())
        {
            return Ok(world.indexed());
        }
        let world = Self::read(store, production)?;
        if let Err(e) = write_snapshot(&world, &file) {
            tracing::warn!("cannot write the world snapshot {}: {e}", file.display());
        }
        Ok(world)
    }

    fn indexed(mut self) -> World {
        self.entity_by_iri = self
            .entities
            .iter()
            .enumerate()
            .map(|(id, e)| (e.iri.clone(), id))
            .collect();
        self
    }

    fn read(store: &CanonStore, production: Production) -> Result<World, CanonError> {
        let mut graphs = vec![vocab::POLICY_GRAPH.as_str().to_owned()];
        graphs.extend(production.extends.iter().cloned());
        graphs.push(production.graph.clone());

        let mut nodes: HashMap<NamedOrBlankNode, Description> = HashMap::new();
        for (priority, graph) in graphs.iter().enumerate() {
            let graph = NamedNodeRef::new(graph).map_err(|e| CanonError::Malformed {
                subject: production.iri.clone(),
                message: format!("lore:graph is not an IRI: {e}"),
            })?;
            for quad in store.oxigraph().quads_for_pattern(
                None,
                None,
                None,
                Some(GraphNameRef::NamedNode(graph)),
            ) {
                let quad = quad?;
                // Writer-only notes are never read into a world, so no prompt can contain them.
                if quad.predicate == vocab::WRITER_NOTE {
                    continue;
                }
                let property = nodes
                    .entry(quad.subject)
                    .or_default()
                    .entry(quad.predicate.into_string())
                    .or_insert(Layered {
                        priority,
                        values: Vec::new(),
                    });
                if priority > property.priority {
                    property.priority = priority;
                    property.values.clear();
                }
                if priority == property.priority {
                    property.values.push(quad.object);
                }
            }
        }
        let mut world = Self::from_nodes(production, &nodes);
        world.canon_revision = store.revision()?;
        Ok(world)
    }

    fn from_nodes(production: Production, nodes: &HashMap<NamedOrBlankNode, Description>) -> World {
        let mut world = World {
            production,
            entities: Vec::new(),
            facts: Vec::new(),
            relationships: Vec::new(),
            beats: Vec::new(),
            policy: Policy::default(),
            portrayals: Vec::new(),
            canon_revision: String::new(),
            entity_by_iri: HashMap::new(),
        };
        let mut facts = Vec::new();
        let mut relationships = Vec::new();
        let mut knowledge = Vec::new();
        let mut policy_nodes = Vec::new();
        let mut portrayals = Vec::new();
        for (node, description) in nodes {
            let iri = node_key(node);
            for class in iris(description, vocab::RDF_TYPE) {
                let kind = match class {
                    c if c == vocab::CHARACTER.as_str() => Some(EntityKind::Character),
                    c if c == vocab::PLACE.as_str() => Some(EntityKind::Place),
                    c if c == vocab::OBJECT.as_str() => Some(EntityKind::Object),
                    c if c == vocab::FACTION.as_str() => Some(EntityKind::Faction),
                    c if c == vocab::EVENT.as_str() => Some(EntityKind::Event),
                    c if c == vocab::CONCEPT.as_str() => Some(EntityKind::Concept),
                    c if c == vocab::FACT.as_str() => {
                        facts.push((iri.clone(), description));
                        None
                    }
                    c if c == vocab::RELATIONSHIP.as_str() => {
                        relationships.push((iri.clone(), description));
                        None
                    }
                    c if c == vocab::KNOWLEDGE.as_str() => {
                        knowledge.push(description);
                        None
                    }
                    c if c == vocab::HAZARD.as_str() => {
                        policy_nodes.push((iri.clone(), PolicyKind::Hazard, description));
                        None
                    }
                    c if c == vocab::CONTENT_DESCRIPTOR.as_str() => {
                        policy_nodes.push((iri.clone(), PolicyKind::Descriptor, description));
                        None
                    }
                    c if c == vocab::TOPIC.as_str() => {
                        policy_nodes.push((iri.clone(), PolicyKind::Topic, description));
                        None
                    }
                    c if c == vocab::ORDINARY_TALK.as_str() => {
                        policy_nodes.push((iri.clone(), PolicyKind::OrdinaryTalk, description));
                        None
                    }
                    c if c == vocab::PORTRAYAL.as_str() => {
                        portrayals.push((iri.clone(), description));
                        None
                    }
                    c if c == vocab::RATING_CLASS.as_str() => {
                        if let Some(minimum_age) = integer(description, vocab::MINIMUM_AGE) {
                            world.policy.ratings.push(Rating {
                                label: text(description, vocab::RDFS_LABEL)
                                    .unwrap_or_else(|| local_name(&iri).to_owned()),
                                iri: iri.clone(),
                                minimum_age,
                            });
                        }
                        None
                    }
                    c if c == vocab::BEAT.as_str() => {
                        if let Some(order) = integer(description, vocab::ORDER) {
                            world.beats.push(Beat {
                                iri: iri.clone(),
                                name: text(description, vocab::RDFS_LABEL)
                                    .unwrap_or_else(|| local_name(&iri).to_owned()),
                                order,
                            });
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(kind) = kind {
                    let appears_in: Vec<String> = iris(description, vocab::APPEARS_IN)
                        .map(str::to_owned)
                        .collect();
                    if !appears_in.is_empty() && !appears_in.contains(&world.production.iri) {
                        continue;
                    }
                    let off_limits: Vec<String> = iris(description, vocab::OFF_LIMITS)
                        .map(str::to_owned)
                        .collect();
                    if !off_limits.is_empty() {
                        world
                            .policy
                            .character_off_limits
                            .push((iri.clone(), off_limits));
                    }
                    world
                        .entity_by_iri
                        .insert(iri.clone(), world.entities.len());
                    let name = text(description, vocab::RDFS_LABEL)
                        .unwrap_or_else(|| local_name(&iri).to_owned());
                    let expand = |t: String| expand_placeholders(&t, Some(&name));
                    let mut aliases = texts(description, vocab::ALIAS);
                    aliases.extend(texts(description, vocab::FIELD_NICKNAME));
                    world.entities.push(Entity {
                        iri: iri.clone(),
                        kind,
                        aliases,
                        persona: card_persona(description, &name),
                        speech_style: text(description, vocab::SPEECH_STYLE).map(expand),
                        goals: texts(description, vocab::GOAL)
                            .into_iter()
                            .map(expand)
                            .collect(),
                        sample_lines: card_sample_lines(description, &name),
                        deflections: texts(description, vocab::DEFLECTION)
                            .into_iter()
                            .map(expand)
                            .collect(),
                        appears_in,
                        died_at: integer(description, vocab::DIED_AT),
                        name,
                    });
                    break;
                }
            }
        }
        // HashMap order is arbitrary; sort so that prompts and outputs are reproducible.
        world.entities.sort_by(|a, b| a.iri.cmp(&b.iri));
        world.policy.nodes = policy_nodes
            .into_iter()
            .map(|(iri, kind, d)| policy_node(iri, kind, d))
            .collect();
        world.policy.nodes.sort_by(|a, b| a.iri.cmp(&b.iri));
        world.policy.ratings.sort_by_key(|r| r.minimum_age);
        world.policy.character_off_limits.sort();
        // The production's rules, and the studio's, stated on the graph `lore:policy` itself.
        let off_limits = |iri: &str| {
            let mut nodes: Vec<String> = described(nodes, iri)
                .map(|d| iris(d, vocab::OFF_LIMITS).map(str::to_owned).collect())
                .unwrap_or_default();
            nodes.sort();
            nodes
        };
        world.policy.production_off_limits = off_limits(&world.production.iri);
        world.policy.studio_off_limits = off_limits(vocab::POLICY_GRAPH.as_str());
        world.entity_by_iri = world
            .entities
            .iter()
            .enumerate()
            .map(|(id, e)| (e.iri.clone(), id))
            .collect();
        world.beats.sort_by_key(|b| b.order);

        let superseded: std::collections::HashSet<&str> = facts
            .iter()
            .flat_map(|(_, d)| iris(d, vocab::SUPERSEDES))
            .collect();
        let mut fact_by_iri = HashMap::new();
        facts.sort_by(|a, b| a.0.cmp(&b.0));
        for (iri, description) in facts {
            if superseded.contains(iri.as_str()) {
                continue;
            }
            let Some(statement) =
                text(description, vocab::STATEMENT).filter(|s| !s.trim().is_empty())
            else {
                continue;
            };
            // A lorebook entry switched off in its card.
            if first(description, vocab::FIELD_ENABLED).is_some_and(|t| term_text(t) == "false") {
                continue;
            }
            let knowers: Vec<(EntityId, Option<i64>)> = iris(description, vocab::KNOWN_BY)
                .filter_map(|c| world.entity_by_iri.get(c))
                .map(|&c| (c, None))
                .collect();
            // In a character's own lorebook, `{{char}}` is that character.
            let statement = match knowers.as_slice() {
                [(only, _)] => expand_placeholders(&statement, Some(&world.entities[*only].name)),
                _ => expand_placeholders(&statement, None),
            };
            let claim = match (
                iris(description, vocab::SUBJECT).next(),
                iris(description, vocab::PROPERTY).next(),
                first(description, vocab::VALUE),
            ) {
                (Some(subject), Some(property), Some(value)) => Some(Claim {
                    subject: subject.to_owned(),
                    property: property.to_owned(),
                    value: term_text(value),
                }),
                _ => None,
            };
            fact_by_iri.insert(iri.clone(), world.facts.len());
            world.facts.push(Fact {
                about: iris(description, vocab::ABOUT)
                    .filter_map(|e| world.entity_by_iri.get(e).copied())
                    .collect(),
                span: span(description),
                common: boolean(description, vocab::COMMON_KNOWLEDGE),
                secret: boolean(description, vocab::SECRET),
                knowers,
                claim,
                giveaways: texts(description, vocab::GIVEAWAY),
                statement,
                iri,
            });
        }
        for description in knowledge {
            let fact = iris(description, vocab::KNOWS)
                .next()
                .and_then(|f| fact_by_iri.get(f));
            let knower = iris(description, vocab::KNOWER)
                .next()
                .and_then(|c| world.entity_by_iri.get(c));
            if let (Some(&fact), Some(&knower)) = (fact, knower) {
                world.facts[fact]
                    .knowers
                    .push((knower, integer(description, vocab::SINCE)));
            }
        }

        world.portrayals = portrayals
            .into_iter()
            .filter_map(|(iri, d)| portrayal(iri, d, nodes))
            .filter(|p| world.entity_by_iri.contains_key(&p.character))
            .collect();
        world.portrayals.sort_by(|a, b| a.iri.cmp(&b.iri));

        relationships.sort_by(|a, b| a.0.cmp(&b.0));
        for (iri, description) in relationships {
            let endpoint = |p| {
                iris(description, p)
                    .next()
                    .and_then(|e| world.entity_by_iri.get(e).copied())
            };
            let (Some(source), Some(target)) = (endpoint(vocab::SOURCE), endpoint(vocab::TARGET))
            else {
                continue;
            };
            world.relationships.push(Relationship {
                kind: text(description, vocab::KIND).unwrap_or_else(|| "acquaintance".into()),
                strength: first(description, vocab::STRENGTH)
                    .and_then(|t| term_text(t).parse().ok()),
                description: text(description, vocab::DESCRIPTION),
                span: span(description),
                source,
                target,
                iri,
            });
        }
        world
    }

    /// The entity with this IRI, if it is part of this production.
    pub fn entity(&self, iri: &str) -> Option<EntityId> {
        self.entity_by_iri.get(iri).copied()
    }

    /// Resolves a character by IRI, local name, name or alias; failing those, by a first
    /// name that only one character has.
    pub fn character(&self, name: &str) -> Option<EntityId> {
        let characters = || {
            self.entities
                .iter()
                .enumerate()
                .filter(|(_, e)| e.kind == EntityKind::Character)
        };
        let exact = characters().find(|(_, e)| {
            e.iri == name
                || matches_name(local_name(&e.iri), name)
                || matches_name(&e.name, name)
                || e.aliases.iter().any(|a| matches_name(a, name))
        });
        if let Some((id, _)) = exact {
            return Some(id);
        }
        let mut by_first_name = characters().filter(|(_, e)| {
            e.name
                .split_whitespace()
                .next()
                .is_some_and(|first| matches_name(first, name))
        });
        match (by_first_name.next(), by_first_name.next()) {
            (Some((id, _)), None) => Some(id),
            _ => None,
        }
    }

    /// Resolves a beat by number, IRI, local name or name.
    pub fn beat(&self, name: &str) -> Option<i64> {
        if let Ok(order) = name.parse() {
            return Some(order);
        }
        self.beats
            .iter()
            .find(|b| {
                b.iri == name
                    || matches_name(local_name(&b.iri), name)
                    || matches_name(&b.name, name)
            })
            .map(|b| b.order)
    }

    /// Refuses a session with a character at a beat when it is dead by then.
    pub fn check_alive(&self, character: EntityId, beat: Option<i64>) -> Result<(), CanonError> {
        let entity = &self.entities[character];
        match (entity.died_at, beat) {
            (Some(died_at), Some(beat)) if beat >= died_at => Err(CanonError::DeadAtBeat {
                name: entity.name.clone(),
                died_at,
                beat,
            }),
            _ => Ok(()),
        }
    }

    /// The portrayal of the character `iri`, when a real person plays it.
    pub fn portrayal(&self, iri: &str) -> Option<&Portrayal> {
        self.portrayals.iter().find(|p| p.character == iri)
    }
}

/// Bumped whenever the snapshot layout changes, so old snapshots are never misread.
const SNAPSHOT_FORMAT: u64 = 9;

fn snapshot_key(store: &CanonStore, production: &Production) -> Result<u64, CanonError> {
    let path = std::fs::canonicalize(store.path()).unwrap_or_else(|_| store.path().to_owned());
    let mut key = fnv(FNV_START, &SNAPSHOT_FORMAT.to_le_bytes());
    key = fnv(key, env!("CARGO_PKG_VERSION").as_bytes());
    key = fnv(key, path.as_os_str().as_encoded_bytes());
    key = fnv(key, production.iri.as_bytes());
    key = fnv(key, store.revision()?.as_bytes());
    Ok(key)
}

fn write_snapshot(world: &World, file: &Path) -> std::io::Result<()> {
    let bytes = postcard::to_stdvec(world).map_err(std::io::Error::other)?;
    write_replacing(file, &bytes)
}

fn policy_node(iri: String, kind: PolicyKind, d: &Description) -> PolicyNode {
    let action = iris(d, vocab::RAIL_ACTION).find_map(|a| match a {
        a if a == vocab::DEFLECT.as_str() => Some(RailAction::Deflect),
        a if a == vocab::REFUSE.as_str() => Some(RailAction::Refuse),
        a if a == vocab::END_SESSION.as_str() => Some(RailAction::EndSession),
        _ => None,
    });
    // A store keeps no order among a node's values: sorted, a node reads the same from every
    // store (what is trained on a policy is kept under a hash of it).
    let sorted = |mut values: Vec<String>| {
        values.sort();
        values
    };
    PolicyNode {
        label: text(d, vocab::RDFS_LABEL).unwrap_or_else(|| local_name(&iri).to_owned()),
        kind,
        code: text(d, vocab::HAZARD_CODE),
        broader: sorted(iris(d, vocab::BROADER).map(str::to_owned).collect()),
        terms: sorted(texts(d, vocab::TERM)),
        examples: sorted(texts(d, vocab::EXAMPLE)),
        // A value that is not a number is kept as NaN, which never fires, for `lore check` to
        // report rather than silently replace with the default.
        threshold: first(d, vocab::THRESHOLD).map(|t| term_text(t).parse().unwrap_or(f32::NAN)),
        minimum_rating: iris(d, vocab::MINIMUM_RATING).next().map(str::to_owned),
        action,
        iri,
    }
}

/// A portrayal with its performer and consent records, looked up among `nodes`; `None` when
/// it names no character (`lore check` reports it).
fn portrayal(
    iri: String,
    d: &Description,
    nodes: &HashMap<NamedOrBlankNode, Description>,
) -> Option<Portrayal> {
    let describe = |iri: &str| described(nodes, iri);
    let character = iris(d, vocab::PORTRAYS).next()?.to_owned();
    let performer = iris(d, vocab::PERFORMER)
        .next()
        .unwrap_or_default()
        .to_owned();
    let person = describe(&performer);
    let consents = iris(d, vocab::CONSENT)
        .map(|consent| {
            let c = describe(consent);
            let all = |p| {
                c.map(|c| iris(c, p).map(str::to_owned).collect())
                    .unwrap_or_default()
            };
            LikenessConsent {
                iri: consent.to_owned(),
                uses: c
                    .map(|c| {
                        iris(c, vocab::ALLOWS_USE)
                            .filter_map(|u| match u {
                                u if u == vocab::TEXT_USE.as_str() => Some(LikenessUse::Text),
                                u if u == vocab::VOICE_USE.as_str() => Some(LikenessUse::Voice),
                                u if u == vocab::IMAGE_USE.as_str() => Some(LikenessUse::Image),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                productions: all(vocab::COVERS_PRODUCTION),
                territories: c.map(|c| texts(c, vocab::TERRITORY)).unwrap_or_default(),
                expires: c.and_then(|c| text(c, vocab::EXPIRES)),
                posthumous: c.is_some_and(|c| boolean(c, vocab::POSTHUMOUS_USE)),
            }
        })
        .collect();
    Some(Portrayal {
        performer_name: person
            .and_then(|p| text(p, vocab::RDFS_LABEL))
            .unwrap_or_else(|| local_name(&performer).to_owned()),
        performer_died: person.and_then(|p| text(p, vocab::SCHEMA_DEATH_DATE)),
        iri,
        character,
        performer,
        consents,
    })
}

/// The player, where a card's text says `{{user}}`.
const PLAYER: &str = "the player";

/// A character card's placeholders resolved: `{{char}}` and `<BOT>` become `character` (left
/// as written when there is none), `{{user}}` and `<USER>` the player; case does not matter.
pub(crate) fn expand_placeholders(text: &str, character: Option<&str>) -> String {
    if !text.contains(['{', '<']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        if c == '{' || c == '<' {
            for (pattern, replacement) in [
                ("{{char}}", character),
                ("<bot>", character),
                ("{{user}}", Some(PLAYER)),
                ("<user>", Some(PLAYER)),
            ] {
                let Some(replacement) = replacement else {
                    continue;
                };
                if rest
                    .get(..pattern.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(pattern))
                {
                    out.push_str(replacement);
                    rest = &rest[pattern.len()..];
                    continue 'scan;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The persona of a character, with a card's personality and scenario after it when it came
/// from one.
fn card_persona(d: &Description, name: &str) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(persona) = text(d, vocab::PERSONA).filter(|p| !p.trim().is_empty()) {
        parts.push(persona);
    }
    if let Some(p) = text(d, vocab::FIELD_PERSONALITY).filter(|p| !p.trim().is_empty()) {
        parts.push(format!("{{{{char}}}}'s personality: {p}"));
    }
    if let Some(s) = text(d, vocab::FIELD_SCENARIO).filter(|s| !s.trim().is_empty()) {
        parts.push(format!("Scenario: {s}"));
    }
    (!parts.is_empty()).then(|| expand_placeholders(parts.join("\n").trim(), Some(name)))
}

/// Lines in the character's voice: `lore:sampleLine`s, then a card's greeting and the
/// character's lines of its example dialogue (`{{char}}: ...`).
fn card_sample_lines(d: &Description, name: &str) -> Vec<String> {
    let mut lines = texts(d, vocab::SAMPLE_LINE);
    lines.extend(text(d, vocab::FIELD_FIRST_MES).filter(|g| !g.trim().is_empty()));
    if let Some(dialogue) = text(d, vocab::FIELD_MES_EXAMPLE) {
        for line in dialogue.lines() {
            let line = line.trim();
            let spoken = ["{{char}}:", "<bot>:"].iter().find_map(|p| {
                line.get(..p.len())
                    .filter(|head| head.eq_ignore_ascii_case(p))
                    .map(|_| line[p.len()..].trim())
            });
            lines.extend(spoken.filter(|s| !s.is_empty()).map(str::to_owned));
        }
    }
    lines
        .into_iter()
        .map(|l| expand_placeholders(&l, Some(name)))
        .collect()
}

/// The description of the node named `iri`, looked up, not searched for.
fn described<'a>(
    nodes: &'a HashMap<NamedOrBlankNode, Description>,
    iri: &str,
) -> Option<&'a Description> {
    let node = NamedNode::new(iri).ok()?;
    nodes.get(&NamedOrBlankNode::NamedNode(node))
}

fn node_key(node: &NamedOrBlankNode) -> String {
    match node {
        NamedOrBlankNode::NamedNode(n) => n.as_str().to_owned(),
        NamedOrBlankNode::BlankNode(b) => format!("_:{}", b.as_str()),
    }
}

fn values<'a>(d: &'a Description, p: NamedNodeRef<'_>) -> &'a [Term] {
    d.get(p.as_str()).map_or(&[], |l| l.values.as_slice())
}

fn first<'a>(d: &'a Description, p: NamedNodeRef<'_>) -> Option<&'a Term> {
    values(d, p).first()
}

fn iris<'a>(d: &'a Description, p: NamedNodeRef<'_>) -> impl Iterator<Item = &'a str> {
    values(d, p).iter().filter_map(|t| match t {
        Term::NamedNode(n) => Some(n.as_str()),
        _ => None,
    })
}

fn term_text(t: &Term) -> String {
    match t {
        Term::NamedNode(n) => n.as_str().to_owned(),
        Term::Literal(l) => l.value().to_owned(),
        other => other.to_string(),
    }
}

/// A literal value; with several (one per language), the English or untagged one wins.
fn text(d: &Description, p: NamedNodeRef<'_>) -> Option<String> {
    let literals = values(d, p).iter().filter_map(|t| match t {
        Term::Literal(l) => Some(l),
        _ => None,
    });
    let mut best = None;
    for l in literals {
        match l.language() {
            None | Some("en") => return Some(l.value().to_owned()),
            Some(_) => best = best.or(Some(l.value().to_owned())),
        }
    }
    best
}

fn texts(d: &Description, p: NamedNodeRef<'_>) -> Vec<String> {
    values(d, p)
        .iter()
        .filter_map(|t| match t {
            Term::Literal(l) => Some(l.value().to_owned()),
            _ => None,
        })
        .collect()
}

fn integer(d: &Description, p: NamedNodeRef<'_>) -> Option<i64> {
    first(d, p).and_then(|t| term_text(t).parse().ok())
}

fn boolean(d: &Description, p: NamedNodeRef<'_>) -> bool {
    first(d, p).is_some_and(|t| matches!(term_text(t).as_str(), "true" | "1"))
}

fn span(d: &Description) -> Span {
    Span {
        from: integer(d, vocab::VALID_FROM),
        until: integer(d, vocab::VALID_UNTIL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_expand_in_any_case() {
        assert_eq!(
            expand_placeholders(
                "{{Char}} greets {{USER}}; <BOT> and <user>. {{other}} ✓",
                Some("Ada")
            ),
            "Ada greets the player; Ada and the player. {{other}} ✓"
        );
        assert_eq!(
            expand_placeholders("{{char}} sees {{user}}", None),
            "{{char}} sees the player"
        );
        assert_eq!(expand_placeholders("plain", Some("Ada")), "plain");
    }

    #[test]
    fn span_holds_half_open() {
        let s = Span {
            from: Some(2),
            until: Some(4),
        };
        assert!(!s.holds_at(Some(1)));
        assert!(s.holds_at(Some(2)));
        assert!(s.holds_at(Some(3)));
        assert!(!s.holds_at(Some(4)));
        assert!(s.holds_at(None));
        assert!(Span::default().holds_at(Some(-7)));
    }

    #[test]
    fn spans_overlap_only_when_sharing_a_beat() {
        let a = Span {
            from: Some(1),
            until: Some(3),
        };
        let b = Span {
            from: Some(3),
            until: None,
        };
        let c = Span {
            from: None,
            until: Some(2),
        };
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&c));
        assert!(!b.overlaps(&c));
        assert!(Span::default().overlaps(&a));
    }

    #[test]
    fn local_names() {
        assert_eq!(local_name("https://x.org/w#odile"), "odile");
        assert_eq!(local_name("https://x.org/w/odile"), "odile");
    }
}
