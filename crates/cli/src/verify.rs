//! `lore verify` (is this text ours?) and `lore keys watermark` (the keys that say so).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use lore_gen::GgufTokenizer;
use lore_mark::{Detection, KeyState, Keyring, Watermark, detect};

use crate::config::Config;

/// What `lore verify` checks.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Look for the watermark in a text (`-` reads standard input). Exit status 0: watermarked;
    /// 2: not (too short, or no key's mark found); 1: the check could not run.
    Text {
        /// The text file.
        file: PathBuf,
        /// The GGUF file whose tokenizer the text is read with (default: the configured
        /// model; only its vocabulary is read, not its weights).
        #[arg(long, value_name = "GGUF")]
        tokenizer: Option<PathBuf>,
        /// One JSON object: z, p_value, key_id, tokens_scored, watermarked, verdict.
        #[arg(long)]
        json: bool,
    },
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

pub fn verify(config: &Config, command: VerifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        VerifyCommand::Text {
            file,
            tokenizer,
            json,
        } => {
            let text = read_text(&file)?;
            let tokenizer_path = tokenizer.unwrap_or_else(|| config.model.clone());
            let tokenizer = GgufTokenizer::load(&tokenizer_path).with_context(|| {
                format!(
                    "loading the tokenizer from {} (--tokenizer names another GGUF file)",
                    tokenizer_path.display()
                )
            })?;
            let keyring = Keyring::open_watermarks(&config.keys)?;
            let detection = detect(&tokenizer.tokenize(&text), keyring.materials());
            print_detection(&detection, json)?;
            Ok(if detection.watermarked {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

fn read_text(file: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn print_detection(detection: &Detection, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(detection)?);
    } else {
        println!("{}", detection.verdict);
        println!(
            "z {:.2}  p-value {:.3e}  tokens scored {}",
            detection.z, detection.p_value, detection.tokens_scored
        );
    }
    Ok(())
}

pub fn watermark_keys(config: &Config, command: WatermarkKeysCommand) -> anyhow::Result<ExitCode> {
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
