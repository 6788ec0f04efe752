//! `lore quest`: plan a quest for a character at a beat and print it with its proof.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use lore_quest::{Choice, PlayerModel, Quest, Style, WorldState, plan, simulate};
use serde_json::json;

use crate::SessionArgs;
use crate::chat::load;
use crate::config::Config;

/// A play style, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StyleArg {
    /// Fighting, guarding, capturing.
    Combat,
    /// Asking, listening, delivering.
    Talk,
    /// Spying, lifting.
    Stealth,
    /// Going places, finding and using things.
    Exploration,
}

impl From<StyleArg> for Style {
    fn from(style: StyleArg) -> Style {
        match style {
            StyleArg::Combat => Style::Combat,
            StyleArg::Talk => Style::Talk,
            StyleArg::Stealth => Style::Stealth,
            StyleArg::Exploration => Style::Exploration,
        }
    }
}

pub fn run(
    config: &Config,
    args: &SessionArgs,
    likes: &[StyleArg],
    seed: u64,
) -> anyhow::Result<ExitCode> {
    let (world, resolved, _store) = load(config, args)?;
    let giver = resolved.character;
    let state = WorldState::at(&world, resolved.beat);
    // A player who took up one quest of each style they like.
    let player = PlayerModel {
        history: likes
            .iter()
            .map(|&style| Choice {
                strategy: String::new(),
                style: style.into(),
                targets: Vec::new(),
                accepted: true,
            })
            .collect(),
        ..PlayerModel::default()
    };
    let started = Instant::now();
    let quest = plan(&world, &state, giver, &player, seed);
    let micros = started.elapsed().as_micros();
    let name = &world.entities[giver].name;
    let quest = quest.with_context(|| match state.alive(giver) {
        false => format!("{name} is dead at this beat and gives no quests"),
        true => format!("the world as it stands offers {name} no quest to give"),
    })?;
    // The plan is checked by the simulator before anyone sees it.
    simulate(&world, &state, &quest).map_err(|f| {
        anyhow::anyhow!(
            "the planned quest fails at step {}: {} (a planner bug)",
            f.step + 1,
            f.reason
        )
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", quest_json(&world, &quest, resolved.beat, micros))?;
    } else {
        writeln!(
            out,
            "{name}: {:?} quest, \"{}\" ({:?}); planned in {micros} µs, replayed by the simulator",
            quest.motivation, quest.strategy, quest.style
        )?;
        for (i, step) in quest.steps.iter().enumerate() {
            writeln!(out, "{}. {}", i + 1, step.action.describe(&world))?;
            for evidence in &step.proof {
                writeln!(out, "     because {} <{}>", evidence.says, evidence.iri)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn quest_json(
    world: &lore_canon::World,
    quest: &Quest,
    beat: Option<i64>,
    micros: u128,
) -> serde_json::Value {
    let iri = |e: usize| world.entities[e].iri.clone();
    json!({
        "giver": iri(quest.giver),
        "beat": beat,
        "motivation": quest.motivation,
        "strategy": quest.strategy,
        "style": quest.style,
        "steps": quest.steps.iter().map(|s| json!({
            "action": s.action.verb(),
            "text": s.action.describe(world),
            "targets": s.action.targets().into_iter().map(iri).collect::<Vec<_>>(),
            "proof": s.proof,
        })).collect::<Vec<_>>(),
        "verified": true,
        "micros": micros,
    })
}
