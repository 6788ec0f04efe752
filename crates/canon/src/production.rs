//! The productions a store holds, found by IRI, local name or title.

use oxigraph::model::{NamedNodeRef, NamedOrBlankNodeRef, Term};

use crate::error::CanonError;
use crate::names::{hint, local_name, matches_name};
use crate::store::CanonStore;
use crate::vocab;

/// A production, as its canon describes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Production {
    /// Its IRI.
    pub iri: String,
    /// Its title.
    pub title: String,
    /// The IRI of its rating, if it has one (`lore check` reports those without).
    pub rating: Option<String>,
    /// The rating's label, for prompts.
    pub rating_label: Option<String>,
    /// A sentence or two that set the scene.
    pub premise: Option<String>,
    /// The studio that owns it; the server shows it only to that tenant's keys.
    pub tenant: Option<String>,
    /// Its own named graph.
    pub graph: String,
    /// The shared graphs it extends, lowest priority first.
    pub extends: Vec<String>,
}

pub(crate) fn literal(
    store: &CanonStore,
    subject: NamedNodeRef<'_>,
    p: NamedNodeRef<'_>,
) -> Option<String> {
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
