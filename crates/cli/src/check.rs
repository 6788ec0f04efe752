//! `lore check`.

use std::path::PathBuf;
use std::process::ExitCode;

use lore_canon::lint::{self, Severity};

use crate::config::Config;
use crate::wiring::open_store;

pub fn run(config: &Config, files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let (store, positions) = if files.is_empty() {
        (open_store(config)?, lint::Positions::new())
    } else {
        lint::load_files(files)?
    };
    let findings = lint::check(&store, &positions)?;
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    for f in &findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "severity": severity,
                    "code": f.code,
                    "message": f.message,
                    "subject": f.subject,
                    "file": f.location.as_ref().map(|(file, _)| file.display().to_string()),
                    "line": f.location.as_ref().map(|(_, line)| line),
                    "fix": f.fix,
                })
            );
        } else {
            let place = match &f.location {
                Some((file, line)) => format!("{}:{line}", file.display()),
                None => format!("<{}>", f.subject),
            };
            println!(
                "{place}: {severity}[{}]: {}\n  fix: {}",
                f.code, f.message, f.fix
            );
        }
    }
    if !json {
        println!(
            "{} findings: {errors} errors, {} warnings",
            findings.len(),
            findings.len() - errors
        );
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
