//! `lore import`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use lore_canon::CanonStore;

use crate::config::Config;

pub fn run(config: &Config, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&config.store).with_context(|| {
        format!(
            "cannot create the store directory {}",
            config.store.display()
        )
    })?;
    let store = CanonStore::open(&config.store)?;
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} quads ({per_sec}) {elapsed}")
            .expect("constant template"),
    );
    bar.set_message("importing");
    let progress = bar.clone();
    let started = Instant::now();
    let report = store.import(files, move |n| progress.set_position(n));
    bar.finish_and_clear();
    let report = report?;
    for (file, quads) in &report.files {
        println!("{}: {quads} quads", file.display());
    }
    println!(
        "imported into {} in {:.2?}; the store holds {} quads",
        config.store.display(),
        started.elapsed(),
        report.store_len
    );
    Ok(ExitCode::SUCCESS)
}
