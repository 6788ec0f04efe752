//! `lore log`, `lore diff`, `lore commit` and `lore revert`: canon's history.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use lore_canon::{Base, Change, Commit, CommitMeta};
use oxigraph::model::{GraphName, NamedNode, Quad};

use crate::config::Config;
use crate::wiring::{open_store, open_writable};

/// Who makes a change and why.
#[derive(clap::Args, Clone)]
pub struct CommitArgs {
    /// Who makes the change (default: $LORE_AUTHOR, else $USER).
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
    /// Why: the commit's message.
    #[arg(long, short, value_name = "TEXT")]
    pub message: Option<String>,
}

impl CommitArgs {
    /// The commit's author and message, `default_message` when none was given.
    pub fn meta(&self, default_message: impl FnOnce() -> String) -> CommitMeta {
        let author = self
            .author
            .clone()
            .or_else(|| std::env::var("LORE_AUTHOR").ok())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "lore".to_owned());
        CommitMeta::new(author, self.message.clone().unwrap_or_else(default_message))
    }
}

/// `lore log`: every commit, newest first.
pub fn log(config: &Config, limit: Option<usize>, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(config)?;
    let log = store.log()?;
    let shown = log.iter().take(limit.unwrap_or(usize::MAX));
    let mut out = std::io::stdout().lock();
    for commit in shown {
        if json {
            writeln!(out, "{}", serde_json::to_string(commit)?)?;
        } else {
            print_commit(&mut out, commit)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_commit(out: &mut impl Write, commit: &Commit) -> std::io::Result<()> {
    writeln!(out, "commit {} (#{})", commit.id, commit.sequence)?;
    writeln!(out, "Author: {}", commit.author)?;
    writeln!(out, "Date:   {}", commit.time)?;
    if let Some(base) = &commit.based_on {
        writeln!(out, "Based on: {base}")?;
    }
    if commit.provenance.is_some() {
        writeln!(out, "Provenance: signed record attached")?;
    }
    writeln!(out, "\n    {}\n", commit.message)?;
    writeln!(out, "    +{} -{} quads\n", commit.added, commit.removed)
}

/// `lore diff A B`: what changed from canon as of A to canon as of B; `lore diff C`: what C
/// changed.
pub fn diff(config: &Config, from: &str, to: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(config)?;
    let change = match to {
        Some(to) => store.diff(Some(from).filter(|f| !f.eq_ignore_ascii_case("root")), to)?,
        None => store.change(from)?,
    };
    print_change(&change, json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_change(change: &Change, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let lines = |quads: &[Quad]| quads.iter().map(|q| format!("{q} .")).collect::<Vec<_>>();
        let value =
            serde_json::json!({"added": lines(&change.added), "removed": lines(&change.removed)});
        writeln!(out, "{value}")?;
    } else {
        write!(out, "{}", change.to_patch())?;
    }
    Ok(())
}

/// What `lore commit` changes.
#[derive(clap::Args)]
pub struct EditArgs {
    /// Canon files (Turtle, TriG, N-Quads, ...) whose triples to add.
    #[arg(long, value_name = "FILE")]
    pub add: Vec<PathBuf>,
    /// Canon files whose triples to remove.
    #[arg(long, value_name = "FILE")]
    pub remove: Vec<PathBuf>,
    /// The graph that triples outside a named graph belong to (a production's graph).
    #[arg(long, value_name = "IRI")]
    pub graph: Option<String>,
    /// The commit the edit was made against (id, prefix, head~N, or root); when others
    /// committed since, the edit is refused if it touches what they changed.
    #[arg(long, value_name = "COMMIT", default_value = "head")]
    pub base: String,
}

/// `lore commit`: adds and removes the triples of files as one commit.
pub fn commit(config: &Config, edit: &EditArgs, args: &CommitArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !edit.add.is_empty() || !edit.remove.is_empty(),
        "nothing to commit: give --add FILE and/or --remove FILE"
    );
    let graph = edit
        .graph
        .as_deref()
        .map(|g| NamedNode::new(g).with_context(|| format!("--graph {g} is not an IRI")))
        .transpose()?;
    let read = |files: &[PathBuf]| -> anyhow::Result<Vec<Quad>> {
        let mut quads = Vec::new();
        for file in files {
            for mut quad in lore_canon::read_quads(file)? {
                if quad.graph_name == GraphName::DefaultGraph {
                    let Some(graph) = &graph else {
                        anyhow::bail!(
                            "{}: triples outside a named graph; say which graph they belong to with --graph IRI",
                            file.display()
                        );
                    };
                    quad.graph_name = graph.clone().into();
                }
                quads.push(quad);
            }
        }
        Ok(quads)
    };
    let change = Change::new(read(&edit.add)?, read(&edit.remove)?);
    let base = match edit.base.to_ascii_lowercase().as_str() {
        "head" => Base::Head,
        "root" => Base::Root,
        _ => Base::Commit(edit.base.clone()),
    };
    let store = open_writable(config)?;
    let commit = store.commit_change(&base, args.meta(|| "edit canon".to_owned()), change)?;
    println!(
        "committed {} (+{} -{} quads)",
        commit.short_id(),
        commit.added,
        commit.removed
    );
    Ok(ExitCode::SUCCESS)
}

/// `lore revert C`: a new commit that undoes C (and, when asked, the later commits that
/// depend on it).
pub fn revert(
    config: &Config,
    rev: &str,
    with_dependents: bool,
    args: &CommitArgs,
) -> anyhow::Result<ExitCode> {
    let store = open_writable(config)?;
    let commit = store.revert(rev, args.meta(String::new), with_dependents)?;
    println!(
        "committed {}: {} (+{} -{} quads)",
        commit.short_id(),
        commit.message,
        commit.added,
        commit.removed
    );
    Ok(ExitCode::SUCCESS)
}
