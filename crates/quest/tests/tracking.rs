//! Quests in play: events advance steps in order, odd events are named, the session's events
//! change what later quests are planned over, and a world that changes under an open quest
//! fails it with the reason.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

mod common;

use common::world;
use lore_quest::{
    Action, EventError, LogError, LoggedQuest, PlayerModel, Progress, QuestLog, QuestProgress,
    Status, WorldState, event, plan, quests,
};

/// A log holding `quest`, accepted.
fn running(world: &lore_canon::World, state: &WorldState, quest: &lore_quest::Quest) -> QuestLog {
    let mut log = QuestLog::default();
    log.quests.push(LoggedQuest::new(world, 0, quest));
    assert_eq!(log.accept(world, state, 0), Ok(Progress::Possible));
    log
}

/// A quest `giver` gives that has the player pick something up, and that thing.
fn fetch_quest(
    world: &lore_canon::World,
    state: &WorldState,
    giver: usize,
) -> (lore_quest::Quest, usize) {
    quests(world, state, giver)
        .into_iter()
        .find_map(|q| {
            let item = q.steps.iter().find_map(|s| match s.action {
                Action::Get { item } => Some(item),
                _ => None,
            })?;
            Some((q, item))
        })
        .expect("the giver can ask for something fetched")
}

fn fact(n: usize) -> String {
    format!("urn:session#e{n}")
}

#[test]
fn steps_advance_in_order_and_the_quest_completes() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let odile = world.character("odile").unwrap();
    let odile_iri = world.entities[odile].iri.clone();
    for quest in quests(&world, &state, odile) {
        let mut log = running(&world, &state, &quest);
        for (i, step) in quest.steps.iter().enumerate() {
            let progress = log.event(&world, &state, step.action, fact(i)).unwrap();
            let expected = if i + 1 == quest.steps.len() {
                Progress::Completed
            } else {
                Progress::StepDone { step: i }
            };
            assert_eq!(
                progress,
                [QuestProgress {
                    quest: 0,
                    progress: expected
                }],
                "{}",
                quest.strategy
            );
        }
        assert_eq!(log.quests[0].status, Status::Completed);
        assert!(
            log.player.regard_of(&odile_iri) > 0.0,
            "a quest done pleases"
        );
        assert_eq!(log.events.len(), quest.steps.len());
        // A completed quest takes no more events.
        let again = log
            .event(&world, &state, quest.steps[0].action, fact(99))
            .unwrap_or_default();
        assert!(again.is_empty(), "{again:?}");
    }
}

#[test]
fn out_of_order_impossible_and_unrelated_events_are_named() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let odile = world.character("odile").unwrap();
    let quest = quests(&world, &state, odile)
        .into_iter()
        .find(|q| q.strategy == "interview a witness" && q.steps.len() == 4)
        .unwrap();
    let mut log = running(&world, &state, &quest);
    // Reporting before going anywhere: Odile is at the quay, the player is not.
    let Err(LogError::Impossible(reason)) =
        log.event(&world, &state, quest.steps[3].action, fact(0))
    else {
        panic!("a report from nowhere was accepted")
    };
    assert!(reason.contains("not at"), "{reason}");
    assert!(log.events.is_empty(), "an impossible event is not logged");
    // Going to the quay first is the third step, done early.
    assert_eq!(
        log.event(&world, &state, quest.steps[2].action, fact(1)),
        Ok(vec![QuestProgress {
            quest: 0,
            progress: Progress::OutOfOrder {
                expected: 0,
                got: 2
            }
        }])
    );
    let elsewhere = event(&world, "goto", &["the Fogmarsh"]).unwrap();
    assert_eq!(log.event(&world, &state, elsewhere, fact(2)), Ok(vec![]));
    assert_eq!(log.events.len(), 2);
    assert_eq!(log.quests[0].done, 0);
    assert_eq!(log.quests[0].status, Status::Running);
    assert_eq!(
        log.accept(&world, &state, 0),
        Err(LogError::NotOffered {
            id: 0,
            status: "running"
        })
    );
    assert_eq!(log.refuse(7), Err(LogError::NoQuest(7)));
}

#[test]
fn events_name_what_is_wrong() {
    let world = world("lanterns");
    assert_eq!(
        event(&world, "give", &["the Everlight", "Odile Marrow"]).unwrap(),
        Action::Give {
            item: world
                .entity("https://lorekeeper.dev/worlds/brindlemoor#everlight")
                .unwrap(),
            to: world.character("odile").unwrap(),
        }
    );
    assert_eq!(
        event(&world, "give", &["the Sunstone", "Odile"]),
        Err(EventError::UnknownEntity("the Sunstone".into()))
    );
    assert!(matches!(
        event(&world, "give", &["Odile"]),
        Err(EventError::Arity {
            expected: 2,
            got: 1,
            ..
        })
    ));
    assert!(matches!(
        event(&world, "dance", &["Odile"]),
        Err(EventError::UnknownAction(_))
    ));
}

#[test]
fn a_giver_who_dies_fails_the_quest_and_a_living_one_replans() {
    let nocturne = world("nocturne");
    let aldous = nocturne.character("aldous").unwrap();
    let before = WorldState::at(&nocturne, Some(2));
    let mut log = QuestLog::default();
    log.offer(&nocturne, &before, aldous, 3, None).unwrap();
    assert_eq!(log.accept(&nocturne, &before, 0), Ok(Progress::Possible));
    assert!(log.recheck(&nocturne, &before).is_empty());
    let after = WorldState::at(&nocturne, Some(12));
    let failed = log.recheck(&nocturne, &after);
    let [
        QuestProgress {
            quest: 0,
            progress: Progress::Failed { reason, .. },
        },
    ] = failed.as_slice()
    else {
        panic!("a dead giver's quest still runs: {failed:?}")
    };
    assert!(reason.contains("dead"), "{reason}");
    assert!(matches!(log.quests[0].status, Status::Failed(_)));
    let Err(LogError::NothingToOffer(why)) = log.offer(&nocturne, &after, aldous, 3, Some(0))
    else {
        panic!("a dead giver offered a replacement")
    };
    assert!(why.contains("dead"), "{why}");

    // An item the quest needs is no longer where it lay: the quest fails, and its giver,
    // alive, offers another in its place.
    let lanterns = world("lanterns");
    let state = WorldState::at(&lanterns, Some(3));
    let corvin = lanterns.character("corvin").unwrap();
    let (fetch, item) = fetch_quest(&lanterns, &state, corvin);
    let mut log = running(&lanterns, &state, &fetch);
    let mut edited = state.clone();
    edited.location.remove(&item);
    let failed = log.recheck(&lanterns, &edited);
    let [
        QuestProgress {
            progress: Progress::Failed { reason, .. },
            ..
        },
    ] = failed.as_slice()
    else {
        panic!("the quest survived losing its item: {failed:?}")
    };
    assert!(reason.contains("does not say where"), "{reason}");
    let replacement = log.offer(&lanterns, &edited, corvin, 1, Some(0)).unwrap();
    assert_eq!((replacement.id, replacement.replaces), (1, Some(0)));
    assert!(
        replacement
            .steps
            .iter()
            .all(|s| !s.action.targets.contains(&lanterns.entities[item].iri)),
        "the replacement does not need the lost item"
    );
}

#[test]
fn the_sessions_events_change_what_later_quests_rest_on() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let corvin = world.character("corvin").unwrap();
    let (fetch, item) = fetch_quest(&world, &state, corvin);
    let mut log = QuestLog::default();
    // The player picks the item up on their own, before any quest.
    for (i, step) in fetch.steps.iter().enumerate() {
        log.event(&world, &state, step.action, fact(i)).unwrap();
        if matches!(step.action, Action::Get { .. }) {
            break;
        }
    }
    let now = log.state(&world, &state);
    assert!(
        state.location.contains_key(&item) && !now.location.contains_key(&item),
        "the item is with the player now"
    );
    // No quest planned now sends the player to pick it up where it lay.
    for seed in 0..20 {
        let quest = plan(&world, &now, corvin, &PlayerModel::default(), seed).unwrap();
        assert!(
            !quest.steps.iter().any(|s| s.action == Action::Get { item }),
            "{quest:#?}"
        );
    }
    // Giving it to Odile makes her its holder, on the session's word.
    let odile = world.character("odile").unwrap();
    let odile_place = state.place_of(odile).unwrap();
    log.event(
        &world,
        &state,
        Action::Goto { place: odile_place },
        fact(10),
    )
    .unwrap();
    log.event(&world, &state, Action::Give { item, to: odile }, fact(11))
        .unwrap();
    let now = log.state(&world, &state);
    assert_eq!(now.holder.get(&item), Some(&(odile, fact(11))));
}

#[test]
fn turning_quests_down_cools_the_giver_until_they_offer_none() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let odile = world.character("odile").unwrap();
    let mut log = QuestLog::default();
    let mut refused = 0;
    let why = loop {
        match log.offer(&world, &state, odile, refused, None) {
            Ok(quest) => {
                let id = quest.id;
                log.refuse(id).unwrap();
                refused += 1;
            }
            Err(LogError::NothingToOffer(why)) => break why,
            Err(other) => panic!("{other}"),
        }
        assert!(
            refused < 10,
            "a giver kept offering to a player who refuses all"
        );
    };
    assert!(why.contains("trusts"), "{why}");
    assert_eq!(refused, 3);
    assert_eq!(
        log.player.tone(&world.entities[odile].iri),
        Some("distrusts the player and is curt with them")
    );
    assert_eq!(log.player.history.len(), 3);
    assert!(log.player.history.iter().all(|c| !c.accepted));
}

#[test]
fn a_stored_log_reads_back_and_names_what_canon_lost() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let odile = world.character("odile").unwrap();
    let mut log = QuestLog::default();
    log.offer(&world, &state, odile, 5, None).unwrap();
    log.accept(&world, &state, 0).unwrap();
    let first = log.quests[0].steps[0].action.resolve(&world).unwrap();
    log.event(&world, &state, first, fact(0)).unwrap();
    let stored = serde_json::to_string(&log).unwrap();
    let read: QuestLog = serde_json::from_str(&stored).unwrap();
    assert_eq!(read, log);

    // Canon loses an entity the quest needs: the quest fails, naming it.
    let mut edited: QuestLog = read;
    let gone = edited.quests[0].steps.last().unwrap().action.targets[0].clone();
    for step in &mut edited.quests[0].steps {
        for t in &mut step.action.targets {
            if *t == gone {
                t.push_str("-deleted");
            }
        }
    }
    let failed = edited.recheck(&world, &state);
    let [
        QuestProgress {
            progress: Progress::Failed { reason, .. },
            ..
        },
    ] = failed.as_slice()
    else {
        panic!("{failed:?}")
    };
    assert!(reason.contains("no longer in canon"), "{reason}");
}
