//! Canon drafted from material outside it (a session's fact, a generated character), for a
//! writer to accept.

use oxigraph::model::{Literal, NamedNode, Quad, Term};

use crate::error::CanonError;
use crate::production::Production;
use crate::vocab;

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
        format!("{}fact-{}", namespace(&self.production.iri), self.name)
    }

    /// Its quads, in the production's graph.
    pub fn quads(&self) -> Result<Vec<Quad>, CanonError> {
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

/// A new character, as it would stand in a production's canon.
#[derive(Debug, Clone)]
pub struct CharacterDraft<'a> {
    /// The production whose graph it joins, and which it appears in.
    pub production: &'a Production,
    /// Its name.
    pub name: &'a str,
    /// Who it is.
    pub persona: &'a str,
    /// How it speaks.
    pub speech_style: &'a str,
    /// A line in its voice.
    pub sample_line: &'a str,
}

impl CharacterDraft<'_> {
    /// The IRI a character named `name` gets in `production`'s namespace: the name in
    /// lowercase ASCII words joined by hyphens.
    pub fn iri_for(production: &Production, name: &str) -> String {
        let slug = name
            .to_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let slug = if slug.is_empty() { "character" } else { &slug };
        format!("{}{slug}", namespace(&production.iri))
    }

    /// Its quads, in the production's graph.
    pub fn quads(&self) -> Result<Vec<Quad>, CanonError> {
        let subject = iri(&Self::iri_for(self.production, self.name))?;
        let graph = iri(&self.production.graph)?;
        let text = |t: &str| Term::from(Literal::new_simple_literal(t));
        Ok([
            (oxigraph::model::vocab::rdf::TYPE, vocab::CHARACTER.into()),
            (oxigraph::model::vocab::rdfs::LABEL, text(self.name)),
            (vocab::PERSONA, text(self.persona)),
            (vocab::SPEECH_STYLE, text(self.speech_style)),
            (vocab::SAMPLE_LINE, text(self.sample_line)),
            (vocab::APPEARS_IN, iri(&self.production.iri)?.into()),
        ]
        .into_iter()
        .map(|(p, o)| Quad::new(subject.clone(), p, o, graph.clone()))
        .collect())
    }
}

/// What precedes local names in `iri`'s namespace (up to its last `#` or `/`).
fn namespace(iri: &str) -> &str {
    iri.rfind(['#', '/']).map_or(iri, |i| &iri[..=i])
}

fn iri(text: &str) -> Result<NamedNode, CanonError> {
    NamedNode::new(text).map_err(|e| CanonError::Malformed {
        subject: text.to_owned(),
        message: format!("not an IRI: {e}"),
    })
}
