//! Prometheus metrics: turns, errors, per-stage latency, tokens per second, queue depth.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A pipeline stage of a turn.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stage {
    /// `load`, `queue`, `plan`, `first_token`, `generate`, `commit` or `total`.
    pub stage: &'static str,
}

/// How a turn ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `completed`, `cancelled`, `failed` or `conflict`.
    pub outcome: &'static str,
}

/// How the output rail repaired a reply.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepairKind {
    /// `truncated`, `regenerated` or `fallback`.
    pub repair: &'static str,
}

/// An HTTP response class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    /// The status code.
    pub status: u16,
}

type StageHistograms = Family<Stage, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 20 µs to ~21 s.
    Histogram::new(exponential_buckets(0.000_02, 2.0, 21))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Turns by outcome.
    pub turns: Family<Outcome, Counter>,
    /// Responses by status code (errors are the 4xx and 5xx).
    pub responses: Family<Status, Counter>,
    /// Seconds per stage of a turn.
    pub stages: StageHistograms,
    /// Generated tokens.
    pub tokens: Counter,
    /// Generation speed of each turn.
    pub tokens_per_second: Histogram,
    /// Turns admitted but not yet generating.
    pub queue_depth: Gauge<i64, AtomicI64>,
    /// Turns generating now.
    pub generating: Gauge<i64, AtomicI64>,
    /// Replies the output rail repaired, by repair.
    pub output_repairs: Family<RepairKind, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lore");
        let turns = Family::<Outcome, Counter>::default();
        let responses = Family::<Status, Counter>::default();
        let stages = StageHistograms::new_with_constructor(latency_histogram);
        let tokens = Counter::default();
        let tokens_per_second = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let queue_depth = Gauge::default();
        let generating = Gauge::default();
        registry.register("turns", "Turns by outcome", turns.clone());
        registry.register(
            "http_responses",
            "HTTP responses by status",
            responses.clone(),
        );
        registry.register(
            "turn_stage_seconds",
            "Seconds per turn stage",
            stages.clone(),
        );
        registry.register("generated_tokens", "Tokens generated", tokens.clone());
        registry.register(
            "generation_tokens_per_second",
            "Generation speed per turn",
            tokens_per_second.clone(),
        );
        registry.register(
            "queue_depth",
            "Turns waiting for generation",
            queue_depth.clone(),
        );
        registry.register("generating", "Turns generating now", generating.clone());
        let output_repairs = Family::<RepairKind, Counter>::default();
        registry.register(
            "output_repairs",
            "Replies the output rail repaired (a sentence withheld)",
            output_repairs.clone(),
        );
        for repair in ["truncated", "regenerated", "fallback"] {
            drop(output_repairs.get_or_create(&RepairKind { repair }));
        }
        // Every series exists from the start, so dashboards and alerts see zeros, not gaps.
        for outcome in ["completed", "cancelled", "failed", "conflict"] {
            drop(turns.get_or_create(&Outcome { outcome }));
        }
        for stage in ["load", "queue", "plan", "first_token", "generate", "commit"] {
            drop(stages.get_or_create(&Stage { stage }));
        }
        Metrics {
            registry,
            turns,
            responses,
            stages,
            tokens,
            tokens_per_second,
            queue_depth,
            generating,
            output_repairs,
        }
    }
}

impl Metrics {
    /// Records `seconds` for `stage`.
    pub fn stage(&self, stage: &'static str, seconds: f64) {
        self.stages.get_or_create(&Stage { stage }).observe(seconds);
    }

    /// Counts a reply the output rail repaired.
    pub fn output_repair(&self, repair: &'static str) {
        self.output_repairs
            .get_or_create(&RepairKind { repair })
            .inc();
    }

    /// Counts a turn's outcome.
    pub fn turn(&self, outcome: &'static str) {
        self.turns.get_or_create(&Outcome { outcome }).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
