//! `lore import`: canon files (Turtle, TriG, N-Triples, N-Quads, JSON-LD), character cards
//! (PNG, JSON, CHARX) and lorebooks, all or none.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use lore_canon::{CanonStore, CommitMeta, World};
use lore_cards::{Document, Mapped, Placement};

use crate::config::Config;
use crate::history::CommitArgs;

/// Where imported cards and lorebooks go.
pub struct CardTarget {
    /// Productions (name or IRI) they join; none: each gets a production of its own.
    pub productions: Vec<String>,
    /// The tenant of a production created for a card.
    pub tenant: Option<String>,
}

pub fn run(
    config: &Config,
    files: &[PathBuf],
    target: &CardTarget,
    commit: &CommitArgs,
) -> anyhow::Result<ExitCode> {
    let meta = commit.meta(|| {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        format!("Import {}", names.join(", "))
    });
    std::fs::create_dir_all(&config.store).with_context(|| {
        format!(
            "cannot create the store directory {}",
            config.store.display()
        )
    })?;
    let store = CanonStore::open(&config.store)?;
    let (cards, canon): (Vec<&PathBuf>, Vec<&PathBuf>) = files.iter().partition(|f| is_card(f));
    if cards.is_empty() {
        return import_canon(config, &store, files, meta);
    }
    // Every document is read and mapped before anything is written; then all of them, and
    // any canon files beside them, commit in one transaction.
    let mapped = map_cards(&store, &cards, target)?;
    let mut quads = Vec::new();
    let mut canon_counts = Vec::new();
    for file in canon {
        let q = lore_canon::read_quads(file)?;
        canon_counts.push((file, q.len()));
        quads.extend(q);
    }
    let graphs: Vec<_> = mapped.iter().map(|(_, m)| m.graph.clone()).collect();
    quads.extend(mapped.iter().flat_map(|(_, m)| m.quads.iter().cloned()));
    let commit = store.replace_graphs(&graphs, &quads, meta)?;
    for (file, m) in &mapped {
        println!(
            "{}: <{}> in graph <{}>, {} quads (the graph replaced as a whole)",
            file.display(),
            m.subject.as_str(),
            m.graph.as_str(),
            m.quads.len()
        );
        for line in &m.report {
            println!("  {line}");
        }
    }
    for (file, n) in canon_counts {
        println!("{}: {n} quads", file.display());
    }
    match commit {
        Some(c) => println!(
            "imported into {} as commit {} (+{} -{} quads)",
            config.store.display(),
            c.short_id(),
            c.added,
            c.removed
        ),
        None => println!("canon already held all of it; nothing was committed"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads and maps every card and lorebook in `cards` for `target`'s productions, refusing
/// two that would replace the same graph.
fn map_cards<'a>(
    store: &CanonStore,
    cards: &[&'a PathBuf],
    target: &CardTarget,
) -> anyhow::Result<Vec<(&'a PathBuf, Mapped)>> {
    let worlds: Vec<World> = target
        .productions
        .iter()
        .map(|p| World::load(store, p))
        .collect::<Result<_, _>>()?;
    let productions: Vec<_> = worlds.iter().map(|w| w.production.clone()).collect();
    let mut names = std::collections::HashMap::new();
    for world in &worlds {
        names.extend(lore_cards::names(world));
    }
    let mut mapped: Vec<(&PathBuf, Mapped)> = Vec::new();
    for &file in cards {
        let placement = Placement {
            productions: &productions,
            names: &names,
            tenant: target.tenant.as_deref(),
        };
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let document = lore_cards::read(file, &bytes)?;
        let m = match &document {
            Document::Card(card) => lore_cards::card_to_canon(card, &placement),
            Document::Lorebook(book) => {
                let stem = file
                    .file_stem()
                    .map_or_else(|| "lorebook".into(), |s| s.to_string_lossy());
                lore_cards::lorebook_to_canon(book, &stem, &placement)
            }
        };
        // Later documents link their keys to what earlier ones declared.
        for (name, iri) in &m.names {
            names.entry(name.clone()).or_insert_with(|| iri.clone());
        }
        if let Some((other, _)) = mapped.iter().find(|(_, o)| o.graph == m.graph) {
            anyhow::bail!(
                "{} and {} map to the same graph <{}> (the same name): import them separately",
                other.display(),
                file.display(),
                m.graph.as_str()
            );
        }
        mapped.push((file, m));
    }
    Ok(mapped)
}

fn import_canon(
    config: &Config,
    store: &CanonStore,
    files: &[PathBuf],
    meta: CommitMeta,
) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} quads ({per_sec}) {elapsed}")
            .expect("constant template"),
    );
    bar.set_message("importing");
    let progress = bar.clone();
    let started = Instant::now();
    let report = store.import(files, meta, move |n| progress.set_position(n));
    bar.finish_and_clear();
    let report = report?;
    for (file, quads) in &report.files {
        println!("{}: {quads} quads", file.display());
    }
    let commit = report.commit.as_ref().map_or_else(
        || "nothing new, no commit".to_owned(),
        |c| format!("commit {}", c.short_id()),
    );
    println!(
        "imported into {} in {:.2?} ({commit}); the store holds {} quads",
        config.store.display(),
        started.elapsed(),
        report.store_len
    );
    Ok(ExitCode::SUCCESS)
}

/// Cards and lorebooks: PNG and CHARX files, and JSON that is not JSON-LD (JSON-LD objects
/// carry `@context`, `@graph` or `@id`; cards and lorebooks never do).
fn is_card(file: &Path) -> bool {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png" | "charx") => true,
        Some("json") => std::fs::read(file).is_ok_and(|bytes| {
            let head = &bytes[..bytes.len().min(4096)];
            let head = String::from_utf8_lossy(head);
            !["\"@context\"", "\"@graph\"", "\"@id\""]
                .iter()
                .any(|k| head.contains(k))
        }),
        _ => false,
    }
}
