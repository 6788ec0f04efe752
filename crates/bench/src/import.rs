//! Importing canon files into a new store: time and peak memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lore_canon::{CanonError, CanonStore, CommitMeta};

/// What an import cost.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Quads in the store after it.
    pub quads: usize,
    /// How long it took.
    pub elapsed: Duration,
    /// Peak resident memory of the process, in MiB, if known.
    pub peak_rss_mib: Option<f64>,
}

/// Why the import benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportBenchError {
    /// Benchmark imports go into a new store.
    #[error("{} exists; benchmark imports go into a new store", .0.display())]
    StoreExists(PathBuf),
    /// The import failed.
    #[error(transparent)]
    Canon(#[from] CanonError),
}

/// Imports `files` into a new store at `into`.
pub fn run(into: &Path, files: &[PathBuf]) -> Result<ImportReport, ImportBenchError> {
    if into.exists() {
        return Err(ImportBenchError::StoreExists(into.to_owned()));
    }
    let store = CanonStore::open(into)?;
    let started = Instant::now();
    let report = store.import(files, CommitMeta::new("bench", "benchmark import"), |_| ())?;
    Ok(ImportReport {
        quads: report.store_len,
        elapsed: started.elapsed(),
        peak_rss_mib: crate::peak_rss_mib(),
    })
}
