//! `lore verify`: is this file ours (its sidecar, its watermark)?

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use lore_gen::GgufTokenizer;
use lore_mark::sidecar::{media_type, sidecar_path};
use lore_mark::{Detection, Keyring, SidecarVerdict, StudioCredentials, detect, verify_sidecar};

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

/// `lore verify FILE`: the file's C2PA sidecar and, for text, its watermark.
#[derive(Debug, clap::Args)]
pub struct FileArgs {
    /// The file to check.
    #[arg(required = true)]
    file: Option<PathBuf>,
    /// Its sidecar (default: FILE.c2pa).
    #[arg(long, value_name = "PATH")]
    sidecar: Option<PathBuf>,
    /// PEM file of the CA certificates to trust (default: this studio's, from
    /// `lore keys c2pa ca`).
    #[arg(long, value_name = "PEM")]
    trust: Option<PathBuf>,
    /// The GGUF file whose tokenizer a text is read with (default: the configured model).
    #[arg(long, value_name = "GGUF")]
    tokenizer: Option<PathBuf>,
    /// One JSON object: file, sidecar, watermark, valid, failed.
    #[arg(long)]
    json: bool,
}

/// The watermark check of a file, beside what its sidecar claims.
#[derive(Debug, serde::Serialize)]
struct WatermarkCheck {
    #[serde(flatten)]
    detection: Detection,
    /// The key the sidecar says marked the text, if it says so.
    claimed: Option<String>,
    /// False only when a mark is claimed, none was found, and no valid sidecar vouches for
    /// the bytes. A valid sidecar proves the text unchanged, so a mark missed on it is the
    /// detector's miss on a short or predictable text, not evidence against the file.
    ok: bool,
}

pub fn verify_file(config: &Config, args: FileArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.expect("clap requires FILE without a subcommand");
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let sidecar_file = args.sidecar.unwrap_or_else(|| sidecar_path(&file));
    let sidecar = match std::fs::read(&sidecar_file) {
        Ok(sidecar) => {
            let anchors = match &args.trust {
                Some(pem) => std::fs::read_to_string(pem)
                    .with_context(|| format!("cannot read the trust anchors {}", pem.display()))?,
                None => StudioCredentials::open(&config.keys)?
                    .map(|c| c.ca_certificate)
                    .with_context(|| {
                        format!(
                            "no C2PA credentials in {}: pass --trust with the studio's CA \
                             certificate",
                            config.keys.display()
                        )
                    })?,
            };
            verify_sidecar(&anchors, &bytes, media_type(&file), &sidecar)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            SidecarVerdict::unchecked(format!("no sidecar at {}", sidecar_file.display()))
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", sidecar_file.display())),
    };
    let watermark = match String::from_utf8(bytes) {
        Ok(text) => {
            let detection = detect_text(config, args.tokenizer, &text)?;
            let claimed = sidecar
                .provenance
                .as_ref()
                .and_then(|p| p.record.watermark.as_ref())
                .map(|w| w.key_id.clone());
            Some(WatermarkCheck {
                ok: claimed.is_none() || detection.watermarked || sidecar.valid,
                detection,
                claimed,
            })
        }
        Err(_) => None,
    };
    let mut failed = Vec::new();
    if !sidecar.valid {
        failed.push("sidecar");
    }
    if watermark.as_ref().is_some_and(|w| !w.ok) {
        failed.push("watermark");
    }
    if args.json {
        let object = serde_json::json!({
            "file": file,
            "sidecar": sidecar,
            "watermark": watermark,
            "valid": failed.is_empty(),
            "failed": failed,
        });
        println!("{object}");
    } else {
        let status = |ok: bool| if ok { "ok" } else { "FAILED" };
        println!("sidecar    {}: {}", status(sidecar.valid), sidecar.reason);
        if let Some(issuer) = &sidecar.issuer {
            println!("           issuer: {issuer}");
        }
        if let Some(kind) = &sidecar.digital_source_type {
            println!("           digital source type: {kind}");
        }
        match &watermark {
            Some(w) => {
                let (status, claim) = match &w.claimed {
                    Some(key) if !w.detection.watermarked && w.ok => (
                        "-",
                        format!(
                            "the sidecar claims key {key} and vouches for these exact bytes: a \
                             miss on a short or predictable text, not a change"
                        ),
                    ),
                    Some(key) => (status(w.ok), format!("the sidecar claims key {key}")),
                    None => ("-", "the sidecar claims none".to_owned()),
                };
                println!(
                    "watermark  {status}: {}; p-value {:.3e} ({claim})",
                    w.detection.verdict, w.detection.p_value,
                );
            }
            None => println!("watermark  not checked: the file is not UTF-8 text"),
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The watermark verdict on `text`, read with the tokenizer of `tokenizer` (default: the
/// configured model's) and tested with every watermark key of the installation.
fn detect_text(
    config: &Config,
    tokenizer: Option<PathBuf>,
    text: &str,
) -> anyhow::Result<Detection> {
    let path = tokenizer.unwrap_or_else(|| config.model.clone());
    let tokenizer = GgufTokenizer::load(&path).with_context(|| {
        format!(
            "loading the tokenizer from {} (--tokenizer names another GGUF file)",
            path.display()
        )
    })?;
    let keyring = Keyring::open_watermarks(&config.keys)?;
    Ok(detect(&tokenizer.tokenize(text), keyring.materials()))
}

pub fn verify(config: &Config, command: VerifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        VerifyCommand::Text {
            file,
            tokenizer,
            json,
        } => {
            let detection = detect_text(config, tokenizer, &read_text(&file)?)?;
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
