//! `lore context` and `lore chat`: a character's context for a line, and a conversation in
//! the terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lore_canon::Retrieved;
use lore_engine::{
    CharacterSession, ExportSource, ExportTurn, LikenessScope, SessionOptions, TurnContext,
    TurnOutcome, TurnPlanner,
};
use serde_json::json;

use crate::SessionArgs;
use crate::config::Config;
use crate::export::{FormatArg, write_export};
use crate::wiring::{backend, load, load_semantic, session_options};

fn facts_json(facts: &[Retrieved]) -> serde_json::Value {
    facts
        .iter()
        .map(|f| json!({ "id": f.iri, "text": f.text, "reason": f.reason.to_string() }))
        .collect()
}

fn print_context(out: &mut impl Write, context: &TurnContext) -> std::io::Result<()> {
    writeln!(out, "standing ({}):", context.standing.name)?;
    for f in &context.standing.facts {
        writeln!(out, "  <{}> [{}]\n    {}", f.iri, f.reason, f.text)?;
    }
    writeln!(out, "retrieved for this line:")?;
    if context.retrieved.is_empty() {
        writeln!(
            out,
            "  (nothing: the line names no entity this character knows about, and no fact is close in meaning)"
        )?;
    }
    for f in &context.retrieved {
        writeln!(out, "  <{}> [{}]\n    {}", f.iri, f.reason, f.text)?;
    }
    Ok(())
}

pub fn context(config: &Config, args: &SessionArgs, text: &str) -> anyhow::Result<ExitCode> {
    let (world, resolved, _store) = load(config, args)?;
    // The rails' encoder, as a turn has it: it finds facts by meaning.
    let options = SessionOptions {
        semantic: Some(Arc::new(load_semantic(config)?)),
        ..SessionOptions::default()
    };
    let planner = TurnPlanner::new(world, resolved, options)?;
    let started = Instant::now();
    let context = planner.context(text);
    let micros = started.elapsed().as_micros();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(
            out,
            "{}",
            json!({
                "character": context.standing.name,
                "beat": resolved.beat,
                "scene": context.standing.scene,
                "standing": facts_json(&context.standing.facts),
                "retrieved": facts_json(&context.retrieved),
                "micros": micros,
            })
        )?;
    } else {
        print_context(&mut out, &context)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn chat(
    config: &Config,
    args: &SessionArgs,
    show_context: bool,
    likeness: LikenessScope,
    export: Option<(PathBuf, FormatArg)>,
) -> anyhow::Result<ExitCode> {
    let (world, resolved, _store) = load(config, args)?;
    let mut exported = Vec::new();
    let backend = backend(config)?;
    let options = session_options(config)?;
    let player = options.player_label.clone();
    let mut session = CharacterSession::open(world, resolved, backend.as_ref(), options, likeness)?;
    let name = session.planner().character_name().to_owned();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal() && !args.json;
    let stdout = std::io::stdout();
    if interactive {
        let info = backend.info();
        let prompting = if info.chat_template {
            "chat template"
        } else {
            "transcript"
        };
        eprintln!(
            "Talking with {name} ({} backend, {}, {prompting} prompts). An empty line or Ctrl-D ends the conversation.",
            info.kind, info.model
        );
    }
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("{player}> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            if interactive {
                break;
            }
            continue;
        }
        let context = show_context.then(|| session.planner().context(&line));
        let mut out = stdout.lock();
        if let (Some(context), false) = (&context, args.json) {
            print_context(&mut out, context)?;
        }
        if !args.json {
            write!(out, "{name}: ")?;
            out.flush()?;
        }
        let result = session.turn(&line, &mut |text: &str| {
            if !args.json {
                // A closed stdout cancels generation instead of wasting it.
                return write!(out, "{text}").and_then(|()| out.flush()).is_ok();
            }
            true
        })?;
        if args.json {
            writeln!(out, "{}", turn_json(&line, &result, context.as_ref()))?;
        } else {
            writeln!(out)?;
        }
        if export.is_some() {
            exported.push(ExportTurn {
                input: line,
                reply: result.reply,
                record: result.provenance,
            });
        }
    }
    if let Some((file, format)) = export {
        write_conversation(config, session.planner(), &player, &file, format, &exported)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One turn as `lore chat --json` prints it.
fn turn_json(line: &str, result: &TurnOutcome, context: Option<&TurnContext>) -> serde_json::Value {
    let g = &result.generation;
    let withheld: Vec<serde_json::Value> = result
        .output
        .withheld
        .iter()
        .flat_map(|v| {
            let policy = v.policy.fired.iter().map(|f| {
                json!({
                    "kind": "policy", "node": f.node, "score": f.score,
                })
            });
            let canon = v.canon.iter().map(|f| {
                json!({
                    "kind": f.problem.kind(), "node": f.problem.node(),
                    "evidence": f.evidence, "score": f.score,
                })
            });
            policy.chain(canon).collect::<Vec<_>>()
        })
        .collect();
    let mut object = json!({
        "input": line,
        "reply": result.reply,
        "facts": result.facts_used,
        "prompt_tokens": g.prompt_tokens,
        "evaluated_prompt_tokens": g.evaluated_tokens,
        "generated_tokens": g.generated_tokens,
        "time_to_first_token_ms": g.time_to_first_token.as_secs_f64() * 1000.0,
        "tokens_per_second": g.tokens_per_second(),
        "prepare_us": result.plan_time.as_micros(),
        "stop": format!("{:?}", g.stop).to_lowercase(),
        "watermark": g.watermark,
        "provenance": result.provenance,
        "output_rail": {
            "repair": result.output.repair.name(),
            "withheld": withheld,
        },
    });
    if let Some(context) = context {
        object["context"] = json!({
            "standing": facts_json(&context.standing.facts),
            "retrieved": facts_json(&context.retrieved),
        });
    }
    object
}

/// Writes the conversation's `turns` to `file` in `format`, with its signed sidecar.
fn write_conversation(
    config: &Config,
    planner: &TurnPlanner,
    player: &str,
    file: &Path,
    format: FormatArg,
    turns: &[ExportTurn],
) -> anyhow::Result<()> {
    if turns.is_empty() {
        eprintln!("nothing said, so nothing exported to {}", file.display());
        return Ok(());
    }
    let world = planner.world();
    let source = ExportSource {
        production: world.production.iri.clone(),
        character: world.entities[planner.speaker()].iri.clone(),
        speaker: planner.character_name().to_owned(),
        player: player.to_owned(),
        session: None,
        canon_revision: world.canon_revision.clone(),
    };
    let export = lore_engine::export(format.into(), &source, turns);
    let sidecar = write_export(config, file, &export)?;
    eprintln!(
        "wrote {} ({} turns) and its C2PA sidecar {}",
        file.display(),
        turns.len(),
        sidecar.display()
    );
    Ok(())
}
