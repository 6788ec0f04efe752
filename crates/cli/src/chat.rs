//! `lore context` and `lore chat`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lore_canon::{CanonStore, Retrieved, World};
use lore_engine::{
    CharacterSession, ExportSource, ExportTurn, LikenessScope, SessionOptions, TurnContext,
    TurnPlanner,
};
use lore_gen::{
    Backend, EmbeddedBackend, EmbeddedConfig, GenParams, OpenAiBackend, OpenAiConfig, PromptStyle,
};
use lore_guard::{HazardHead, Semantic};
use lore_mark::{Keyring, SigningKeys};
use serde_json::json;

use crate::SessionArgs;
use crate::config::{BackendKind, Config};
use crate::export::{FormatArg, write_export};
use crate::query::open_store;

pub(crate) fn load(
    config: &Config,
    args: &SessionArgs,
) -> anyhow::Result<(Arc<World>, lore_canon::Resolved, CanonStore)> {
    let store = open_store(config)?;
    let world = World::load_cached(&store, &args.production, &config.cache.join("worlds"))?;
    let resolved = world.resolve(&store, &args.character, args.at.as_deref())?;
    Ok((Arc::new(world), resolved, store))
}

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
            "  (nothing: the line names no entity this character knows about)"
        )?;
    }
    for f in &context.retrieved {
        writeln!(out, "  <{}> [{}]\n    {}", f.iri, f.reason, f.text)?;
    }
    Ok(())
}

pub fn context(config: &Config, args: &SessionArgs, text: &str) -> anyhow::Result<ExitCode> {
    let (world, resolved, _store) = load(config, args)?;
    let started = Instant::now();
    let context = TurnPlanner::new(world, resolved, SessionOptions::default())?.context(text);
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

pub(crate) fn backend(config: &Config) -> anyhow::Result<Box<dyn Backend>> {
    Ok(match config.backend {
        BackendKind::Embedded => {
            let mut embedded = EmbeddedConfig::new(config.model.clone());
            embedded.threads = config.threads;
            embedded.n_ctx = config.n_ctx;
            embedded.prompt_style = match config.prompt_style.as_str() {
                "auto" => PromptStyle::Auto,
                "transcript" => PromptStyle::Transcript,
                name => PromptStyle::Named(name.to_owned()),
            };
            Box::new(EmbeddedBackend::load(embedded)?)
        }
        BackendKind::Openai => {
            let mut openai =
                OpenAiConfig::new(config.openai_url.clone(), config.openai_model.clone());
            openai.api_key = std::env::var(&config.openai_key_env).ok();
            openai.connect_timeout = std::time::Duration::from_secs(config.openai_timeout_secs);
            openai.read_timeout = std::time::Duration::from_secs(config.openai_timeout_secs);
            Box::new(OpenAiBackend::new(openai))
        }
    })
}

/// Per-turn settings from the configuration, with the rails' embedding layer loaded and the
/// current watermark and signing keys (made on first use, so that no reply goes unmarked
/// or unsigned).
pub(crate) fn session_options(config: &Config) -> anyhow::Result<SessionOptions> {
    let watermark = Keyring::open_watermarks(&config.keys)?.current_or_create()?;
    let signer = SigningKeys::open_signing(&config.keys)?.current_or_create()?;
    Ok(SessionOptions {
        generation: GenParams {
            max_tokens: config.max_tokens,
            sampler: config.sampler(),
            stop_rules: true,
            watermark: Some(watermark),
            structured: None,
        },
        semantic: Some(Arc::new(load_semantic(config)?)),
        signer: Some(signer),
        ..SessionOptions::default()
    })
}

/// The rails' embedding layer: the encoder from `config.encoder`, with the bundled hazard head
/// or the one `config.hazard_head` names, keeping policy examples' embeddings under
/// `config.cache`.
pub(crate) fn load_semantic(config: &Config) -> anyhow::Result<Semantic> {
    let mut semantic = Semantic::load(&config.encoder).with_context(|| {
        format!(
            "loading the rails' encoder from {} (scripts/setup.sh fetches it; LORE_ENCODER \
             points elsewhere)",
            config.encoder.display()
        )
    })?;
    if let Some(path) = &config.hazard_head {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the hazard head {}", path.display()))?;
        let head = HazardHead::from_json(&text)
            .with_context(|| format!("{} is not a hazard head", path.display()))?;
        semantic = Semantic::new(semantic.encoder().clone(), head);
    }
    // Policy examples' embeddings, tunings and topic heads survive between runs: a policy's
    // rails are then built without embedding every example, tuning the encoder and fitting
    // its heads again. Tuning takes minutes, the first time a policy is seen: it shows a bar.
    Ok(semantic
        .with_cache(&config.cache)?
        .with_progress(Arc::new(tuning_progress())))
}

/// A progress bar for tuning the encoder to a policy, drawn when tuning starts.
fn tuning_progress() -> impl Fn(usize, usize) + Send + Sync {
    let bar = std::sync::OnceLock::<indicatif::ProgressBar>::new();
    move |done, all| {
        let bar = bar.get_or_init(|| {
            let bar = indicatif::ProgressBar::new(all as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bar:30} {pos}/{len} pairs, {eta} left",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("tuning the encoder to the policy (once per policy edit)");
            bar
        });
        bar.set_position(done as u64);
        if done == all {
            bar.finish_and_clear();
        }
    }
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
        let result = session.turn(&line, &mut |text| {
            if !args.json {
                // A closed stdout cancels generation instead of wasting it.
                return write!(out, "{text}").and_then(|()| out.flush()).is_ok();
            }
            true
        })?;
        if args.json {
            let g = &result.generation;
            let mut object = json!({
                "input": line,
                "reply": result.reply,
                "facts": result.facts_used,
                "prompt_tokens": g.prompt_tokens,
                "evaluated_prompt_tokens": g.evaluated_tokens,
                "generated_tokens": g.generated_tokens,
                "time_to_first_token_ms": g.time_to_first_token.as_secs_f64() * 1000.0,
                "tokens_per_second": g.tokens_per_second(),
                "prepare_us": result.prepare_micros,
                "stop": format!("{:?}", g.stop).to_lowercase(),
                "watermark": g.watermark,
                "provenance": result.provenance,
                "output_rail": {
                    "repair": result.output.repair.name(),
                    "withheld": result.output.withheld.iter().flat_map(|v| {
                        let policy = v.policy.fired.iter().map(|f| json!({
                            "kind": "policy", "node": f.node, "score": f.score,
                        }));
                        let canon = v.canon.iter().map(|f| json!({
                            "kind": f.problem.kind(), "node": f.problem.node(),
                            "evidence": f.evidence, "score": f.score,
                        }));
                        policy.chain(canon).collect::<Vec<_>>()
                    }).collect::<Vec<_>>(),
                },
            });
            if let Some(context) = &context {
                object["context"] = json!({
                    "standing": facts_json(&context.standing.facts),
                    "retrieved": facts_json(&context.retrieved),
                });
            }
            writeln!(out, "{object}")?;
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
    if let Some((file, _)) = &export
        && exported.is_empty()
    {
        eprintln!("nothing said, so nothing exported to {}", file.display());
    } else if let Some((file, format)) = export {
        let planner = session.planner();
        let world = planner.world();
        let source = ExportSource {
            production: world.production.iri.clone(),
            character: world.entities[planner.speaker()].iri.clone(),
            speaker: name,
            player,
            session: None,
            canon_revision: world.canon_revision.clone(),
        };
        let export = lore_engine::export(format.into(), &source, &exported);
        let sidecar = write_export(config, &file, &export)?;
        eprintln!(
            "wrote {} ({} turns) and its C2PA sidecar {}",
            file.display(),
            exported.len(),
            sidecar.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
