//! Quest write-ups on a real model: how long one takes, how often the model's words pass the
//! checks, and what decoding under the write-up's schema costs per token against decoding the
//! same prompt unconstrained, in the same session of the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lore_canon::{EntityKind, Resolved, World};
use lore_engine::{EngineError, SessionOptions, TurnPlanner};
use lore_gen::{Backend, EmbeddedBackend, EmbeddedConfig, GenError};
use lore_quest::{LoggedQuest, WorldState, quests};

use crate::Percentiles;

/// What [`run`] measured.
#[derive(Debug, Clone)]
pub struct WriteUpReport {
    /// One whole write-up (generation under the schema, parsing, the checks, signing), ms.
    pub latency_ms: Percentiles,
    /// Write-ups measured.
    pub written: usize,
    /// Of those, how many kept the model's words (the rest fell back to the plan's).
    pub by_model: usize,
    /// Decoding under the schema: milliseconds per generated token after the first.
    pub structured_ms_per_token: f64,
    /// The same prompts decoded unconstrained for as many tokens: the baseline.
    pub free_ms_per_token: f64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum WriteUpError {
    /// The model failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// A planner could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Writes up to `limit` quests of `world`'s living characters at `beat` (the first quest each
/// gives, then the second, ...), on `model` with `threads` threads.
pub fn run(
    world: Arc<World>,
    beat: Option<i64>,
    model: &Path,
    threads: usize,
    limit: usize,
) -> Result<WriteUpReport, WriteUpError> {
    let mut config = EmbeddedConfig::new(model.to_owned());
    config.threads = threads;
    config.n_ctx = 4096;
    let backend = EmbeddedBackend::load(config)?;
    let info = backend.info();
    let state = WorldState::at(&world, beat);
    let givers: Vec<usize> = (0..world.entities.len())
        .filter(|&e| world.entities[e].kind == EntityKind::Character && state.alive(e))
        .collect();
    let mut work = Vec::new();
    for giver in &givers {
        let planner = Arc::new(TurnPlanner::new(
            world.clone(),
            Resolved {
                character: *giver,
                beat,
            },
            SessionOptions::default(),
        )?);
        for (i, quest) in quests(&world, &state, *giver).iter().enumerate() {
            work.push((i, planner.clone(), LoggedQuest::new(&world, i, quest)));
        }
    }
    // Round-robin over givers: the first quest of each, then the second, ...
    work.sort_by_key(|(i, _, _)| *i);
    work.truncate(limit);
    let mut latency = Vec::new();
    let mut by_model = 0;
    let (mut structured, mut free) = ((0usize, 0.0f64), (0usize, 0.0f64));
    let mut session = backend.open_session()?;
    for (_, planner, quest) in &work {
        let started = Instant::now();
        let write_up = planner.write_up(&mut *session, &info, quest, None);
        latency.push(started.elapsed().as_secs_f64() * 1e3);
        by_model += usize::from(write_up.written_by == "model");
        // The same prompt twice: under the schema, then free for as many tokens.
        let (conversation, params) = planner.write_up_request(quest);
        let constrained = session.generate(&conversation, &params, &mut |_| true)?;
        let unconstrained_params = lore_gen::GenParams {
            structured: None,
            stop_rules: false,
            max_tokens: constrained.generated_tokens,
            ..params
        };
        let unconstrained =
            session.generate(&conversation, &unconstrained_params, &mut |_| true)?;
        for (sum, g) in [(&mut structured, &constrained), (&mut free, &unconstrained)] {
            sum.0 += g.generated_tokens.saturating_sub(1);
            sum.1 += g.generation_time.as_secs_f64() * 1e3;
        }
    }
    let per_token = |(tokens, ms): (usize, f64)| if tokens > 0 { ms / tokens as f64 } else { 0.0 };
    Ok(WriteUpReport {
        written: latency.len(),
        latency_ms: Percentiles::of(&mut latency),
        by_model,
        structured_ms_per_token: per_token(structured),
        free_ms_per_token: per_token(free),
    })
}
