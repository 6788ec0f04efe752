//! `lore keys`: API keys in the database, watermark keys and the studio's C2PA credentials in
//! the keys directory.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use lore_mark::{KeyState, Keyring, Watermark};
use lore_server::{Db, Role, auth};

use crate::config::Config;
use crate::wiring::{credentials, runtime};

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
        what: WatermarkKeysCommand,
    },
    /// The studio's C2PA credentials, which sign export sidecars (kept in the keys
    /// directory).
    C2pa {
        #[command(subcommand)]
        what: C2paKeysCommand,
    },
}

pub fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let command = match command {
        KeysCommand::Watermark { what } => return watermark_keys(config, what),
        KeysCommand::C2pa { what } => return c2pa_keys(config, what),
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
                for key in db.keys.list(tenant.as_deref()).await? {
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
                if !db.keys.revoke(&id, None).await? {
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

/// `lore keys c2pa ...`
#[derive(Debug, Subcommand)]
pub enum C2paKeysCommand {
    /// Print the studio's CA certificate (PEM), which verifiers of its exports trust; the
    /// credentials are made on first use.
    Ca,
}

/// `lore keys watermark ...`
#[derive(Debug, Subcommand)]
pub enum WatermarkKeysCommand {
    /// Make a key; it marks every reply from now on. The older keys stay, for detection.
    New {
        /// Green share of the vocabulary.
        #[arg(long, default_value_t = Watermark::DEFAULT_GAMMA)]
        gamma: f64,
        /// Bias added to green tokens' tempered logits.
        #[arg(long, default_value_t = Watermark::DEFAULT_DELTA)]
        delta: f32,
        /// Steps whose likeliest token is at least this probable are not biased.
        #[arg(long, default_value_t = Watermark::DEFAULT_SPIKE)]
        spike: f32,
    },
    /// List the keys (never their secrets).
    List,
    /// Stop a key marking new replies; texts it marked still verify.
    Retire {
        /// The key's id (`wm-...`).
        id: String,
    },
}

fn c2pa_keys(config: &Config, command: C2paKeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        C2paKeysCommand::Ca => print!("{}", credentials(config)?.ca_certificate),
    }
    Ok(ExitCode::SUCCESS)
}

fn watermark_keys(config: &Config, command: WatermarkKeysCommand) -> anyhow::Result<ExitCode> {
    let mut keyring = Keyring::open_watermarks(&config.keys)?;
    match command {
        WatermarkKeysCommand::New {
            gamma,
            delta,
            spike,
        } => {
            let key = keyring.create(gamma, delta, spike)?;
            eprintln!(
                "made watermark key {} (gamma {gamma}, delta {delta}, spike {spike}); it marks \
                 new replies from now on",
                key.id
            );
            println!("{}", key.id);
        }
        WatermarkKeysCommand::List => {
            let current = keyring.current().map(|w| w.key().id().to_owned());
            for key in keyring.entries() {
                let state = match key.state {
                    _ if Some(&key.id) == current.as_ref() => "current",
                    KeyState::Active => "active",
                    KeyState::Retired => "retired",
                };
                println!(
                    "{}\t{}\tgamma={}\tdelta={}\tspike={}\tcreated={}",
                    key.id,
                    state,
                    key.settings.gamma,
                    key.settings.delta,
                    key.settings.spike,
                    key.created
                );
            }
        }
        WatermarkKeysCommand::Retire { id } => {
            keyring.retire(&id)?;
            eprintln!("retired watermark key {id}; texts it marked still verify");
        }
    }
    Ok(ExitCode::SUCCESS)
}
