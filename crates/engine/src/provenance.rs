//! The provenance record of a reply or a quest's write-up: what made it, from what, for whom;
//! signed when the session has a signer.

use lore_gen::{BackendInfo, Conversation, GenParams, Generation};
use lore_mark::provenance::{
    ACTION_CREATED, ALGORITHMIC_MEDIA, Sampling, TRAINED_ALGORITHMIC_MEDIA, sha256_hex,
};
use lore_mark::{Provenance, SignedRecord};

use lore_canon::World;

use crate::options::SessionOptions;
use crate::planner::TurnPlanner;

/// The engine's name and version, as records state it.
pub(crate) const ENGINE: &str = concat!("lorekeeper/", env!("CARGO_PKG_VERSION"));

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TurnPlanner {
    /// The signed record of `generation`'s text, prompted by `prompt` (`None` when no model
    /// was asked: a scripted deflection or refusal), in `session`. `None` without a signer.
    pub fn provenance(
        &self,
        backend: &BackendInfo,
        prompt: Option<&Conversation>,
        generation: &Generation,
        session: Option<&str>,
    ) -> Option<SignedRecord> {
        let params = &self.options().generation;
        self.record("reply", backend, prompt, params, generation, session)
    }

    /// The signed record of an `artefact` (`reply`, `quest`) that `generation` made with
    /// `params`.
    pub(crate) fn record(
        &self,
        artefact: &str,
        backend: &BackendInfo,
        prompt: Option<&Conversation>,
        params: &GenParams,
        generation: &Generation,
        session: Option<&str>,
    ) -> Option<SignedRecord> {
        let made = Made {
            artefact,
            character: &self.world().entities[self.speaker()].iri,
            session,
            prompt,
            params,
            generation,
        };
        sign_record(self.options(), self.world(), backend, &made)
    }
}

/// What a record is about: an artefact, the character it is by or of, and how it was made.
pub(crate) struct Made<'a> {
    /// `reply`, `quest`, `character`.
    pub artefact: &'a str,
    /// The IRI of the character who speaks it, or who it describes.
    pub character: &'a str,
    /// The session it was made in.
    pub session: Option<&'a str>,
    /// The prompt (`None` when no model was asked).
    pub prompt: Option<&'a Conversation>,
    /// The settings it was generated with.
    pub params: &'a GenParams,
    /// The generation, its text as kept.
    pub generation: &'a Generation,
}

/// The signed record of `made` in `world`'s production; `None` without a signer.
pub(crate) fn sign_record(
    options: &SessionOptions,
    world: &World,
    backend: &BackendInfo,
    made: &Made<'_>,
) -> Option<SignedRecord> {
    let Made {
        artefact,
        character,
        session,
        prompt,
        params,
        generation,
    } = *made;
    let signer = options.signer.as_ref()?;
    let generated = generation.generated_tokens > 0;
    let record = Provenance {
        artefact: artefact.into(),
        content_sha256: sha256_hex(generation.text.as_bytes()),
        engine: ENGINE.into(),
        backend: backend.kind.into(),
        model: backend.model.clone(),
        model_sha256: backend.model_sha256.clone(),
        sampling: generated.then_some(Sampling {
            temperature: params.sampler.temperature,
            top_k: params.sampler.top_k,
            top_p: params.sampler.top_p,
            repeat_penalty: params.sampler.repeat_penalty,
            seed: params.sampler.seed,
            max_tokens: params.max_tokens,
        }),
        watermark: generation.watermark.clone(),
        canon_revision: world.canon_revision.clone(),
        prompt_sha256: prompt.map(|c| sha256_hex(c.transcript().as_bytes())),
        production: world.production.iri.clone(),
        character: character.to_owned(),
        session: session.map(str::to_owned),
        created_ms: now_ms(),
        action: ACTION_CREATED.into(),
        digital_source_type: if generated {
            TRAINED_ALGORITHMIC_MEDIA
        } else {
            ALGORITHMIC_MEDIA
        }
        .into(),
    };
    Some(signer.sign(&record))
}
