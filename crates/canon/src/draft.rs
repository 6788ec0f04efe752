//! Canon drafted from material outside it (a session's fact), for a writer to accept.

use oxigraph::model::{Literal, NamedNode, Quad, Term};

use crate::error::CanonError;
use crate::vocab;
use crate::world::Production;

/// A fact a session learned, as it would stand in a production's canon.
#[derive(Debug, Clone)]
pub struct FactDraft<'a> {
    /// The production whose graph it joins.
    pub production: &'a Production,
    /// A name for the new fact, unique in the production (`fact-<name>` in its namespace).
    pub name: &'a str,
    /// The sentence.
    pub statement: &'a str,
    /// IRIs of the entities it is about.
    pub about: &'a [String],
    /// The character who knows it (else it is common knowledge).
    pub known_by: Option<&'a str>,
    /// The beat from which it holds.
    pub valid_from: Option<i64>,
}

impl FactDraft<'_> {
    /// The IRI the fact gets: the production's namespace and `fact-<name>`.
    pub fn iri(&self) -> String {
        let iri = &self.production.iri;
        let namespace = iri.rfind(['#', '/']).map_or(iri.as_str(), |i| &iri[..=i]);
        format!("{namespace}fact-{}", self.name)
    }

    /// Its quads, in the production's graph.
    pub fn quads(&self) -> Result<Vec<Quad>, CanonError> {
        let iri = |text: &str| {
            NamedNode::new(text).map_err(|e| CanonError::Malformed {
                subject: text.to_owned(),
                message: format!("not an IRI: {e}"),
            })
        };
        let fact = iri(&self.iri())?;
        let graph = iri(&self.production.graph)?;
        let mut quads = Vec::new();
        let mut put = |predicate, object: Term| {
            quads.push(Quad::new(fact.clone(), predicate, object, graph.clone()));
        };
        put(oxigraph::model::vocab::rdf::TYPE, vocab::FACT.into());
        put(
            vocab::STATEMENT,
            Literal::new_simple_literal(self.statement).into(),
        );
        for entity in self.about {
            put(vocab::ABOUT, iri(entity)?.into());
        }
        match self.known_by {
            Some(character) => put(vocab::KNOWN_BY, iri(character)?.into()),
            None => put(vocab::COMMON_KNOWLEDGE, Literal::from(true).into()),
        }
        if let Some(beat) = self.valid_from {
            put(vocab::VALID_FROM, Literal::from(beat).into());
        }
        Ok(quads)
    }
}
