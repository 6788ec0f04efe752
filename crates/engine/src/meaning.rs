//! Finding facts by meaning: the speaker's known facts are embedded once, with the encoder the
//! rails already load, and a player's line is compared with each, so that a line naming no
//! entity ("what keeps you busy at night?") still finds the fact it asks about.

use std::sync::Arc;

use lore_canon::{FactId, Retriever};
use lore_guard::Semantic;
use lore_guard::encoder::EncoderError;
use lore_guard::semantic::cosine;

/// Most facts one speaker's retrieval by meaning compares a line with: enough for every fact
/// of a world the size of the sample one, and a bound on the work per turn in a large one.
const CANDIDATES: usize = 1024;

/// The embeddings of the facts one speaker knows at one beat, nearest the speaker first.
pub(crate) struct FactMeanings {
    semantic: Arc<Semantic>,
    facts: Vec<(FactId, Arc<[f32]>)>,
}

impl FactMeanings {
    /// Embeds the facts `retriever`'s speaker knows, up to [`CANDIDATES`] of those nearest it
    /// ([`Retriever::nearby_facts`]). Each statement is embedded once per [`Semantic`] (its
    /// cache folder keeps them when the rails next write it), so later planners over the same
    /// world only look their facts up.
    pub(crate) fn new(
        semantic: Arc<Semantic>,
        retriever: &Retriever,
    ) -> Result<FactMeanings, EncoderError> {
        let world = retriever.world();
        let facts = retriever
            .nearby_facts(CANDIDATES)
            .into_iter()
            .map(|id| Ok((id, semantic.example(&world.facts[id].statement)?)))
            .collect::<Result<_, EncoderError>>()?;
        Ok(FactMeanings { semantic, facts })
    }

    /// The facts closest in meaning to `text` with a cosine similarity of at least `floor`,
    /// best first, at most `limit`.
    pub(crate) fn nearest(
        &self,
        text: &str,
        floor: f32,
        limit: usize,
    ) -> Result<Vec<(FactId, f32)>, EncoderError> {
        if self.facts.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let line = self.semantic.line(text)?;
        let mut scored: Vec<(FactId, f32)> = self
            .facts
            .iter()
            .map(|(id, vector)| (*id, cosine(&line, vector)))
            .filter(|(_, similarity)| *similarity >= floor)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        Ok(scored)
    }
}
