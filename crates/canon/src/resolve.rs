//! Turning the names users type into the IRIs canon uses, with errors that list what exists.

use oxigraph::model::{NamedNodeRef, NamedOrBlankNodeRef, Term, TermRef};

use crate::error::CanonError;
use crate::store::CanonStore;
use crate::vocab;
use crate::world::{EntityId, EntityKind, Production, World, local_name};

/// A session's speaker and story time, resolved against a [`World`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The speaking character.
    pub character: EntityId,
    /// The beat of story time, if the session has one.
    pub beat: Option<i64>,
}

/// A name with case, spaces and punctuation folded away: `odile-marrow` and `Odile Marrow`
/// fold alike.
pub fn fold_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Case- and separator-insensitive name comparison: `odile-marrow` matches `Odile Marrow`.
pub(crate) fn matches_name(candidate: &str, typed: &str) -> bool {
    let typed = fold_name(typed);
    !typed.is_empty() && fold_name(candidate) == typed
}

fn literal(store: &CanonStore, subject: NamedNodeRef<'_>, p: NamedNodeRef<'_>) -> Option<String> {
    object(store, subject, p).and_then(|t| match t {
        Term::Literal(l) => Some(l.value().to_owned()),
        _ => None,
    })
}

fn object(store: &CanonStore, subject: NamedNodeRef<'_>, p: NamedNodeRef<'_>) -> Option<Term> {
    store
        .oxigraph()
        .quads_for_pattern(Some(subject.into()), Some(p), None, None)
        .flatten()
        .next()
        .map(|q| q.object)
}

/// Every production in the store, sorted by IRI.
pub fn productions(store: &CanonStore) -> Result<Vec<Production>, CanonError> {
    let mut out = Vec::new();
    for quad in store.oxigraph().quads_for_pattern(
        None,
        Some(vocab::RDF_TYPE),
        Some(vocab::PRODUCTION.into()),
        None,
    ) {
        let quad = quad?;
        let NamedOrBlankNodeRef::NamedNode(iri) = quad.subject.as_ref() else {
            continue;
        };
        if out.iter().any(|p: &Production| p.iri == iri.as_str()) {
            continue;
        }
        let declared_in = match quad.graph_name.as_ref() {
            oxigraph::model::GraphNameRef::NamedNode(g) => g.as_str().to_owned(),
            _ => String::new(),
        };
        let iri_of = |t: Term| match t {
            Term::NamedNode(n) => Some(n.into_string()),
            _ => None,
        };
        let rating = object(store, iri, vocab::RATING).and_then(iri_of);
        let rating_label = rating.as_deref().and_then(|r| {
            NamedNodeRef::new(r)
                .ok()
                .and_then(|r| literal(store, r, vocab::RDFS_LABEL))
                .or_else(|| Some(local_name(r).to_owned()))
        });
        let mut extends: Vec<String> = store
            .oxigraph()
            .quads_for_pattern(Some(iri.into()), Some(vocab::EXTENDS), None, None)
            .flatten()
            .filter_map(|q| iri_of(q.object))
            .collect();
        extends.sort();
        extends.dedup();
        out.push(Production {
            iri: iri.as_str().to_owned(),
            title: literal(store, iri, vocab::RDFS_LABEL)
                .unwrap_or_else(|| local_name(iri.as_str()).to_owned()),
            rating,
            rating_label,
            premise: literal(store, iri, vocab::PREMISE),
            tenant: literal(store, iri, vocab::TENANT),
            graph: object(store, iri, vocab::GRAPH)
                .and_then(iri_of)
                .unwrap_or(declared_in),
            extends,
        });
    }
    out.sort_by(|a, b| a.iri.cmp(&b.iri));
    Ok(out)
}

/// The production a user means by `name`: its IRI, local name or title.
pub(crate) fn production(store: &CanonStore, name: &str) -> Result<Production, CanonError> {
    let all = productions(store)?;
    let found = all.iter().position(|p| {
        p.iri == name || matches_name(local_name(&p.iri), name) || matches_name(&p.title, name)
    });
    match found {
        Some(i) => Ok(all.into_iter().nth(i).expect("index from position")),
        None => Err(CanonError::UnknownProduction {
            name: name.to_owned(),
            hint: hint(
                all.iter().map(|p| local_name(&p.iri)),
                "import canon with `lore import`",
            ),
        }),
    }
}

fn hint<'a>(names: impl Iterator<Item = &'a str>, otherwise: &str) -> String {
    let names: Vec<_> = names.collect();
    if names.is_empty() {
        format!("; the store has none: {otherwise}")
    } else {
        format!("; known: {}", names.join(", "))
    }
}

pub(crate) fn session(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_across_case_and_separators() {
        assert!(matches_name("Odile Marrow", "odile-marrow"));
        assert!(matches_name("odile_marrow", "Odile Marrow"));
        assert!(!matches_name("Odile", "Odile Marrow"));
        assert!(!matches_name("x", ""));
    }
}
