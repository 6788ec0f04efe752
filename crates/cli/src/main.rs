//! `lore`: the Lorekeeper command line. It wires canon, generation and the engine to the
//! terminal; all domain logic lives in the library crates.
//!
//! Exit codes: 0 success; 1 an error, or `lore check` found errors; 2 bad usage.

mod bench;
mod chat;
mod check;
mod config;
mod eval;
mod export;
mod history;
mod import;
mod keys;
mod query;
mod quest;
mod rails;
mod serve;
mod verify;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lore_canon::consent::LikenessUse;
use lore_engine::LikenessScope;

use crate::config::{BackendKind, Config};

// A server turn allocates and frees many short strings on several threads, where glibc's
// malloc spent a fifth of `lore bench serve`'s CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "lore",
    version,
    about = "Lorekeeper: canon-grounded AI characters on your own machines"
)]
struct Cli {
    /// Config file (default: $LORE_HOME/lore.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Canon store directory (default: $LORE_HOME/store; LORE_HOME defaults to ~/.local/share/lorekeeper).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Which character a session speaks as, and when.
#[derive(clap::Args, Clone)]
struct SessionArgs {
    /// Production: IRI, local name or title.
    #[arg(long, short)]
    production: String,
    /// Character: IRI, local name, name or alias.
    #[arg(long, short)]
    character: String,
    /// Story time: a beat's number or name (default: timeless, every fact holds).
    #[arg(long, value_name = "BEAT")]
    at: Option<String>,
    /// One JSON object per result.
    #[arg(long)]
    json: bool,
}

/// Generation settings; each overrides the config file and environment.
#[derive(clap::Args, Clone)]
struct GenArgs {
    /// Backend: embedded (GGUF via llama.cpp) or openai (an OpenAI-compatible server).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// GGUF model file for the embedded backend.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// CPU threads for the embedded backend.
    #[arg(long)]
    threads: Option<usize>,
    /// Embedded prompts: auto, transcript, or a llama.cpp chat template name (chatml, gemma, ...).
    #[arg(long, value_name = "STYLE")]
    prompt_style: Option<String>,
    /// Base URL of the OpenAI-compatible server, up to /v1.
    #[arg(long, value_name = "URL")]
    openai_url: Option<String>,
    /// Model name on the OpenAI-compatible server.
    #[arg(long, value_name = "NAME")]
    openai_model: Option<String>,
    /// Seconds to wait on the OpenAI-compatible server (to connect, and between reads).
    #[arg(long, value_name = "SECS")]
    openai_timeout: Option<u64>,
    /// Most tokens per reply.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Sampling temperature (0: greedy).
    #[arg(long)]
    temperature: Option<f32>,
    /// Sampling seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Replies written side by side per turn; the output rail keeps the one canon bears out
    /// best (1: a single reply, streamed).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=8))]
    candidates: Option<u16>,
}

impl GenArgs {
    fn apply(&self, config: &mut Config) {
        if let Some(v) = self.backend {
            config.backend = v;
        }
        if let Some(v) = &self.model {
            config.model = v.clone();
        }
        if let Some(v) = self.threads {
            config.threads = v;
        }
        if let Some(v) = &self.prompt_style {
            config.prompt_style = v.clone();
        }
        if let Some(v) = &self.openai_url {
            config.openai_url = v.clone();
        }
        if let Some(v) = &self.openai_model {
            config.openai_model = v.clone();
        }
        if let Some(v) = self.openai_timeout {
            config.openai_timeout_secs = v;
        }
        if let Some(v) = self.max_tokens {
            config.max_tokens = v;
        }
        if let Some(v) = self.temperature {
            config.temperature = v;
        }
        if let Some(v) = self.seed {
            config.seed = v;
        }
        if let Some(v) = self.candidates {
            config.candidates = Some(usize::from(v));
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Load canon (Turtle, TriG, N-Triples, N-Quads, JSON-LD), character cards (V1/V2/V3 JSON,
    /// PNG, CHARX) and lorebooks (lorebook_v3, SillyTavern world info) into the store,
    /// atomically. A card imported again replaces what its earlier import wrote.
    Import {
        /// Files to load; all or none are imported.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A production (name or IRI) the cards and lorebooks join; repeat for several.
        /// Without one, each gets a production of its own, rated Everyone.
        #[arg(long, value_name = "PRODUCTION")]
        production: Vec<String>,
        /// The studio that owns productions created for cards.
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        #[command(flatten)]
        commit: history::CommitArgs,
    },
    /// Canon's history, newest first: every import, edit and revert is a commit.
    Log {
        /// Show only the newest N.
        #[arg(long, short = 'n', value_name = "N")]
        limit: Option<usize>,
        /// One JSON object per commit.
        #[arg(long)]
        json: bool,
    },
    /// What changed between canon as of commit FROM and as of TO (`root`: before the
    /// first commit); with FROM alone, what that commit changed.
    Diff {
        /// A commit: id, unique prefix, head or head~N.
        from: String,
        /// A later (or earlier) commit.
        to: Option<String>,
        /// {"added": [...], "removed": [...]} as N-Quads lines.
        #[arg(long)]
        json: bool,
    },
    /// Edit canon: add and remove the triples of files, as one commit.
    Commit {
        #[command(flatten)]
        edit: history::EditArgs,
        #[command(flatten)]
        commit: history::CommitArgs,
    },
    /// Undo a commit with a new commit; refused when later commits changed the same triples,
    /// unless they are reverted with it.
    Revert {
        /// The commit: id, unique prefix, head or head~N.
        commit: String,
        /// Also revert the later commits that changed the same triples, in the same commit.
        #[arg(long)]
        with_dependents: bool,
        #[command(flatten)]
        author: history::CommitArgs,
    },
    /// Lint canon: the given files, or the store when none are given.
    Check {
        /// Files to lint together (default: the store).
        files: Vec<PathBuf>,
        /// One JSON object per finding.
        #[arg(long)]
        json: bool,
    },
    /// Run a read-only SPARQL query against the store.
    Query {
        /// The query text, or @FILE to read it from a file.
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = query::Format::Table)]
        format: query::Format,
        /// Query canon as it stood right after this commit.
        #[arg(long, value_name = "COMMIT")]
        as_of: Option<String>,
    },
    /// Show what a turn would retrieve for a player line, without generating.
    Context {
        #[command(flatten)]
        session: SessionArgs,
        /// The player's line.
        text: String,
    },
    /// Try lines on a character's rails without generating: the input rail's decision on each
    /// as a player's line, or with --output the output rail's on each as a sentence of the
    /// reply (policy, and canon at the beat). Nothing is logged for audit.
    Rails {
        #[command(flatten)]
        session: SessionArgs,
        /// Judge the lines as sentences of the character's reply.
        #[arg(long)]
        output: bool,
        /// The lines (default: one per line from stdin).
        text: Vec<String>,
    },
    /// Plan a quest the character gives at the beat, and print it with its proof.
    Quest {
        #[command(flatten)]
        session: SessionArgs,
        /// A play style the player likes (repeat for several): steers the choice of quest.
        #[arg(long, value_enum, value_name = "STYLE")]
        likes: Vec<quest::StyleArg>,
        /// Varies the offer among equally good quests.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Plan in a stored session (`lore serve`'s): at its beat, over the world its game
        /// events left, for its player's history. Nothing is written.
        #[arg(long = "session", value_name = "ID")]
        stored: Option<String>,
        /// Session database URL (default as for `serve`).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Talk to a character in the terminal (or one line per turn from a pipe).
    Chat {
        #[command(flatten)]
        session: SessionArgs,
        #[command(flatten)]
        generation: GenArgs,
        /// Show the retrieved facts before each reply.
        #[arg(long)]
        show_context: bool,
        /// What the replies are used as, for the performer's likeness consent (text always).
        #[arg(long = "use", value_name = "USE", value_parser = likeness_use)]
        uses: Vec<LikenessUse>,
        /// The audience's territory (ISO 3166-1 alpha-2), for likeness consent.
        #[arg(long, value_name = "CODE")]
        territory: Option<String>,
        /// When the conversation ends, write it to FILE with a signed C2PA sidecar beside it.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// What the export holds.
        #[arg(long, value_enum, default_value_t = export::FormatArg::Transcript)]
        export_format: export::FormatArg,
    },
    /// Serve characters over HTTP: sessions, streaming turns, OpenAI-compatible, SPARQL.
    Serve {
        #[command(flatten)]
        generation: GenArgs,
        /// Address to listen on (default 127.0.0.1:8787).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Session database URL: sqlite://PATH?mode=rwc (default: $LORE_HOME/lore.db) or postgres://...
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Manage API keys (stored hashed in the session database).
    Keys {
        /// Session database URL (default as for `serve`).
        #[arg(long, value_name = "URL", global = true)]
        database: Option<String>,
        #[command(subcommand)]
        what: keys::KeysCommand,
    },
    /// Check that a file came from this engine: its C2PA sidecar and, for text, its
    /// watermark. Exit status 0: every check passed; 2: one failed (named); 1: error.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Verify {
        #[command(subcommand)]
        what: Option<verify::VerifyCommand>,
        #[command(flatten)]
        file: verify::FileArgs,
    },
    /// Write a stored session's conversation to a file, with a signed C2PA sidecar beside it.
    Export {
        /// The session (`lore serve` stores them) whose conversation to write.
        #[arg(
            long,
            value_name = "ID",
            required_unless_present = "production",
            conflicts_with = "production"
        )]
        session: Option<String>,
        /// The production of the character or lorebook to write as a card.
        #[arg(long, value_name = "PRODUCTION")]
        production: Option<String>,
        /// The character to write as a card (name or IRI).
        #[arg(long, value_name = "NAME")]
        character: Option<String>,
        /// What the file holds: a session's transcript or replies; or a character as a card
        /// (card-v2, card-v3: JSON, or PNG with both chunks when FILE ends in .png; charx), or
        /// a lorebook (the character's, or the production's standalone one).
        #[arg(long, value_enum, default_value_t = export::ExportArg::Transcript)]
        format: export::ExportArg,
        /// The file to write (for a session, its sidecar is FILE.c2pa); JSON goes to standard
        /// output without it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Session database URL (default as for `serve`).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Measure the rails on labelled sets (cross-validated where a head is trained).
    Eval {
        #[command(subcommand)]
        what: eval::EvalCommand,
    },
    /// Train the rails' hazard head.
    Train {
        #[command(subcommand)]
        what: eval::TrainCommand,
    },
    /// Measure what the issues ask for; `scripts/bench.sh` runs them all.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        // llama.cpp warns about model quirks users cannot act on; show them from -v.
        0 => "warn,llama-cpp-2=error",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // A closed pipe (`lore query ... | head`) is not an error worth reporting.
            if error.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(store) = cli.store {
        config.store = store;
    }
    match cli.command {
        Command::Import {
            files,
            production,
            tenant,
            commit,
        } => import::run(
            &config,
            &files,
            &import::CardTarget {
                productions: production,
                tenant,
            },
            &commit,
        ),
        Command::Log { limit, json } => history::log(&config, limit, json),
        Command::Diff { from, to, json } => history::diff(&config, &from, to.as_deref(), json),
        Command::Commit { edit, commit } => history::commit(&config, &edit, &commit),
        Command::Revert {
            commit,
            with_dependents,
            author,
        } => history::revert(&config, &commit, with_dependents, &author),
        Command::Check { files, json } => check::run(&config, &files, json),
        Command::Query {
            query,
            format,
            as_of,
        } => query::run(&config, &query, format, as_of.as_deref()),
        Command::Context { session, text } => chat::context(&config, &session, &text),
        Command::Rails {
            session,
            output,
            text,
        } => rails::rails(&config, &session, output, text),
        Command::Quest {
            session,
            likes,
            seed,
            stored,
            database,
        } => {
            overlay(&mut config.database, database);
            quest::run(&config, &session, &likes, seed, stored.as_deref())
        }
        Command::Chat {
            session,
            generation,
            show_context,
            uses,
            territory,
            export,
            export_format,
        } => {
            generation.apply(&mut config);
            let likeness = LikenessScope::new(uses, territory);
            let export = export.map(|file| (file, export_format));
            chat::chat(&config, &session, show_context, likeness, export)
        }
        Command::Serve {
            generation,
            listen,
            database,
        } => {
            generation.apply(&mut config);
            overlay(&mut config.listen, listen);
            overlay(&mut config.database, database);
            serve::serve(&config)
        }
        Command::Keys { database, what } => {
            overlay(&mut config.database, database);
            keys::keys(&config, what)
        }
        Command::Verify { what, file } => match what {
            Some(what) => verify::verify(&config, what),
            None => verify::verify_file(&config, file),
        },
        Command::Export {
            session,
            production,
            character,
            format,
            out,
            database,
        } => {
            overlay(&mut config.database, database);
            export::run(&config, session, production, character, format, out)
        }
        Command::Eval { what } => eval::eval(&config, what).map(|()| ExitCode::SUCCESS),
        Command::Train { what } => eval::train(&config, what).map(|()| ExitCode::SUCCESS),
        Command::Bench { what } => bench::run(&config, what).map(|()| ExitCode::SUCCESS),
    }
}

/// A flag's value over the configuration's, when the flag is given.
fn overlay<T>(setting: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *setting = value;
    }
}

fn likeness_use(name: &str) -> Result<LikenessUse, String> {
    LikenessUse::parse(name).ok_or_else(|| format!("'{name}' is not a use: text, voice or image"))
}
