//! `lore export` and `lore chat --export`: a conversation written to a file, with a signed
//! C2PA sidecar beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use lore_canon::World;
use lore_engine::{Export, ExportFormat};
use lore_mark::sidecar::{media_type, sidecar_path};
use lore_server::Db;
use lore_server::export::session_export;

use crate::config::Config;
use crate::wiring::{credentials, open_store, runtime};

/// What a conversation's export holds, as the command line names it.
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

/// What `lore export` writes: a session's conversation, or canon in a community format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportArg {
    /// Both sides of a session's conversation, turn by turn.
    Transcript,
    /// A session's character's replies alone (their watermark can be checked).
    Replies,
    /// A character as a Character Card V2 (JSON).
    CardV2,
    /// A character as a Character Card V3 (JSON, or PNG with a V2 backfill for FILE.png).
    CardV3,
    /// A character as a CHARX archive.
    Charx,
    /// A lorebook (`lorebook_v3`): the character's, or the production's standalone one.
    Lorebook,
}

impl ExportArg {
    /// The conversation format, if this is one.
    pub fn session(self) -> Option<FormatArg> {
        match self {
            ExportArg::Transcript => Some(FormatArg::Transcript),
            ExportArg::Replies => Some(FormatArg::Replies),
            _ => None,
        }
    }
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

/// `lore export`: a stored session's conversation (`--session`), or a character or lorebook
/// of a production (`--production`).
pub fn run(
    config: &Config,
    session: Option<String>,
    production: Option<String>,
    character: Option<String>,
    format: ExportArg,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    match (session, production) {
        (Some(session), _) => {
            let out = out.context("--out FILE is needed to export a session")?;
            let format = format.session().with_context(|| {
                format!("--format {format:?} writes a character: give --production, not --session")
            })?;
            export_session(config, &session, format, &out)
        }
        (None, Some(production)) => export_card(
            config,
            &production,
            character.as_deref(),
            format,
            out.as_deref(),
        ),
        (None, None) => anyhow::bail!("say what to export: --session ID or --production P"),
    }
}

/// `lore export --session S`: a stored session's conversation.
fn export_session(
    config: &Config,
    session: &str,
    format: FormatArg,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let store = open_store(config)?;
    let (row, export) = runtime()?.block_on(async {
        let db = Db::connect(&config.database).await?;
        let Some(row) = db.sessions.get(session).await? else {
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

/// `lore export --production P [--character C] --format card-v2|card-v3|charx|lorebook`.
fn export_card(
    config: &Config,
    production: &str,
    character: Option<&str>,
    format: ExportArg,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(config)?;
    let world = World::load(&store, production)?;
    let character = character
        .map(|name| {
            world.character(name).with_context(|| {
                format!(
                    "no character {name:?} in {}; it has {}",
                    world.production.title,
                    world
                        .entities
                        .iter()
                        .filter(|e| e.kind == lore_canon::EntityKind::Character)
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .transpose()?;
    let png = out.is_some_and(|o| o.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")));
    let (bytes, dropped) = match (format, character) {
        (ExportArg::Lorebook, character) => {
            let book = match character {
                Some(c) => {
                    let card = lore_cards::card_from_canon(&store, &world, c)?;
                    match card.data.get("character_book") {
                        Some(serde_json::Value::Object(book)) => book.clone(),
                        _ => anyhow::bail!("{} has no lorebook", world.entities[c].name),
                    }
                }
                None => {
                    let books = lore_cards::lorebooks(&store, &world.production)?;
                    let [book] = books.as_slice() else {
                        anyhow::bail!(
                            "{} has {} standalone lorebooks ({}): name a --character to write its book",
                            world.production.title,
                            books.len(),
                            books.join(", ")
                        );
                    };
                    lore_cards::lorebook_from_canon(&store, &world.production, book)?
                }
            };
            (
                lore_cards::pretty(&lore_cards::lorebook_json(&book)),
                Vec::new(),
            )
        }
        (ExportArg::Transcript | ExportArg::Replies, _) => {
            anyhow::bail!("--format {format:?} writes a session: give --session ID")
        }
        (_, None) => anyhow::bail!("--format {format:?} writes a character: give --character NAME"),
        (format, Some(c)) => {
            let card = lore_cards::card_from_canon(&store, &world, c)?;
            match format {
                ExportArg::Charx => (lore_cards::card_charx(&card), Vec::new()),
                ExportArg::CardV3 if png => lore_cards::card_png(&card, lore_cards::Spec::V3),
                ExportArg::CardV2 if png => lore_cards::card_png(&card, lore_cards::Spec::V2),
                ExportArg::CardV2 => {
                    let (json, dropped) = lore_cards::card_json(&card, lore_cards::Spec::V2);
                    (lore_cards::pretty(&json), dropped)
                }
                _ => {
                    let (json, dropped) = lore_cards::card_json(&card, lore_cards::Spec::V3);
                    (lore_cards::pretty(&json), dropped)
                }
            }
        }
    };
    match out {
        Some(out) => {
            std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
        }
        None if matches!(format, ExportArg::Charx) => {
            anyhow::bail!("a CHARX archive is binary: give --out FILE.charx")
        }
        None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
    }
    for path in dropped {
        eprintln!("not written: {path} (the format has no place for it)");
    }
    Ok(ExitCode::SUCCESS)
}
