//! `lore quest`: plan a quest for a character at a beat and print it with its proof.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use lore_quest::{Choice, DISTRUST, Quest, QuestLog, Style, WorldState, plan, simulate};
use lore_server::db::Db;
use serde_json::json;

use crate::SessionArgs;
use crate::config::Config;
use crate::wiring::load;
use crate::wiring::runtime;

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
    stored: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (world, mut resolved, _store) = load(config, args)?;
    let giver = resolved.character;
    let log = match stored {
        Some(id) => {
            let (log, beat) = stored_log(config, &world, giver, id)?;
            resolved.beat = beat;
            log
        }
        None => QuestLog::default(),
    };
    let base = WorldState::at(&world, resolved.beat);
    let state = log.state(&world, &base);
    // The session's player, who also took up one quest of each style they like.
    let mut player = log.player.clone();
    player.history.extend(likes.iter().map(|&style| Choice {
        strategy: String::new(),
        style: style.into(),
        targets: Vec::new(),
        accepted: true,
    }));
    let started = Instant::now();
    let quest = plan(&world, &state, giver, &player, seed);
    let micros = started.elapsed().as_micros();
    let regard = player.regard_of(&world.entities[giver].iri);
    let name = &world.entities[giver].name;
    anyhow::ensure!(
        regard > DISTRUST,
        "{name} no longer trusts this player with a quest (regard {regard:+.1})"
    );
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

/// The quest log and beat of stored session `id`, which must be `giver`'s in `world`.
fn stored_log(
    config: &Config,
    world: &lore_canon::World,
    giver: lore_canon::EntityId,
    id: &str,
) -> anyhow::Result<(QuestLog, Option<i64>)> {
    let row = runtime()?.block_on(async {
        let db = Db::connect(&config.database).await?;
        let row = db.sessions.get(id).await;
        db.close().await;
        anyhow::Ok(row?)
    })?;
    let row = row.with_context(|| {
        format!(
            "no session {id:?} in {} (`lore serve` stores sessions there)",
            config.database
        )
    })?;
    let character = &world.entities[giver];
    anyhow::ensure!(
        row.production == world.production.iri && row.character == character.iri,
        "session {id} is with <{}> in <{}>, not with {} in {}",
        row.character,
        row.production,
        character.name,
        world.production.title
    );
    let log = serde_json::from_str(&row.player_state)
        .with_context(|| format!("session {id}: its stored quest log does not read"))?;
    Ok((log, row.beat))
}
