//! Exports of a stored session: its conversation as text with a signed C2PA sidecar, over
//! HTTP (`GET /v1/sessions/{id}/export`) and for `lore export`.

use lore_canon::World;
use lore_engine::{Export, ExportFormat, ExportSource, ExportTurn, export};
use lore_mark::SignedRecord;

use crate::db::{Db, DbError, SessionRow};

/// The media type of every session export.
pub const EXPORT_MEDIA_TYPE: &str = "text/plain";

/// The conversation of session `row` in `format`, its speaker named from `world` and the
/// player as `player` (the label its prompts used).
pub async fn session_export(
    db: &Db,
    row: &SessionRow,
    world: &World,
    player: &str,
    format: ExportFormat,
) -> Result<Export, DbError> {
    let turns = db
        .sessions
        .turns(&row.id, 0..i64::MAX)
        .await?
        .into_iter()
        .map(|t| ExportTurn {
            // The server wrote these records; one it cannot read is left out of the parts,
            // and the export's own record still covers the text.
            record: t
                .provenance
                .as_deref()
                .and_then(|p| serde_json::from_str::<SignedRecord>(p).ok()),
            input: t.input,
            reply: t.reply,
        })
        .collect::<Vec<_>>();
    let speaker = world.entity(&row.character).map_or_else(
        || row.character.clone(),
        |id| world.entities[id].name.clone(),
    );
    let source = ExportSource {
        production: row.production.clone(),
        character: row.character.clone(),
        speaker,
        player: player.to_owned(),
        session: Some(row.id.clone()),
        canon_revision: world.canon_revision.clone(),
    };
    Ok(export(format, &source, &turns))
}
