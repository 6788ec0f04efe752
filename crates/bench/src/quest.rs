//! Quest planning: latency per verified quest, and how varied the offers are across player
//! histories.

use std::collections::HashSet;
use std::time::Instant;

use lore_canon::{EntityKind, World};
use lore_quest::{Choice, PlayerModel, Style, WorldState, plan, simulate};

use crate::Percentiles;

/// What [`run`] measured.
#[derive(Debug, Clone)]
pub struct QuestReport {
    /// Planning one quest (plan + the simulator's replay, so a verified quest), µs.
    pub plan: Percentiles,
    /// Building the world state of a beat (once per beat, shared by every plan), µs.
    pub state: Percentiles,
    /// Quest givers measured (living characters × beats).
    pub givers: usize,
    /// Per giver and beat, the mean number of distinct strategies offered across histories.
    pub strategies_per_giver: f64,
    /// Per giver and beat, the mean number of distinct plans (strategy and targets).
    pub plans_per_giver: f64,
    /// Quests that failed the simulator (must be 0).
    pub invalid: usize,
}

/// Plans a quest for every living character at every beat (and timeless) of `world`, once
/// per player history; `histories` player histories are drawn from `seed`.
pub fn run(world: &World, histories: usize, seed: u64) -> QuestReport {
    let mut plan_us = Vec::new();
    let mut state_us = Vec::new();
    let mut strategies = Vec::new();
    let mut plans = Vec::new();
    let mut invalid = 0;
    let beats = std::iter::once(None).chain(world.beats.iter().map(|b| Some(b.order)));
    for beat in beats {
        let started = Instant::now();
        let state = WorldState::at(world, beat);
        state_us.push(started.elapsed().as_secs_f64() * 1e6);
        for giver in
            (0..world.entities.len()).filter(|&e| world.entities[e].kind == EntityKind::Character)
        {
            if !state.alive(giver) {
                continue;
            }
            let mut seen_strategies = HashSet::new();
            let mut seen_plans = HashSet::new();
            for h in 0..histories {
                let player = history(seed ^ ((h as u64) << 20) ^ giver as u64);
                let started = Instant::now();
                let quest = plan(world, &state, giver, &player, seed.wrapping_add(h as u64));
                let valid = quest
                    .as_ref()
                    .is_none_or(|q| simulate(world, &state, q).is_ok());
                plan_us.push(started.elapsed().as_secs_f64() * 1e6);
                invalid += usize::from(!valid);
                if let Some(q) = quest {
                    seen_strategies.insert(q.strategy);
                    seen_plans.insert((q.strategy, q.targets()));
                }
            }
            strategies.push(seen_strategies.len() as f64);
            plans.push(seen_plans.len() as f64);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    QuestReport {
        plan: Percentiles::of(&mut plan_us),
        state: Percentiles::of(&mut state_us),
        givers: strategies.len(),
        strategies_per_giver: mean(&strategies),
        plans_per_giver: mean(&plans),
        invalid,
    }
}

/// A player history drawn from `seed`: up to eight quests, accepted or refused by style.
fn history(seed: u64) -> PlayerModel {
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize
    };
    let favourite = Style::ALL[next() % 4];
    let history = (0..next() % 9)
        .map(|_| {
            let style = Style::ALL[next() % 4];
            Choice {
                strategy: String::new(),
                style,
                targets: Vec::new(),
                accepted: style == favourite || next() % 4 == 0,
            }
        })
        .collect();
    PlayerModel {
        history,
        ..PlayerModel::default()
    }
}
