//! `lore bench`: runs the measurements of `lore-bench` and prints them with their baselines.

use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use lore_bench::{generation, peak_rss_mib, retrieval, serve, synth};
use lore_canon::{CanonStore, CommitMeta};

use crate::config::Config;
use crate::query::open_store;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Write a synthetic world of about N quads as N-Quads.
    Synth {
        /// Quads to write.
        #[arg(long, default_value_t = 1_000_000)]
        quads: u64,
        /// Output file (.nq).
        out: PathBuf,
    },
    /// Import files into a new store and report time and peak memory.
    Import {
        /// Where to create the store (must not exist).
        #[arg(long)]
        into: PathBuf,
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Quest planning: a verified quest per living character, beat and player history.
    Quest {
        /// Production (default: the sample world's Lanterns of Brindlemoor).
        #[arg(long, default_value = "lanterns")]
        production: String,
        /// Player histories per character and beat.
        #[arg(long, default_value_t = 100)]
        histories: usize,
    },
    /// Quest write-ups on the model: latency, the share kept from the model, and decoding under
    /// the write-up's schema against unconstrained decoding of the same prompts.
    WriteUp {
        /// Production (default: the sample world's Lanterns of Brindlemoor).
        #[arg(long, default_value = "lanterns")]
        production: String,
        /// Story time: a beat's number or name.
        #[arg(long, value_name = "BEAT", default_value = "2")]
        at: String,
        /// Write-ups to measure.
        #[arg(long, default_value_t = 20)]
        quests: usize,
        /// GGUF file (default: the configured model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Per-turn retrieval and prompt assembly on the store.
    Context {
        /// Production to use (default: the sample world's Lanterns of Brindlemoor).
        #[arg(long, default_value = "lanterns")]
        production: String,
        /// Character (default: Odile Marrow).
        #[arg(long, default_value = "odile")]
        character: String,
        /// Story time.
        #[arg(long)]
        at: Option<String>,
        /// Use player lines for town 0 of a synthetic world instead of the sample world's.
        #[arg(long)]
        synthetic: bool,
        /// Turns to time.
        #[arg(long, default_value_t = 5000)]
        iterations: usize,
    },
    /// The embedded backend against a bare llama.cpp loop on the same model and threads.
    Generation {
        /// GGUF file (default: the configured model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Threads for both loops.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Tokens to generate per run.
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Runs of each loop, interleaved (odd, for a clean median).
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Also write the benchmark's prompt to this file (for outside baselines such as
        /// scripts/bench_llama_cpp_python.py).
        #[arg(long, value_name = "FILE")]
        prompt_out: Option<PathBuf>,
    },
    /// The HTTP server over a stub model on loopback, driven by wrk, against the stub alone.
    Serve {
        /// Sessions to create, play once and keep warm.
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// Connections of the throughput run.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds of the throughput run.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Seconds of each single-connection latency run.
        #[arg(long, default_value_t = 10)]
        latency_duration: u64,
        /// Run the rails with their embedding layer (the encoder of the config), not the
        /// lexicon alone.
        #[arg(long)]
        embedding_layer: bool,
    },
    /// Signing and checking an export's C2PA sidecar, against signing a reply's record.
    Sidecar {
        /// Bytes of the exported text.
        #[arg(long, default_value_t = 4096)]
        bytes: usize,
        /// Signatures (and checks) to time.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
    },
}

pub fn run(config: &Config, what: BenchCommand) -> anyhow::Result<()> {
    match what {
        BenchCommand::Synth { quads, out } => {
            let file = std::fs::File::create(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
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
        }
        BenchCommand::Import { into, files } => {
            anyhow::ensure!(
                !into.exists(),
                "{} exists; benchmark imports go into a new store",
                into.display()
            );
            let store = CanonStore::open(&into)?;
            let started = Instant::now();
            let report =
                store.import(&files, CommitMeta::new("bench", "benchmark import"), |_| ())?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "import: {} quads in {secs:.2} s ({:.0} quads/s); peak RSS {:.0} MiB",
                report.store_len,
                report.store_len as f64 / secs,
                peak_rss_mib().unwrap_or(f64::NAN)
            );
        }
        BenchCommand::Quest {
            production,
            histories,
        } => {
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
        }
        BenchCommand::WriteUp {
            production,
            at,
            quests,
            model,
            threads,
        } => {
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
        }
        BenchCommand::Context {
            production,
            character,
            at,
            synthetic,
            iterations,
        } => {
            let store = open_store(config)?;
            let inputs = if synthetic {
                retrieval::synthetic_inputs(0)
            } else {
                retrieval::sample_world_inputs()
            };
            let r = retrieval::run(
                &store,
                &production,
                &character,
                at.as_deref(),
                &inputs,
                iterations,
            )?;
            println!(
                "context: store {} quads, world {} facts; world load {:.1} ms (from its snapshot {:.1} ms), session open {:.2} ms",
                r.store_quads,
                r.world_facts,
                r.world_load.as_secs_f64() * 1e3,
                r.world_snapshot_load.as_secs_f64() * 1e3,
                r.session_open.as_secs_f64() * 1e3
            );
            println!(
                "context per turn (retrieval + prompt assembly + render), n={}: p50 {:.1} us, p99 {:.1} us, max {:.1} us; {:.1} facts/turn (goal: p50 <= 1000 us, p99 <= 5000 us)",
                r.per_turn.n, r.per_turn.p50, r.per_turn.p99, r.per_turn.max, r.mean_facts
            );
        }
        BenchCommand::Generation {
            model,
            threads,
            tokens,
            runs,
            prompt_out,
        } => {
            let model = model.unwrap_or_else(|| config.model.clone());
            if let Some(path) = prompt_out {
                std::fs::write(&path, generation::bench_conversation().transcript())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let r = generation::run(&model, threads, tokens, runs)?;
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
        }
        BenchCommand::Serve {
            sessions,
            connections,
            duration,
            latency_duration,
            embedding_layer,
        } => {
            let store = std::sync::Arc::new(open_store(config)?);
            let work = tempfile::tempdir()?;
            let bench = serve::ServeBench {
                sessions,
                connections,
                duration: Duration::from_secs(duration),
                latency_duration: Duration::from_secs(latency_duration),
                stub_tokens: 16,
                work_dir: work.path().to_owned(),
                semantic: embedding_layer
                    .then(|| crate::chat::load_semantic(config))
                    .transpose()?
                    .map(Arc::new),
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
        }
        BenchCommand::Sidecar { bytes, iterations } => sidecar(bytes, iterations)?,
    }
    Ok(())
}

/// Mean time of `f` over `iterations` calls.
fn mean_time<T>(iterations: usize, mut f: impl FnMut() -> T) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(f());
    }
    started.elapsed() / iterations.max(1) as u32
}

fn sidecar(bytes: usize, iterations: usize) -> anyhow::Result<()> {
    use lore_mark::provenance::{ACTION_CREATED, TRAINED_ALGORITHMIC_MEDIA, sha256_hex};
    use lore_mark::{ExportProvenance, Provenance, SigningKeys, StudioCredentials, verify_sidecar};
    let keys = tempfile::tempdir()?;
    let credentials = StudioCredentials::open_or_create(keys.path(), "Bench studio")?;
    let signer = SigningKeys::open_signing(keys.path())?.current_or_create()?;
    let text = "The lanterns burn till dawn. ".repeat(bytes / 28 + 1)[..bytes].to_owned();
    let record = Provenance {
        artefact: "export".into(),
        content_sha256: sha256_hex(text.as_bytes()),
        engine: "lorekeeper/bench".into(),
        backend: "embedded".into(),
        model: "model.gguf".into(),
        model_sha256: None,
        sampling: None,
        watermark: None,
        canon_revision: "bench".into(),
        prompt_sha256: None,
        production: "urn:bench:production".into(),
        character: "urn:bench:character".into(),
        session: None,
        created_ms: 0,
        action: ACTION_CREATED.into(),
        digital_source_type: TRAINED_ALGORITHMIC_MEDIA.into(),
    };
    let provenance = ExportProvenance {
        record: record.clone(),
        parts: Vec::new(),
    };
    let sign = || credentials.sign_sidecar(text.as_bytes(), "text/plain", "bench.txt", &provenance);
    let sidecar = sign()?;
    let record_time = mean_time(iterations, || signer.sign(&record));
    let sign_time = mean_time(iterations, sign);
    let check_time = mean_time(iterations, || {
        verify_sidecar(
            &credentials.ca_certificate,
            text.as_bytes(),
            "text/plain",
            &sidecar,
        )
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "sidecar for {bytes} bytes of text, mean of {iterations}: sidecar {} bytes; sign {:.2} ms, \
         check {:.2} ms; signing the reply's record alone {:.3} ms (sidecar sign = {:.0}x record)",
        sidecar.len(),
        ms(sign_time),
        ms(check_time),
        ms(record_time),
        sign_time.as_secs_f64() / record_time.as_secs_f64()
    );
    Ok(())
}
