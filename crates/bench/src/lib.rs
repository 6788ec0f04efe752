//! Benchmarks: the measurements the issues ask for, each beside its baseline in one run.
//!
//! - [`synth`]: a generator of synthetic worlds of any size in the `lore:` vocabulary;
//! - [`import`]: importing canon into a new store, its time and peak memory;
//! - [`retrieval`]: per-turn retrieval and prompt assembly, as percentiles;
//! - [`generation`]: the engine's embedded backend against a bare llama.cpp decode loop on
//!   the same model, threads and prompt, and turn n>1's time to first token against the
//!   cost of evaluating only its new tokens;
//! - [`serve`]: the HTTP server over a stub model, driven by `wrk`, against the stub alone;
//! - [`quest`]: quest planning latency per verified quest, and the variety of offers;
//! - [`write_up`]: quest write-ups on the model, and decoding under their schema against
//!   unconstrained decoding of the same prompts;
//! - [`sidecar`]: signing and checking an export's C2PA sidecar.
//!
//! Numbers are reported, never asserted: the machines are shared and noisy.

pub mod generation;
pub mod import;
pub mod quest;
pub mod retrieval;
pub mod serve;
pub mod sidecar;
pub mod synth;
pub mod write_up;

/// Latency percentiles of a sample, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Sample size.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `micros` (sorted in place).
    pub fn of(micros: &mut [f64]) -> Percentiles {
        micros.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if micros.is_empty() {
                0.0
            } else {
                micros[((micros.len() - 1) as f64 * q).round() as usize]
            }
        };
        Percentiles {
            n: micros.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.n, 100);
        assert_eq!(p.p50, 51.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
    }
}
