//! Per-turn retrieval and prompt assembly (`lore context`'s work), as percentiles.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lore_canon::{CanonError, CanonStore, World};
use lore_engine::{EngineError, SessionOptions, TurnPlanner};

use crate::Percentiles;

/// What one retrieval benchmark measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalReport {
    /// Reading the production's world from the store (once per production and canon revision).
    pub world_load: Duration,
    /// Reading it again from its snapshot (every later process until canon changes).
    pub world_snapshot_load: Duration,
    /// Indexing it for one character and beat and writing the preamble (once per session).
    pub session_open: Duration,
    /// Quads in the store.
    pub store_quads: usize,
    /// Facts in the world.
    pub world_facts: usize,
    /// One turn: retrieval, prompt assembly and rendering the transcript, in microseconds.
    pub per_turn: Percentiles,
    /// Facts retrieved per turn, on average.
    pub mean_facts: f64,
}

/// Measures `iterations` turns cycling over `inputs` for one character, planned with
/// `options` (with the rails' encoder, facts are also found by meaning).
pub fn run(
    store: &CanonStore,
    production: &str,
    character: &str,
    beat: Option<&str>,
    inputs: &[String],
    iterations: usize,
    options: SessionOptions,
) -> Result<RetrievalReport, EngineError> {
    let cache = std::env::temp_dir().join(format!("lore-bench-worlds-{}", std::process::id()));
    let started = Instant::now();
    World::load_cached(store, production, &cache)?;
    let world_load = started.elapsed();
    let started = Instant::now();
    let world = Arc::new(World::load_cached(store, production, &cache)?);
    let world_snapshot_load = started.elapsed();
    // Best effort: a leftover temp folder is harmless.
    let _ = std::fs::remove_dir_all(&cache);
    let resolved = world.resolve(store, character, beat)?;
    let world_facts = world.facts.len();
    let started = Instant::now();
    let planner = TurnPlanner::new(world, resolved, options)?;
    let session_open = started.elapsed();

    let mut samples = Vec::with_capacity(iterations);
    let mut facts = 0usize;
    for i in 0..iterations.max(1) {
        let input = &inputs[i % inputs.len().max(1)];
        let started = Instant::now();
        let (conversation, retrieved) = planner.plan(input, &Default::default());
        let prompt = conversation.transcript();
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        facts += retrieved.len();
        black_box(prompt);
    }
    Ok(RetrievalReport {
        world_load,
        world_snapshot_load,
        session_open,
        store_quads: store.oxigraph().len().map_err(CanonError::from)?,
        world_facts,
        mean_facts: facts as f64 / samples.len() as f64,
        per_turn: Percentiles::of(&mut samples),
    })
}

/// Player lines for a synthetic world, naming people and places of town `t`.
pub fn synthetic_inputs(t: usize) -> Vec<String> {
    use crate::synth::{character_name, place_name};
    vec![
        format!("Have you seen {} today?", character_name(t, 1)),
        format!("What do you know about {}?", place_name(t)),
        format!(
            "Tell me about {} and {}.",
            character_name(t, 2),
            character_name(t, 3)
        ),
        "Nice weather for it.".to_owned(),
    ]
}
