//! Signing and checking an export's C2PA sidecar, against signing a reply's record alone.

use std::time::{Duration, Instant};

use lore_mark::provenance::{ACTION_CREATED, TRAINED_ALGORITHMIC_MEDIA, sha256_hex};
use lore_mark::{
    ExportProvenance, MarkError, Provenance, SigningKeys, StudioCredentials, verify_sidecar,
};

/// Mean times of the three operations.
#[derive(Debug, Clone)]
pub struct SidecarReport {
    /// Bytes of the signed sidecar.
    pub sidecar_bytes: usize,
    /// Signing a sidecar.
    pub sign: Duration,
    /// Checking one.
    pub check: Duration,
    /// Signing a reply's provenance record alone.
    pub record: Duration,
}

/// Why the sidecar benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SidecarBenchError {
    /// Its keys could not be made in a temporary directory.
    #[error("temporary keys: {0}")]
    Io(#[from] std::io::Error),
    /// Signing failed.
    #[error(transparent)]
    Mark(#[from] MarkError),
}

/// Mean time of `f` over `iterations` calls.
fn mean_time<T>(iterations: usize, mut f: impl FnMut() -> T) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(f());
    }
    started.elapsed() / iterations.max(1) as u32
}

/// Signs and checks the sidecar of a `bytes`-byte text `iterations` times each, with keys made
/// for the run.
pub fn run(bytes: usize, iterations: usize) -> Result<SidecarReport, SidecarBenchError> {
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
    Ok(SidecarReport {
        sidecar_bytes: sidecar.len(),
        record: mean_time(iterations, || signer.sign(&record)),
        sign: mean_time(iterations, sign),
        check: mean_time(iterations, || {
            verify_sidecar(
                &credentials.ca_certificate,
                text.as_bytes(),
                "text/plain",
                &sidecar,
            )
        }),
    })
}
