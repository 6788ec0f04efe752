//! `lore export` and `lore chat --export`: a conversation written to a file, with a signed
//! C2PA sidecar beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use lore_canon::World;
use lore_engine::{Export, ExportFormat};
use lore_mark::StudioCredentials;
use lore_mark::sidecar::{media_type, sidecar_path};
use lore_server::Db;
use lore_server::export::session_export;

use crate::config::Config;
use crate::query::open_store;
use crate::serve::runtime;

/// The organisation named on certificates made on first use.
const ORGANISATION: &str = "Lorekeeper studio";

/// What an export holds, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Both sides of the conversation, turn by turn.
    Transcript,
    /// The character's replies alone (their watermark can be checked).
    Replies,
}

impl From<FormatArg> for ExportFormat {
    fn from(format: FormatArg) -> ExportFormat {
        match format {
            FormatArg::Transcript => ExportFormat::Transcript,
            FormatArg::Replies => ExportFormat::Replies,
        }
    }
}

/// The studio's C2PA credentials, made on first use.
pub(crate) fn credentials(config: &Config) -> anyhow::Result<StudioCredentials> {
    Ok(StudioCredentials::open_or_create(
        &config.keys,
        ORGANISATION,
    )?)
}

/// Writes `export` to `out` and its signed sidecar beside it; returns the sidecar's path.
pub(crate) fn write_export(
    config: &Config,
    out: &Path,
    export: &Export,
) -> anyhow::Result<PathBuf> {
    let title = out
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let sidecar = credentials(config)?.sign_sidecar(
        export.text.as_bytes(),
        media_type(out),
        &title,
        &export.provenance,
    )?;
    let sidecar_file = sidecar_path(out);
    std::fs::write(out, &export.text).with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&sidecar_file, sidecar)
        .with_context(|| format!("writing {}", sidecar_file.display()))?;
    Ok(sidecar_file)
}

/// `lore export --session S`: a stored session's conversation.
pub fn export_session(
    config: &Config,
    session: &str,
    format: FormatArg,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let store = open_store(config)?;
    let (row, export) = runtime()?.block_on(async {
        let db = Db::connect(&config.database).await?;
        let Some(row) = db.session(session).await? else {
            db.close().await;
            anyhow::bail!(
                "no session {session:?} in {} (`lore serve` stores sessions there)",
                config.database
            );
        };
        let world = World::load_cached(&store, &row.production, &config.cache.join("worlds"))?;
        // The label `lore serve` prompts with (its options are the defaults here too).
        let player = lore_engine::SessionOptions::default().player_label;
        let export = session_export(&db, &row, &world, &player, format.into()).await?;
        db.close().await;
        anyhow::ensure!(
            !export.text.is_empty(),
            "session {session} has no turns yet: there is nothing to export"
        );
        anyhow::Ok((row, export))
    })?;
    let sidecar = write_export(config, out, &export)?;
    eprintln!(
        "wrote {} (session {}, {} turns) and its C2PA sidecar {}",
        out.display(),
        row.id,
        row.turns,
        sidecar.display()
    );
    Ok(ExitCode::SUCCESS)
}
