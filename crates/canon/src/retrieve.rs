//! What one character may draw on at one beat, and the per-turn lookup for a player's words.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::resolve::Resolved;
use crate::vocab;
use crate::world::{EntityId, EntityKind, FactId, World};

/// How many standing facts about the speaker and the scene the prefix carries.
const STANDING_FACTS: usize = 12;
/// How many facts of a neighbour of a mentioned entity a turn may pull in.
const FACTS_PER_NEIGHBOUR: usize = 1;

/// Why a fact was chosen for a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It is about the speaking character.
    Speaker,
    /// It is about the place the speaker is in.
    Scene {
        /// The place's name.
        place: String,
    },
    /// The player named an entity it is about.
    Mentioned {
        /// The entity's name.
        entity: String,
    },
    /// It is the speaker's relationship with an entity the player named.
    Relationship {
        /// The other entity's name.
        with: String,
    },
    /// It is about an entity linked by canon to one the player named.
    Neighbourhood {
        /// The named entity it is linked to.
        via: String,
    },
    /// It is close in meaning to the player's line, by the rails' encoder.
    Meaning {
        /// Cosine similarity to the line, in hundredths.
        similarity: u8,
    },
    /// It is something the session remembers (its own graph, not canon).
    Memory {
        /// The transcript line it came from.
        line: usize,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Speaker => write!(f, "about the speaker"),
            Reason::Scene { place } => write!(f, "scene: {place}"),
            Reason::Mentioned { entity } => write!(f, "mentioned: {entity}"),
            Reason::Relationship { with } => write!(f, "relationship with {with}"),
            Reason::Neighbourhood { via } => write!(f, "neighbourhood of {via}"),
            Reason::Meaning { similarity } => {
                write!(f, "close in meaning (0.{similarity:02})")
            }
            Reason::Memory { line } => write!(f, "remembered from line {line}"),
        }
    }
}

/// One piece of canon chosen for a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrieved {
    /// The fact's or relationship's IRI.
    pub iri: String,
    /// The sentence put to the model.
    pub text: String,
    /// Why it was chosen.
    pub reason: Reason,
}

/// What the speaker carries into every turn: evaluated once into the session prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct StandingContext {
    /// The speaker's name.
    pub name: String,
    /// Who the speaker is.
    pub persona: Option<String>,
    /// How the speaker talks.
    pub speech_style: Option<String>,
    /// What the speaker wants.
    pub goals: Vec<String>,
    /// Lines in the speaker's voice.
    pub sample_lines: Vec<String>,
    /// Where the speaker is, if canon says.
    pub scene: Option<String>,
    /// Facts about the speaker, their relationships and the scene.
    pub facts: Vec<Retrieved>,
}

/// The canon one character may use at one beat, indexed for per-turn lookups.
///
/// Built once per session: every fact it can return is already filtered to the beat and to
/// what the speaker knows, so a turn only scans the player's words and follows indexes.
pub struct Retriever {
    world: Arc<World>,
    speaker: EntityId,
    beat: Option<i64>,
    names: NameIndex,
    facts_about: HashMap<EntityId, Vec<FactId>>,
    relationship_with: HashMap<EntityId, usize>,
    neighbours: HashMap<EntityId, Vec<EntityId>>,
    scene: Option<EntityId>,
}

impl Retriever {
    /// Indexes `world` for `session`'s speaker and beat.
    pub fn new(world: Arc<World>, session: Resolved) -> Retriever {
        let Resolved {
            character: speaker,
            beat,
        } = session;
        let mut facts_about: HashMap<EntityId, Vec<FactId>> = HashMap::new();
        let mut neighbours: HashMap<EntityId, Vec<EntityId>> = HashMap::new();
        let mut scene = None;
        for (id, fact) in world.facts.iter().enumerate() {
            if !fact.span.holds_at(beat) {
                continue;
            }
            // Where the speaker is does not depend on whether canon says they know it.
            if let Some(claim) = &fact.claim
                && claim.property == vocab::LOCATED_IN.as_str()
                && world.entity(&claim.subject) == Some(speaker)
            {
                scene = world.entity(&claim.value).or(scene);
            }
            if !fact.known_by(speaker, beat) {
                continue;
            }
            for &entity in &fact.about {
                facts_about.entry(entity).or_default().push(id);
                for &other in &fact.about {
                    if other != entity {
                        neighbours.entry(entity).or_default().push(other);
                    }
                }
            }
        }
        for list in neighbours.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        let relationship_with = world
            .relationships
            .iter()
            .enumerate()
            .filter(|(_, r)| r.source == speaker && r.span.holds_at(beat))
            .map(|(i, r)| (r.target, i))
            .collect();
        let names = NameIndex::new(&world);
        Retriever {
            world,
            speaker,
            beat,
            names,
            facts_about,
            relationship_with,
            neighbours,
            scene,
        }
    }

    /// The world this retriever reads.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The speaking character.
    pub fn speaker(&self) -> EntityId {
        self.speaker
    }

    /// Characters the speaker has a relationship with or shares a known fact with, in id
    /// order: the people most likely to turn up in the speaker's conversations.
    pub fn acquaintances(&self) -> Vec<EntityId> {
        let mut out: Vec<EntityId> = self
            .relationship_with
            .keys()
            .chain(self.neighbours.get(&self.speaker).into_iter().flatten())
            .copied()
            .filter(|&e| e != self.speaker && self.world.entities[e].kind == EntityKind::Character)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The index of the world's names.
    pub fn names(&self) -> &NameIndex {
        &self.names
    }

    /// The session's beat.
    pub fn beat(&self) -> Option<i64> {
        self.beat
    }

    /// What goes into the session prefix.
    pub fn standing(&self) -> StandingContext {
        let speaker = &self.world.entities[self.speaker];
        let mut facts = Vec::new();
        let mut seen = HashSet::new();
        for &fact in self.facts_about.get(&self.speaker).into_iter().flatten() {
            self.push_fact(&mut facts, &mut seen, fact, Reason::Speaker);
        }
        let mut relationships: Vec<_> = self.relationship_with.iter().collect();
        // The strongest feelings first, then by IRI so the prefix is reproducible.
        relationships.sort_by(|a, b| {
            let strength = |i: usize| self.world.relationships[i].strength.unwrap_or(0.0).abs();
            strength(*b.1).total_cmp(&strength(*a.1)).then_with(|| {
                self.world.relationships[*a.1]
                    .iri
                    .cmp(&self.world.relationships[*b.1].iri)
            })
        });
        for (&target, &rel) in relationships {
            self.push_relationship(&mut facts, &mut seen, rel, target);
        }
        if let Some(place) = self.scene {
            let name = self.world.entities[place].name.clone();
            for &fact in self.facts_about.get(&place).into_iter().flatten() {
                self.push_fact(
                    &mut facts,
                    &mut seen,
                    fact,
                    Reason::Scene {
                        place: name.clone(),
                    },
                );
            }
        }
        facts.truncate(STANDING_FACTS);
        StandingContext {
            name: speaker.name.clone(),
            persona: speaker.persona.clone(),
            speech_style: speaker.speech_style.clone(),
            goals: speaker.goals.clone(),
            sample_lines: speaker.sample_lines.clone(),
            scene: self.scene.map(|p| self.world.entities[p].name.clone()),
            facts,
        }
    }

    /// Facts the speaker knows at the beat, nearest the speaker first, at most `limit`, once
    /// each: its own, its scene's and those of the entities it has relationships with, then
    /// outwards over entities that share a fact, then the rest in the world's order. In a
    /// large world this keeps what a player can ask about without naming it to the speaker's
    /// corner of the world.
    pub fn nearby_facts(&self, limit: usize) -> Vec<FactId> {
        let mut queue: std::collections::VecDeque<EntityId> = std::iter::once(self.speaker)
            .chain(self.scene)
            .chain(self.relationship_with.keys().copied())
            .collect();
        let mut visited: HashSet<EntityId> = queue.iter().copied().collect();
        let mut facts = Vec::new();
        let mut seen = HashSet::new();
        while let Some(entity) = queue.pop_front() {
            for &fact in self.facts_about.get(&entity).into_iter().flatten() {
                if facts.len() == limit {
                    return facts;
                }
                if seen.insert(fact) {
                    facts.push(fact);
                }
            }
            for &next in self.neighbours.get(&entity).into_iter().flatten() {
                if visited.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        // Entities no shared fact links to the speaker: common knowledge of the wider world.
        let mut rest: Vec<FactId> = self
            .facts_about
            .values()
            .flatten()
            .copied()
            .filter(|fact| !seen.contains(fact))
            .collect();
        rest.sort_unstable();
        rest.dedup();
        facts.extend(rest.into_iter().take(limit - facts.len()));
        facts
    }

    /// `fact` as a piece of a prompt, chosen for `reason`.
    pub fn fact(&self, fact: FactId, reason: Reason) -> Retrieved {
        let fact = &self.world.facts[fact];
        Retrieved {
            iri: fact.iri.clone(),
            text: fact.statement.clone(),
            reason,
        }
    }

    /// The entities the player's words name, in order of first mention.
    pub fn mentions(&self, text: &str) -> Vec<EntityId> {
        self.names.mentions(text)
    }

    /// The facts for one turn: about what the player named, the speaker's relationships with
    /// it, and its neighbourhood; at most `limit`, best first. Never a fact the speaker does
    /// not know at this beat, never a writer-only note.
    pub fn retrieve(&self, text: &str, limit: usize) -> Vec<Retrieved> {
        let mentioned = self.mentions(text);
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for &entity in &mentioned {
            if entity == self.speaker {
                continue;
            }
            if let Some(&rel) = self.relationship_with.get(&entity) {
                self.push_relationship(&mut out, &mut seen, rel, entity);
            }
            let name = &self.world.entities[entity].name;
            for &fact in self.facts_about.get(&entity).into_iter().flatten() {
                self.push_fact(
                    &mut out,
                    &mut seen,
                    fact,
                    Reason::Mentioned {
                        entity: name.clone(),
                    },
                );
            }
        }
        for &entity in &mentioned {
            let via = &self.world.entities[entity].name;
            for &neighbour in self.neighbours.get(&entity).into_iter().flatten() {
                if neighbour == self.speaker || mentioned.contains(&neighbour) {
                    continue;
                }
                let facts = self.facts_about.get(&neighbour).into_iter().flatten();
                for &fact in facts.take(FACTS_PER_NEIGHBOUR) {
                    self.push_fact(
                        &mut out,
                        &mut seen,
                        fact,
                        Reason::Neighbourhood { via: via.clone() },
                    );
                }
            }
        }
        out.truncate(limit);
        out
    }

    fn push_fact(
        &self,
        out: &mut Vec<Retrieved>,
        seen: &mut HashSet<usize>,
        fact: FactId,
        reason: Reason,
    ) {
        // Facts and relationships share the `seen` set; relationships are offset past facts.
        if seen.insert(fact) {
            out.push(self.fact(fact, reason));
        }
    }

    fn push_relationship(
        &self,
        out: &mut Vec<Retrieved>,
        seen: &mut HashSet<usize>,
        rel: usize,
        target: EntityId,
    ) {
        if !seen.insert(self.world.facts.len() + rel) {
            return;
        }
        let r = &self.world.relationships[rel];
        let source = &self.world.entities[r.source].name;
        let target_name = &self.world.entities[target].name;
        let mut text = format!("{target_name} is {source}'s {}.", r.kind);
        if let Some(description) = &r.description {
            text.push(' ');
            text.push_str(description);
        }
        out.push(Retrieved {
            iri: r.iri.clone(),
            text,
            reason: Reason::Relationship {
                with: target_name.clone(),
            },
        });
    }
}

/// An automaton over every name and alias in the world. A character's first name is added
/// when no other entity shares it, since players say "Odile" rather than "Odile Marrow".
/// Where a world's entities are named in a text: names, aliases and first names that only one
/// character has, matched case-insensitively and only as whole words.
#[derive(Debug, Clone)]
pub struct NameIndex {
    automaton: AhoCorasick,
    owners: Vec<EntityId>,
}

impl NameIndex {
    /// Indexes the names of `world`'s entities.
    pub fn new(world: &World) -> NameIndex {
        let mut first_names: HashMap<String, Option<EntityId>> = HashMap::new();
        for (id, e) in world.entities.iter().enumerate() {
            if e.kind == EntityKind::Character
                && let Some((first, _)) = e.name.split_once(' ')
                && first.chars().count() >= 3
            {
                first_names
                    .entry(first.to_lowercase())
                    .and_modify(|owner| *owner = None)
                    .or_insert(Some(id));
            }
        }
        let mut patterns = Vec::new();
        let mut owners = Vec::new();
        for (id, e) in world.entities.iter().enumerate() {
            for name in std::iter::once(&e.name).chain(&e.aliases) {
                if !name.trim().is_empty() {
                    patterns.push(name.trim().to_owned());
                    owners.push(id);
                }
            }
        }
        for (first, owner) in first_names {
            if let Some(id) = owner {
                patterns.push(first);
                owners.push(id);
            }
        }
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("names are plain strings, so the automaton always builds");
        NameIndex { automaton, owners }
    }

    /// Each whole-word mention in `text`, left to right: its byte range and entity.
    pub fn find(&self, text: &str) -> Vec<(std::ops::Range<usize>, EntityId)> {
        let mut found = Vec::new();
        for m in self.automaton.find_iter(text) {
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            if before.is_some_and(char::is_alphanumeric) || after.is_some_and(char::is_alphanumeric)
            {
                continue;
            }
            found.push((m.range(), self.owners[m.pattern().as_usize()]));
        }
        found
    }

    /// The entities `text` names, in order of first mention.
    pub fn mentions(&self, text: &str) -> Vec<EntityId> {
        let mut found = Vec::new();
        for (_, entity) in self.find(text) {
            if !found.contains(&entity) {
                found.push(entity);
            }
        }
        found
    }
}
