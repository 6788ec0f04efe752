//! `lore query`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use lore_canon::QueryOutput;
use oxigraph::model::Term;
use oxigraph::sparql::Variable;
use oxigraph::sparql::results::{QueryResultsFormat, QueryResultsSerializer};

use crate::config::Config;
use crate::wiring::open_store;

/// How `lore query` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// SPARQL 1.1 Query Results JSON.
    Json,
    /// SPARQL 1.1 Query Results CSV.
    Csv,
}

pub fn run(
    config: &Config,
    query: &str,
    format: Format,
    as_of: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let text = match query.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read query file {path}"))?,
        None => query.to_owned(),
    };
    let store = open_store(config)?;
    let output = match as_of {
        Some(commit) => store.as_of(commit)?.query(&text)?,
        None => store.query(&text)?,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match (output, format) {
        (QueryOutput::Boolean(b), Format::Table) => writeln!(out, "{b}")?,
        (QueryOutput::Boolean(b), f) => {
            QueryResultsSerializer::from_format(results_format(f))
                .serialize_boolean_to_writer(&mut out, b)?;
            writeln!(out)?;
        }
        (QueryOutput::Solutions { variables, rows }, Format::Table) => {
            table(&mut out, &variables, &rows)?
        }
        (QueryOutput::Solutions { variables, rows }, f) => {
            let vars: Vec<Variable> = variables
                .iter()
                .map(|v| Variable::new_unchecked(v.clone()))
                .collect();
            let mut serializer = QueryResultsSerializer::from_format(results_format(f))
                .serialize_solutions_to_writer(&mut out, vars.clone())?;
            for row in &rows {
                serializer.serialize(
                    vars.iter()
                        .zip(row)
                        .filter_map(|(v, t)| t.as_ref().map(|t| (v, t))),
                )?;
            }
            serializer.finish()?;
            if f == Format::Json {
                writeln!(out)?;
            }
        }
        (QueryOutput::Graph(triples), _) => {
            for t in triples {
                writeln!(out, "{t} .")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn results_format(format: Format) -> QueryResultsFormat {
    match format {
        Format::Json => QueryResultsFormat::Json,
        Format::Csv | Format::Table => QueryResultsFormat::Csv,
    }
}

fn cell(term: &Option<Term>) -> String {
    match term {
        None => String::new(),
        Some(Term::Literal(l)) => match l.language() {
            Some(language) => format!("\"{}\"@{language}", l.value()),
            None => l.value().to_owned(),
        },
        Some(t) => t.to_string(),
    }
}

fn table(
    out: &mut impl Write,
    variables: &[String],
    rows: &[Vec<Option<Term>>],
) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let widths: Vec<usize> = variables
        .iter()
        .enumerate()
        .map(|(i, v)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(v.len() + 1)
        })
        .collect();
    let line = |out: &mut dyn Write, values: Vec<String>| -> std::io::Result<()> {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join(" | ").trim_end())
    };
    line(out, variables.iter().map(|v| format!("?{v}")).collect())?;
    writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    )?;
    for row in cells {
        line(out, row)?;
    }
    writeln!(out, "({} rows)", rows.len())
}
