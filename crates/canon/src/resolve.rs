//! Turning the names users type into the IRIs canon uses, with errors that list what exists.

use oxigraph::model::{NamedNodeRef, TermRef};

use crate::error::CanonError;
use crate::names::{hint, local_name, matches_name};
use crate::production::literal;
use crate::store::CanonStore;
use crate::vocab;
use crate::world::{EntityId, EntityKind, World};

/// A session's speaker and story time, resolved against a [`World`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The speaking character.
    pub character: EntityId,
    /// The beat of story time, if the session has one.
    pub beat: Option<i64>,
}

impl World {
    /// Resolves the session's speaker and beat, with errors that list what exists.
    pub fn resolve(
        &self,
        store: &CanonStore,
        character: &str,
        beat: Option<&str>,
    ) -> Result<Resolved, CanonError> {
        session(self, store, character, beat)
    }
}

fn session(
    world: &World,
    store: &CanonStore,
    character: &str,
    beat: Option<&str>,
) -> Result<Resolved, CanonError> {
    let Some(id) = world.character(character) else {
        // A character of another production is a different mistake from a typo: say which.
        if let Some(elsewhere) = character_elsewhere(store, character) {
            let appears_in: Vec<String> = store
                .oxigraph()
                .quads_for_pattern(
                    Some(NamedNodeRef::new_unchecked(&elsewhere).into()),
                    Some(vocab::APPEARS_IN),
                    None,
                    None,
                )
                .flatten()
                .map(|q| match q.object.as_ref() {
                    TermRef::NamedNode(n) => local_name(n.as_str()).to_owned(),
                    other => other.to_string(),
                })
                .collect();
            return Err(CanonError::CharacterNotInProduction {
                character: elsewhere,
                production: world.production.iri.clone(),
                appears_in: appears_in.join(", "),
            });
        }
        return Err(CanonError::UnknownCharacter {
            name: character.to_owned(),
            production: world.production.iri.clone(),
            hint: hint(
                world
                    .entities
                    .iter()
                    .filter(|e| e.kind == EntityKind::Character)
                    .map(|e| local_name(&e.iri)),
                "add characters with lore:appearsIn this production",
            ),
        });
    };
    let beat = match beat {
        None => None,
        Some(name) => Some(world.beat(name).ok_or_else(|| CanonError::UnknownBeat {
            name: name.to_owned(),
            production: world.production.iri.clone(),
            hint: hint(
                world.beats.iter().map(|b| b.name.as_str()),
                "declare lore:Beat nodes",
            ),
        })?),
    };
    world.check_alive(id, beat)?;
    Ok(Resolved {
        character: id,
        beat,
    })
}

fn character_elsewhere(store: &CanonStore, name: &str) -> Option<String> {
    store
        .oxigraph()
        .quads_for_pattern(
            None,
            Some(vocab::RDF_TYPE),
            Some(vocab::CHARACTER.into()),
            None,
        )
        .flatten()
        .filter_map(|q| match q.subject {
            oxigraph::model::NamedOrBlankNode::NamedNode(n) => Some(n),
            _ => None,
        })
        .find(|iri| {
            iri.as_str() == name
                || matches_name(local_name(iri.as_str()), name)
                || literal(store, iri.as_ref(), vocab::RDFS_LABEL)
                    .is_some_and(|l| matches_name(&l, name))
        })
        .map(|n| n.into_string())
}
