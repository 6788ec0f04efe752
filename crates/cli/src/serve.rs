//! `lore serve` and `lore keys`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lore_server::{Db, Role, ServerConfig, TurnLimits, auth};

use crate::config::{BackendKind, Config};

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Every key of the installation, and the embedded model's tokenizer (a remote backend's
/// replies carry no watermark to read).
fn verifier(config: &Config) -> anyhow::Result<lore_server::Verifier> {
    let watermarks = lore_mark::Keyring::open_watermarks(&config.keys)?;
    let signing = lore_mark::SigningKeys::open_signing(&config.keys)?;
    let tokenizer = match config.backend {
        BackendKind::Embedded => Some(Arc::new(lore_gen::GgufTokenizer::load(&config.model)?)),
        BackendKind::Openai => None,
    };
    Ok(lore_server::Verifier {
        watermarks: watermarks.materials().to_vec(),
        public_keys: signing.public_keys(),
        tokenizer,
        c2pa: Some(crate::export::credentials(config)?),
    })
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    // The server owns canon while it runs: writers change it through its API.
    let store = Arc::new(crate::query::open_writable(config)?);
    let backend: Arc<dyn lore_gen::Backend> = Arc::from(crate::chat::backend(config)?);
    let server = ServerConfig {
        cache: config.cache.join("worlds"),
        session: crate::chat::session_options(config)?,
        limits: TurnLimits {
            max_in_flight: config.max_in_flight,
            // One llama.cpp worker generates at a time; more slots would only queue there.
            generation_slots: match config.backend {
                BackendKind::Embedded => 1,
                BackendKind::Openai => config.generation_slots,
            },
            max_hot_sessions: config.max_hot_sessions,
        },
        body_limit: config.body_limit_kib * 1024,
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        key_cache_ttl: Duration::from_secs(5),
        verifier: verifier(config)?,
    };
    runtime()?.block_on(async {
        let app = lore_server::build(store, &config.database, backend, &server).await?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        eprintln!(
            "lore serve: listening on http://{} (API description at /openapi.json)",
            listener.local_addr()?
        );
        lore_server::serve(app, listener, &server, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// What `lore keys` does.
#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key; prints it once on stdout (only its hash is stored).
    Create {
        /// The studio it acts for (productions name theirs with lore:tenant).
        #[arg(long)]
        tenant: String,
        /// player, writer or admin.
        #[arg(long)]
        role: String,
        /// A note for people.
        #[arg(long, default_value = "")]
        label: String,
        /// Days until it expires (default: never).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List keys (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by its id.
    Revoke {
        /// The key's id (the part after `lk_` and before the next `_`).
        id: String,
    },
    /// Watermark keys (kept in the keys directory, not the database).
    Watermark {
        #[command(subcommand)]
        what: crate::verify::WatermarkKeysCommand,
    },
    /// The studio's C2PA credentials, which sign export sidecars (kept in the keys
    /// directory).
    C2pa {
        #[command(subcommand)]
        what: crate::verify::C2paKeysCommand,
    },
}

pub fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let command = match command {
        KeysCommand::Watermark { what } => return crate::verify::watermark_keys(config, what),
        KeysCommand::C2pa { what } => return crate::verify::c2pa_keys(config, what),
        command => command,
    };
    runtime()?.block_on(async {
        let db = Db::connect(&config.database).await?;
        match command {
            KeysCommand::Create {
                tenant,
                role,
                label,
                expires_in_days,
            } => {
                auth::check_tenant(&tenant).map_err(anyhow::Error::msg)?;
                let role = Role::parse(&role).with_context(|| {
                    format!("--role {role:?}: expected player, writer or admin")
                })?;
                let valid_for = expires_in_days.map(|d| Duration::from_secs(u64::from(d) * 86_400));
                let new = auth::create_key(&db, &tenant, role, &label, valid_for).await?;
                eprintln!(
                    "created {} key {} for tenant {}; it is shown only now:",
                    role.as_str(),
                    new.row.id,
                    tenant
                );
                println!("{}", new.key);
            }
            KeysCommand::List { tenant } => {
                for key in db.keys(tenant.as_deref()).await? {
                    let state = match (key.revoked_ms, key.expires_ms) {
                        (Some(_), _) => "revoked",
                        (None, Some(e)) if e <= lore_server::db::now_ms() => "expired",
                        _ => "active",
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        key.id, key.tenant, key.role, state, key.label
                    );
                }
            }
            KeysCommand::Revoke { id } => {
                if !db.revoke_key(&id, None).await? {
                    anyhow::bail!("no active key with id {id}; `lore keys list` shows them");
                }
                eprintln!("revoked key {id}");
            }
            KeysCommand::Watermark { .. } | KeysCommand::C2pa { .. } => {
                unreachable!("handled above, without the database")
            }
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
