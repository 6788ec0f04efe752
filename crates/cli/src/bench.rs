//! `lore bench`: runs the measurements of `lore-bench` and prints them with their baselines.

use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use lore_bench::{generation, import, retrieval, serve, sidecar, synth};
use lore_engine::SessionOptions;

use crate::config::Config;
use crate::wiring::{load_semantic, open_store};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Write a synthetic world of about N quads as N-Quads.
    Synth(SynthArgs),
    /// Import files into a new store and report time and peak memory.
    Import(ImportArgs),
    /// Quest planning: a verified quest per living character, beat and player history.
    Quest(QuestArgs),
    /// Quest write-ups on the model: latency, the share kept from the model, and decoding under
    /// the write-up's schema against unconstrained decoding of the same prompts.
    WriteUp(WriteUpArgs),
    /// Per-turn retrieval and prompt assembly on the store.
    Context(ContextArgs),
    /// The embedded backend against a bare llama.cpp loop on the same model and threads.
    Generation(GenerationArgs),
    /// The HTTP server over a stub model on loopback, driven by wrk, against the stub alone.
    Serve(ServeArgs),
    /// Signing and checking an export's C2PA sidecar, against signing a reply's record.
    Sidecar(SidecarArgs),
}

/// `lore bench synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// Quads to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub quads: u64,
    /// Output file (.nq).
    pub out: PathBuf,
}

/// `lore bench import`.
#[derive(Args)]
pub struct ImportArgs {
    /// Where to create the store (must not exist).
    #[arg(long)]
    pub into: PathBuf,
    /// Files to import.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `lore bench quest`.
#[derive(Args)]
pub struct QuestArgs {
    /// Production: id, IRI or title.
    #[arg(long)]
    pub production: String,
    /// Player histories per character and beat.
    #[arg(long, default_value_t = 100)]
    pub histories: usize,
}

/// `lore bench write-up`.
#[derive(Args)]
pub struct WriteUpArgs {
    /// Production: id, IRI or title.
    #[arg(long)]
    pub production: String,
    /// Story time: a beat's number or name.
    #[arg(long, value_name = "BEAT", default_value = "2")]
    pub at: String,
    /// Write-ups to measure.
    #[arg(long, default_value_t = 20)]
    pub quests: usize,
    /// GGUF file (default: the configured model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// `lore bench context`.
#[derive(Args)]
pub struct ContextArgs {
    /// Production: id, IRI or title.
    #[arg(long)]
    pub production: String,
    /// Character: id, IRI, name or alias.
    #[arg(long)]
    pub character: String,
    /// Story time.
    #[arg(long)]
    pub at: Option<String>,
    /// Player lines to cycle through (one a line; `#` comments).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "world/bench/context-lines.txt",
        conflicts_with = "synthetic"
    )]
    pub lines: PathBuf,
    /// Use player lines for town 0 of a synthetic world (`lore bench synth`) instead.
    #[arg(long)]
    pub synthetic: bool,
    /// Turns to time.
    #[arg(long, default_value_t = 5000)]
    pub iterations: usize,
}

/// `lore bench generation`.
#[derive(Args)]
pub struct GenerationArgs {
    /// GGUF file (default: the configured model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Threads for both loops.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Tokens to generate per run.
    #[arg(long, default_value_t = 64)]
    pub tokens: usize,
    /// Runs of each loop, interleaved (odd, for a clean median).
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// The conversation and the turn-2 lines (JSON).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "world/bench/generation-prompt.json"
    )]
    pub prompt: PathBuf,
    /// Also write the benchmark's prompt to this file (for outside baselines such as
    /// scripts/bench_llama_cpp_python.py).
    #[arg(long, value_name = "FILE")]
    pub prompt_out: Option<PathBuf>,
}

/// `lore bench serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Every session's production: id, IRI or title. Its `lore:tenant` is the studio whose
    /// key plays them.
    #[arg(long)]
    pub production: String,
    /// Every session's character: id, IRI, name or alias.
    #[arg(long)]
    pub character: String,
    /// Every session's story time.
    #[arg(long)]
    pub at: Option<String>,
    /// Two player lines: the first warms every session, the second is every measured turn.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "world/bench/serve-lines.txt"
    )]
    pub lines: PathBuf,
    /// Sessions to create, play once and keep warm.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Connections of the throughput run.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds of each single-connection latency run.
    #[arg(long, default_value_t = 10)]
    pub latency_duration: u64,
    /// Run the rails with their embedding layer (the encoder of the config), not the
    /// lexicon alone.
    #[arg(long)]
    pub embedding_layer: bool,
}

/// `lore bench sidecar`.
#[derive(Args)]
pub struct SidecarArgs {
    /// Bytes of the exported text.
    #[arg(long, default_value_t = 4096)]
    pub bytes: usize,
    /// Signatures (and checks) to time.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
}

pub fn run(config: &Config, what: BenchCommand) -> anyhow::Result<()> {
    match what {
        BenchCommand::Synth(args) => run_synth(args),
        BenchCommand::Import(args) => run_import(args),
        BenchCommand::Quest(args) => run_quest(config, args),
        BenchCommand::WriteUp(args) => run_write_up(config, args),
        BenchCommand::Context(args) => run_context(config, args),
        BenchCommand::Generation(args) => run_generation(config, args),
        BenchCommand::Serve(args) => run_serve(config, args),
        BenchCommand::Sidecar(args) => run_sidecar(args.bytes, args.iterations),
    }
}

fn run_synth(args: SynthArgs) -> anyhow::Result<()> {
    let SynthArgs { quads, out } = args;

    let file =
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let s = synth::write(&mut BufWriter::new(file), quads)?;
    println!(
        "wrote {}: {} quads, {} towns, {} characters, {} facts; production <{}>, character <{}>",
        out.display(),
        s.quads,
        s.towns,
        s.characters,
        s.facts,
        synth::production(),
        synth::character(0, 0)
    );
    Ok(())
}

fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let ImportArgs { into, files } = args;

    let r = import::run(&into, &files)?;
    let secs = r.elapsed.as_secs_f64();
    println!(
        "import: {} quads in {secs:.2} s ({:.0} quads/s); peak RSS {:.0} MiB",
        r.quads,
        r.quads as f64 / secs,
        r.peak_rss_mib.unwrap_or(f64::NAN)
    );
    Ok(())
}

fn run_quest(config: &Config, args: QuestArgs) -> anyhow::Result<()> {
    let QuestArgs {
        production,
        histories,
    } = args;

    let store = open_store(config)?;
    let world = lore_canon::World::load(&store, &production)?;
    let r = lore_bench::quest::run(&world, histories, 1);
    println!(
        "quest: {} entities; {} givers x {histories} histories; world state per beat p50 {:.1} us",
        world.entities.len(),
        r.givers,
        r.state.p50
    );
    println!(
        "quest plan + simulator replay, n={}: p50 {:.1} us, p99 {:.1} us, max {:.1} us (goal: p99 <= 1000 us); invalid {}",
        r.plan.n, r.plan.p50, r.plan.p99, r.plan.max, r.invalid
    );
    println!(
        "quest variety per giver and beat over {histories} histories: {:.1} strategies, {:.1} distinct plans",
        r.strategies_per_giver, r.plans_per_giver
    );
    Ok(())
}

fn run_write_up(config: &Config, args: WriteUpArgs) -> anyhow::Result<()> {
    let WriteUpArgs {
        production,
        at,
        quests,
        model,
        threads,
    } = args;

    let store = open_store(config)?;
    let world = lore_canon::World::load(&store, &production)?;
    let beat = Some(
        world
            .beat(&at)
            .with_context(|| format!("no beat {at:?} in {}", world.production.title))?,
    );
    let model = model.unwrap_or_else(|| config.model.clone());
    let r = lore_bench::write_up::run(Arc::new(world), beat, &model, threads, quests)?;
    println!(
        "quest write-ups on {} ({threads} threads), n={}: p50 {:.0} ms, p99 {:.0} ms; the model's words kept in {} of {} (the rest: the plan's)",
        model.display(),
        r.written,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.by_model,
        r.written
    );
    println!(
        "decoding per token: under the schema {:.1} ms, unconstrained {:.1} ms, same prompts and session: ratio {:.2}x",
        r.structured_ms_per_token,
        r.free_ms_per_token,
        r.structured_ms_per_token / r.free_ms_per_token.max(f64::MIN_POSITIVE)
    );
    Ok(())
}

fn run_context(config: &Config, args: ContextArgs) -> anyhow::Result<()> {
    let ContextArgs {
        production,
        character,
        at,
        lines,
        synthetic,
        iterations,
    } = args;

    let store = open_store(config)?;
    let inputs = if synthetic {
        retrieval::synthetic_inputs(0)
    } else {
        lore_eval::read_player_lines(&lines)?
    };
    // Names alone first, then with the rails' encoder (facts found by meaning too): the
    // first is the baseline of the second, in the same run.
    let semantic = Arc::new(load_semantic(config)?);
    for options in [
        SessionOptions::default(),
        SessionOptions {
            semantic: Some(semantic),
            ..SessionOptions::default()
        },
    ] {
        let by_meaning = options.semantic.is_some();
        let r = retrieval::run(
            &store,
            &production,
            &character,
            at.as_deref(),
            &inputs,
            iterations,
            options,
        )?;
        println!(
            "context ({}): store {} quads, world {} facts; world load {:.1} ms (from its snapshot {:.1} ms), session open {:.2} ms",
            if by_meaning {
                "names and meaning"
            } else {
                "names only"
            },
            r.store_quads,
            r.world_facts,
            r.world_load.as_secs_f64() * 1e3,
            r.world_snapshot_load.as_secs_f64() * 1e3,
            r.session_open.as_secs_f64() * 1e3
        );
        println!(
            "  per turn (retrieval + prompt assembly + render), n={}: p50 {:.1} us, p99 {:.1} us, max {:.1} us; {:.1} facts/turn (goal: p50 <= 1000 us, p99 <= 5000 us)",
            r.per_turn.n, r.per_turn.p50, r.per_turn.p99, r.per_turn.max, r.mean_facts
        );
    }
    Ok(())
}

fn run_generation(config: &Config, args: GenerationArgs) -> anyhow::Result<()> {
    let GenerationArgs {
        model,
        threads,
        tokens,
        runs,
        prompt,
        prompt_out,
    } = args;

    let model = model.unwrap_or_else(|| config.model.clone());
    let prompt = generation::BenchPrompt::read(&prompt)?;
    if let Some(path) = prompt_out {
        std::fs::write(&path, prompt.conversation.transcript())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let r = generation::run(&model, threads, tokens, runs, &prompt)?;
    println!(
        "generation on {} with {threads} threads, {tokens} tokens x {runs} runs:",
        model.display()
    );
    for (name, s) in [
        ("bare llama.cpp loop", r.bare),
        ("engine (embedded)", r.engine),
    ] {
        println!(
            "  {name:<20} prompt {:>4} tok at {:>7.1} tok/s; generation {:>4} tok at {:>6.1} tok/s",
            s.prompt_tokens / runs.max(1),
            s.prompt_tps(),
            s.generated / runs.max(1),
            s.generation_tps()
        );
    }
    println!(
        "  ratio engine/bare, median of {runs} paired runs: prompt {:.3}x, generation {:.3}x (goal >= 0.95x)",
        r.prompt_ratio, r.generation_ratio
    );
    println!(
        "  turn 2: {} new tokens; engine time to first token {:.1} ms vs bare eval of the new tokens {:.1} ms: {:.2}x (goal <= 1.2x)",
        r.turn2_new_tokens,
        r.turn2_ttft.as_secs_f64() * 1e3,
        r.turn2_bare.as_secs_f64() * 1e3,
        r.turn2_ttft.as_secs_f64() / r.turn2_bare.as_secs_f64()
    );
    println!(
        "  sampler per token: {:.1} us plain, {:.1} us watermarked (every step biased): \
         the watermark adds {:.2}% of the bare loop's time per token (goal <= 2%)",
        r.sample_plain.as_secs_f64() * 1e6,
        r.sample_marked.as_secs_f64() * 1e6,
        r.watermark_share() * 100.0
    );
    let one = r.candidates.first().map_or(0.0, |(_, t)| t.as_secs_f64());
    for (count, time) in &r.candidates {
        println!(
            "  {count} replies side by side (prompt + {tokens} tokens each, median): {:.0} ms, \
             {:.2}x one reply",
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / one
        );
    }
    Ok(())
}

fn run_serve(config: &Config, args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        production,
        character,
        at,
        lines,
        sessions,
        connections,
        duration,
        latency_duration,
        embedding_layer,
    } = args;
    let [warm_line, turn_line]: [String; 2] = lore_eval::read_player_lines(&lines)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{}: give exactly two player lines", lines.display()))?;
    let store = std::sync::Arc::new(open_store(config)?);
    let tenant = lore_canon::World::load(&store, &production)?
        .production
        .tenant
        .with_context(|| {
            format!("production {production:?} names no lore:tenant to serve it to")
        })?;
    let work = tempfile::tempdir()?;
    let bench = serve::ServeBench {
        sessions,
        connections,
        duration: Duration::from_secs(duration),
        latency_duration: Duration::from_secs(latency_duration),
        stub_tokens: 16,
        work_dir: work.path().to_owned(),
        semantic: embedding_layer
            .then(|| crate::wiring::load_semantic(config))
            .transpose()?
            .map(Arc::new),
        tenant,
        production,
        character,
        at,
        warm_line,
        turn_line,
    };
    let r = serve::run(store, &bench, &|step| eprintln!("bench serve: {step}"))?;
    let show = |name: &str, w: &serve::WrkRun| {
        println!(
            "  {name:<28} {:>9.0} req/s  p50 {:>7.3} ms  p75 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  ({} requests, {} errors, {:.0} us CPU each)",
            w.per_second,
            w.latency_ms[0],
            w.latency_ms[1],
            w.latency_ms[2],
            w.latency_ms[3],
            w.requests,
            w.errors,
            w.cpu_us_per_request
        );
    };
    println!(
        "serve: {sessions} warm sessions, stub model streaming 16 tokens per reply, rails {}",
        if embedding_layer {
            "with the embedding layer"
        } else {
            "with the lexicon only"
        }
    );
    show("stub alone, 1 connection", &r.stub_latency);
    show("turns, 1 connection", &r.server_latency);
    show(
        &format!("stub alone, {connections} conns"),
        &r.stub_throughput,
    );
    show(&format!("turns, {connections} conns"), &r.server_throughput);
    println!(
        "  server adds at 1 connection: p50 {:.3} ms, p99 {:.3} ms",
        r.server_latency.latency_ms[0] - r.stub_latency.latency_ms[0],
        r.server_latency.latency_ms[3] - r.stub_latency.latency_ms[3]
    );
    println!(
        "  turns/s {:.0} (goal >= 5000); turns/stub-requests ratio {:.3}",
        r.server_throughput.per_second,
        r.server_throughput.per_second / r.stub_throughput.per_second
    );
    println!(
        "  CPU per turn {:.0} us, of which the stub's share is about {:.0} us (this process; wrk not counted)",
        r.server_throughput.cpu_us_per_request, r.stub_throughput.cpu_us_per_request
    );
    println!(
        "  memory per warm idle session {:.1} KiB (goal <= 64 KiB); database {:.1} KiB per session",
        r.bytes_per_idle_session / 1024.0,
        r.db_bytes_per_session / 1024.0
    );
    Ok(())
}

fn run_sidecar(bytes: usize, iterations: usize) -> anyhow::Result<()> {
    let r = sidecar::run(bytes, iterations)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "sidecar for {bytes} bytes of text, mean of {iterations}: sidecar {} bytes; sign {:.2} ms, \
         check {:.2} ms; signing the reply's record alone {:.3} ms (sidecar sign = {:.0}x record)",
        r.sidecar_bytes,
        ms(r.sign),
        ms(r.check),
        ms(r.record),
        r.sign.as_secs_f64() / r.record.as_secs_f64()
    );
    Ok(())
}
