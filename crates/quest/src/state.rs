//! The world as a quest sees it at one beat.

use std::collections::HashMap;

use lore_canon::{EntityId, EntityKind, World, vocab};

/// Why something holds: the canon fact (or entity) that says so, in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
        let feelings = world
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
        WorldState {
            beat,
            location,
            holder,
            places: of_kind(EntityKind::Place),
            objects: of_kind(EntityKind::Object),
            living,
            feelings,
        }
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
