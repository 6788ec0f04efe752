//! Exports of a conversation as text, with the record of what made them: the whole
//! transcript, or the character's replies alone. The CLI signs the record into a C2PA sidecar.

use lore_mark::provenance::{
    ACTION_CREATED, ALGORITHMIC_MEDIA, COMPOSITE_SYNTHETIC,
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA, TRAINED_ALGORITHMIC_MEDIA, sha256_hex,
};
use lore_mark::{ExportProvenance, Provenance, SignedRecord, WatermarkSettings};

use crate::provenance::ENGINE;

/// What an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Both sides, `Name: line`, turn by turn: part human, part generated.
    Transcript,
    /// The character's replies alone, a blank line apart: wholly generated, so its
    /// watermark can be checked.
    Replies,
}

/// One exchange to export.
#[derive(Debug, Clone)]
pub struct ExportTurn {
    /// What the player said.
    pub input: String,
    /// What the character replied.
    pub reply: String,
    /// The reply's signed record, when it was signed.
    pub record: Option<SignedRecord>,
}

/// Whose conversation it was.
#[derive(Debug, Clone)]
pub struct ExportSource {
    /// The production's IRI.
    pub production: String,
    /// The character's IRI.
    pub character: String,
    /// The character's name, as the transcript shows it.
    pub speaker: String,
    /// The player's label, as the transcript shows it.
    pub player: String,
    /// The session, when there is one.
    pub session: Option<String>,
    /// Fingerprint of the canon, for an export whose replies carry no record saying which
    /// canon they were grounded in.
    pub canon_revision: String,
}

/// An export's text and the record a sidecar will carry.
#[derive(Debug, Clone)]
pub struct Export {
    /// The file's contents.
    pub text: String,
    /// What made it: the export's own record and its replies' signed records.
    pub provenance: ExportProvenance,
}

/// The export of `turns` in `format`.
pub fn export(format: ExportFormat, source: &ExportSource, turns: &[ExportTurn]) -> Export {
    let text = match format {
        ExportFormat::Transcript => turns
            .iter()
            .map(|t| {
                format!(
                    "{}: {}\n{}: {}\n",
                    source.player, t.input, source.speaker, t.reply
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ExportFormat::Replies => turns
            .iter()
            .map(|t| t.reply.trim())
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    let parts: Vec<SignedRecord> = turns.iter().filter_map(|t| t.record.clone()).collect();
    // The export's signer vouches for its parts; their records are read, not re-verified.
    let records: Vec<Provenance> = parts
        .iter()
        .filter_map(SignedRecord::unverified_record)
        .collect();
    let generated = records.iter().filter(|r| r.sampling.is_some()).count();
    let model_source = records
        .iter()
        .find(|r| r.sampling.is_some())
        .or(records.first());
    let digital_source_type = match format {
        ExportFormat::Transcript => COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
        ExportFormat::Replies if generated == 0 => ALGORITHMIC_MEDIA,
        ExportFormat::Replies if generated == turns.len() => TRAINED_ALGORITHMIC_MEDIA,
        ExportFormat::Replies => COMPOSITE_SYNTHETIC,
    };
    let record = Provenance {
        artefact: "export".into(),
        content_sha256: sha256_hex(text.as_bytes()),
        engine: ENGINE.into(),
        backend: model_source.map_or("none".into(), |r| r.backend.clone()),
        model: model_source.map_or("none".into(), |r| r.model.clone()),
        model_sha256: model_source.and_then(|r| r.model_sha256.clone()),
        sampling: None,
        // Only text that is all replies is claimed to carry the mark: a transcript's human
        // lines would dilute it.
        watermark: match format {
            ExportFormat::Replies => shared_watermark(&records),
            ExportFormat::Transcript => None,
        },
        canon_revision: records.last().map_or_else(
            || source.canon_revision.clone(),
            |r| r.canon_revision.clone(),
        ),
        prompt_sha256: None,
        production: source.production.clone(),
        character: source.character.clone(),
        session: source.session.clone(),
        created_ms: crate::provenance::now_ms(),
        action: ACTION_CREATED.into(),
        digital_source_type: digital_source_type.into(),
    };
    Export {
        text,
        provenance: ExportProvenance { record, parts },
    }
}

/// The watermark every watermarked reply shares, if they share one.
fn shared_watermark(records: &[Provenance]) -> Option<WatermarkSettings> {
    let mut marks = records.iter().filter_map(|r| r.watermark.as_ref());
    let first = marks.next()?;
    marks.all(|m| m == first).then(|| first.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lore_mark::SigningKeys;

    fn reply_record(text: &str, watermark: Option<WatermarkSettings>) -> Provenance {
        Provenance {
            artefact: "reply".into(),
            content_sha256: sha256_hex(text.as_bytes()),
            engine: ENGINE.into(),
            backend: "embedded".into(),
            model: "gemma.gguf".into(),
            model_sha256: Some("ab".repeat(32)),
            sampling: watermark.as_ref().map(|_| lore_mark::provenance::Sampling {
                temperature: 0.7,
                top_k: 40,
                top_p: 0.95,
                repeat_penalty: 1.1,
                seed: 1,
                max_tokens: 96,
            }),
            watermark: watermark.clone(),
            canon_revision: "r1".into(),
            prompt_sha256: None,
            production: "urn:p".into(),
            character: "urn:c".into(),
            session: None,
            created_ms: 1,
            action: ACTION_CREATED.into(),
            digital_source_type: if watermark.is_some() {
                TRAINED_ALGORITHMIC_MEDIA
            } else {
                ALGORITHMIC_MEDIA
            }
            .into(),
        }
    }

    fn source() -> ExportSource {
        ExportSource {
            production: "urn:p".into(),
            character: "urn:c".into(),
            speaker: "Odile".into(),
            player: "Traveller".into(),
            session: Some("s1".into()),
            canon_revision: "r1".into(),
        }
    }

    fn turns(marks: &[Option<WatermarkSettings>]) -> Vec<ExportTurn> {
        let dir = tempfile::tempdir().unwrap();
        let signer = SigningKeys::open_signing(dir.path())
            .unwrap()
            .current_or_create()
            .unwrap();
        marks
            .iter()
            .enumerate()
            .map(|(i, mark)| {
                let reply = format!("Reply {i}.");
                ExportTurn {
                    input: format!("Line {i}"),
                    record: Some(signer.sign(&reply_record(&reply, mark.clone()))),
                    reply,
                }
            })
            .collect()
    }

    fn mark(key: &str) -> Option<WatermarkSettings> {
        Some(WatermarkSettings {
            key_id: key.into(),
            gamma: 0.25,
            delta: 2.0,
            context_width: 1,
            spike: 0.9,
        })
    }

    #[test]
    fn a_transcript_shows_both_sides_and_is_composite() {
        let export = export(
            ExportFormat::Transcript,
            &source(),
            &turns(&[mark("wm-a"), mark("wm-a")]),
        );
        assert_eq!(
            export.text,
            "Traveller: Line 0\nOdile: Reply 0.\n\nTraveller: Line 1\nOdile: Reply 1.\n"
        );
        let record = &export.provenance.record;
        assert_eq!(record.artefact, "export");
        assert_eq!(
            record.digital_source_type,
            COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
        );
        assert_eq!(record.watermark, None, "human lines carry no mark");
        assert_eq!(record.content_sha256, sha256_hex(export.text.as_bytes()));
        assert_eq!(record.model, "gemma.gguf");
        assert_eq!(export.provenance.parts.len(), 2);
    }

    #[test]
    fn replies_claim_the_watermark_they_share_and_no_other() {
        let all = export(
            ExportFormat::Replies,
            &source(),
            &turns(&[mark("wm-a"), mark("wm-a")]),
        );
        assert_eq!(all.text, "Reply 0.\n\nReply 1.");
        assert_eq!(all.provenance.record.watermark, mark("wm-a"));
        assert_eq!(
            all.provenance.record.digital_source_type,
            TRAINED_ALGORITHMIC_MEDIA
        );

        let scripted = export(
            ExportFormat::Replies,
            &source(),
            &turns(&[mark("wm-a"), None]),
        );
        assert_eq!(scripted.provenance.record.watermark, mark("wm-a"));
        assert_eq!(
            scripted.provenance.record.digital_source_type,
            COMPOSITE_SYNTHETIC
        );

        let rotated = export(
            ExportFormat::Replies,
            &source(),
            &turns(&[mark("wm-a"), mark("wm-b")]),
        );
        assert_eq!(rotated.provenance.record.watermark, None);

        let none = export(ExportFormat::Replies, &source(), &turns(&[None]));
        assert_eq!(
            none.provenance.record.digital_source_type,
            ALGORITHMIC_MEDIA
        );
    }
}
