//! Every quest the planner offers can be done: 1,000 quests across the sample world's
//! productions, beats and player histories, each replayed by the simulator.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::collections::{HashMap, HashSet};
mod common;

use common::world;
use lore_canon::{EntityKind, World};
use lore_quest::{LoggedQuest, PlayerModel, Style, WorldState, plan, quests, simulate};

/// A player who took up quests of one style and turned down the rest.
fn player_who_likes(
    world: &World,
    state: &WorldState,
    giver: usize,
    style: Style,
    n: usize,
) -> PlayerModel {
    let mut player = PlayerModel::default();
    for quest in quests(world, state, giver).iter().take(n) {
        player
            .history
            .push(LoggedQuest::new(world, 0, quest).choice(quest.style == style));
    }
    player
}

#[test]
fn a_thousand_planned_quests_all_replay() {
    let mut planned = 0;
    let mut structures: HashMap<String, HashSet<String>> = HashMap::new();
    'outer: for round in 0u64.. {
        for production in ["lanterns", "nocturne"] {
            let world = world(production);
            let beats: Vec<Option<i64>> = std::iter::once(None)
                .chain(world.beats.iter().map(|b| Some(b.order)))
                .collect();
            for beat in beats {
                let state = WorldState::at(&world, beat);
                let givers = (0..world.entities.len())
                    .filter(|&e| world.entities[e].kind == EntityKind::Character);
                for giver in givers {
                    let style = Style::ALL[(round as usize + giver) % 4];
                    let player =
                        player_who_likes(&world, &state, giver, style, (round % 7) as usize);
                    let Some(quest) = plan(&world, &state, giver, &player, round) else {
                        assert!(!state.alive(giver), "a living giver with no quest");
                        continue;
                    };
                    if let Err(failure) = simulate(&world, &state, &quest) {
                        panic!(
                            "{production} at {beat:?}: {} cannot be done: step {}: {}\n{quest:#?}",
                            quest.strategy, failure.step, failure.reason
                        );
                    }
                    for step in &quest.steps {
                        assert!(!step.proof.is_empty(), "a step without proof: {step:?}");
                    }
                    structures
                        .entry(world.entities[giver].iri.clone())
                        .or_default()
                        .insert(quest.strategy.to_owned());
                    planned += 1;
                    if planned == 1000 {
                        break 'outer;
                    }
                }
            }
        }
    }
    assert_eq!(planned, 1000);
    assert!(structures.values().all(|s| s.len() >= 3), "{structures:?}");
}

#[test]
fn every_candidate_quest_replays_too() {
    let mut checked = 0;
    for production in ["lanterns", "nocturne"] {
        let world = world(production);
        for beat in std::iter::once(None).chain(world.beats.iter().map(|b| Some(b.order))) {
            let state = WorldState::at(&world, beat);
            for giver in 0..world.entities.len() {
                if world.entities[giver].kind != EntityKind::Character {
                    continue;
                }
                for quest in quests(&world, &state, giver) {
                    simulate(&world, &state, &quest)
                        .unwrap_or_else(|f| panic!("{}: {f:?}", quest.strategy));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn players_with_different_histories_get_different_quests() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let odile = world.character("odile").unwrap();
    let fighter = player_who_likes(&world, &state, odile, Style::Combat, 12);
    let talker = player_who_likes(&world, &state, odile, Style::Talk, 12);
    let a = plan(&world, &state, odile, &fighter, 7).unwrap();
    let b = plan(&world, &state, odile, &talker, 7).unwrap();
    assert_ne!((a.strategy, a.targets()), (b.strategy, b.targets()));
    assert_eq!(a.style, Style::Combat, "{a:#?}");
    assert_eq!(b.style, Style::Talk, "{b:#?}");
}

#[test]
fn the_dead_give_no_quests_and_tampered_quests_fail() {
    let world = world("nocturne");
    let aldous = world.character("aldous").unwrap();
    let after_death = WorldState::at(&world, Some(12));
    assert!(quests(&world, &after_death, aldous).is_empty());
    // A quest planned before his death no longer replays after it.
    let before = WorldState::at(&world, Some(2));
    let quest = plan(&world, &before, aldous, &PlayerModel::default(), 1).unwrap();
    simulate(&world, &before, &quest).unwrap();
    let failure = simulate(&world, &after_death, &quest).unwrap_err();
    assert!(failure.reason.contains("dead"), "{failure:?}");
    // Steps out of order fail at the first impossible one.
    let mut shuffled = quest.clone();
    shuffled.steps.reverse();
    assert!(simulate(&world, &before, &shuffled).is_err());
}
