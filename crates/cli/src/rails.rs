//! `lore rails`: lines tried on a character's rails, for the staff who write the policy.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use lore_engine::{SessionOptions, TurnPlanner};
use lore_server::RailsCheckOut;

use crate::SessionArgs;
use crate::config::Config;
use crate::wiring::{load, load_semantic};

/// Judges each of `lines` (stdin's lines when none are given) as the input rail would a
/// player's line, or with `output` as the output rail would a sentence of the reply. Nothing is
/// generated or logged for audit.
pub fn rails(
    config: &Config,
    args: &SessionArgs,
    output: bool,
    lines: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let (world, resolved, _store) = load(config, args)?;
    let options = SessionOptions {
        semantic: Some(Arc::new(load_semantic(config)?)),
        ..SessionOptions::default()
    };
    let planner = TurnPlanner::new(world, resolved, options)?;
    let lines: Box<dyn Iterator<Item = anyhow::Result<String>>> = if lines.is_empty() {
        Box::new(
            std::io::stdin()
                .lock()
                .lines()
                .map(|line| line.context("reading a line from stdin")),
        )
    } else {
        Box::new(lines.into_iter().map(Ok))
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        let line = line?;
        let judged = if output {
            RailsCheckOut::output(&planner.check_sentence(&line)?)
        } else {
            RailsCheckOut::input(&planner.try_input(&line)?)
        };
        if args.json {
            let mut object = serde_json::to_value(&judged)?;
            object["text"] = line.into();
            writeln!(out, "{object}")?;
        } else {
            print_judged(&mut out, &line, &judged)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The decision, then one line per policy node and canon finding behind it.
fn print_judged(out: &mut impl Write, line: &str, judged: &RailsCheckOut) -> std::io::Result<()> {
    writeln!(out, "{:<11} {line}", judged.action)?;
    for f in &judged.fired {
        writeln!(
            out,
            "  {} <{}>: {} rule, {} {:?} in the {} reading, score {:.2}",
            f.label, f.node, f.rule, f.layer, f.term, f.view, f.score
        )?;
    }
    for c in &judged.canon {
        writeln!(
            out,
            "  {} <{}>: {:?}, score {:.2}",
            c.kind, c.node, c.evidence, c.score
        )?;
    }
    Ok(())
}
