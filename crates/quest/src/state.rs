//! The world as a quest sees it at one beat.

use std::collections::HashMap;

use lore_canon::{EntityId, EntityKind, World, vocab};

/// Why something holds: the canon fact (or entity) that says so, in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// The IRI of the fact, relationship or entity.
    pub iri: String,
    /// What it establishes.
    pub says: String,
}

/// Where things are, who holds what and who lives, at one beat, with the evidence for each.
#[derive(Debug, Clone)]
pub struct WorldState {
    /// The beat (None: timeless).
    pub beat: Option<i64>,
    /// Entity → the place it is at, and the fact that says so.
    pub location: HashMap<EntityId, (EntityId, String)>,
    /// Object → the character holding it, and the fact that says so.
    pub holder: HashMap<EntityId, (EntityId, String)>,
    /// Places of the world.
    pub places: Vec<EntityId>,
    /// Objects of the world.
    pub objects: Vec<EntityId>,
    /// Characters alive at the beat.
    pub living: Vec<EntityId>,
    /// (source, target) → (strength, relationship IRI), for relationships holding at the beat.
    pub feelings: HashMap<(EntityId, EntityId), (f64, String)>,
    /// Entity → the entities it shares a fact or a relationship with at the beat, or stands
    /// in the same place as: where a quest giver's errands lead. Sorted, no repeats.
    pub neighbours: HashMap<EntityId, Vec<EntityId>>,
}

impl WorldState {
    /// The state of `world` at `beat`.
    pub fn at(world: &World, beat: Option<i64>) -> WorldState {
        let of_kind = |kind: EntityKind| -> Vec<EntityId> {
            (0..world.entities.len())
                .filter(|&e| world.entities[e].kind == kind)
                .collect()
        };
        let mut location = HashMap::new();
        let mut holder = HashMap::new();
        for fact in world.facts.iter().filter(|f| f.span.holds_at(beat)) {
            let Some(claim) = &fact.claim else { continue };
            let (Some(subject), Some(value)) =
                (world.entity(&claim.subject), world.entity(&claim.value))
            else {
                continue;
            };
            if claim.property == vocab::LOCATED_IN.as_str()
                && world.entities[value].kind == EntityKind::Place
            {
                location.insert(subject, (value, fact.iri.clone()));
            } else if claim.property == vocab::HELD_BY.as_str()
                && world.entities[value].kind == EntityKind::Character
            {
                holder.insert(subject, (value, fact.iri.clone()));
            }
        }
        let living = of_kind(EntityKind::Character)
            .into_iter()
            .filter(|&c| !world.entities[c].dead_at(beat))
            .collect();
        let feelings: HashMap<(EntityId, EntityId), (f64, String)> = world
            .relationships
            .iter()
            .filter(|r| r.span.holds_at(beat))
            .map(|r| {
                (
                    (r.source, r.target),
                    (r.strength.unwrap_or(0.0), r.iri.clone()),
                )
            })
            .collect();
        let mut neighbours: HashMap<EntityId, Vec<EntityId>> = HashMap::new();
        let mut link = |a: EntityId, b: EntityId| {
            if a != b {
                neighbours.entry(a).or_default().push(b);
                neighbours.entry(b).or_default().push(a);
            }
        };
        for fact in world.facts.iter().filter(|f| f.span.holds_at(beat)) {
            for (i, &a) in fact.about.iter().enumerate() {
                for &b in &fact.about[i + 1..] {
                    link(a, b);
                }
            }
        }
        for &(source, target) in feelings.keys() {
            link(source, target);
        }
        for (&entity, (place, _)) in &location {
            link(entity, *place);
        }
        for list in neighbours.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        WorldState {
            beat,
            neighbours,
            location,
            holder,
            places: of_kind(EntityKind::Place),
            objects: of_kind(EntityKind::Object),
            living,
            feelings,
        }
    }

    /// The entities `entity` is linked to at the beat.
    pub fn neighbours(&self, entity: EntityId) -> &[EntityId] {
        self.neighbours.get(&entity).map_or(&[], Vec::as_slice)
    }

    /// Whether `character` is alive at the beat.
    pub fn alive(&self, character: EntityId) -> bool {
        self.living.contains(&character)
    }

    /// Where `entity` is, if canon says.
    pub fn place_of(&self, entity: EntityId) -> Option<EntityId> {
        self.location.get(&entity).map(|(p, _)| *p)
    }
}
