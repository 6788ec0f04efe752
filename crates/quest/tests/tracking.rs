//! Quests in play: events advance steps in order, odd events are named, and a world that
//! changes under a running quest fails it with the reason.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

mod common;

use common::world;
use lore_quest::{
    Action, EventError, PlayerModel, Progress, QuestRun, Status, WorldState, event, plan, quests,
};

#[test]
fn steps_advance_in_order_and_the_quest_completes() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let odile = world.character("odile").unwrap();
    for quest in quests(&world, &state, odile) {
        let mut run = QuestRun::new(quest.clone());
        for (i, step) in quest.steps.iter().enumerate() {
            let progress = run.event(&world, &state, step.action);
            if i + 1 == quest.steps.len() {
                assert_eq!(progress, Progress::Completed, "{}", quest.strategy);
            } else {
                assert_eq!(
                    progress,
                    Progress::StepDone { step: i },
                    "{}",
                    quest.strategy
                );
            }
        }
        assert_eq!(run.status, Status::Completed);
        assert_eq!(
            run.event(&world, &state, quest.steps[0].action),
            Progress::Ended
        );
    }
}

#[test]
fn out_of_order_refused_and_unrelated_events_are_named() {
    let world = world("lanterns");
    let state = WorldState::at(&world, Some(3));
    let odile = world.character("odile").unwrap();
    let quest = quests(&world, &state, odile)
        .into_iter()
        .find(|q| q.strategy == "interview a witness" && q.steps.len() == 4)
        .unwrap();
    let mut run = QuestRun::new(quest.clone());
    // Reporting before going anywhere: Odile is at the quay, the player is not.
    let report = quest.steps[3].action;
    let Progress::Refused { reason } = run.event(&world, &state, report) else {
        panic!("a report from nowhere was accepted")
    };
    assert!(reason.contains("not at"), "{reason}");
    // Going to the quay first is the third step, done early.
    assert_eq!(
        run.event(&world, &state, quest.steps[2].action),
        Progress::OutOfOrder {
            expected: 0,
            got: 2
        }
    );
    let elsewhere = event(&world, "goto", &["the Fogmarsh"]).unwrap();
    assert_eq!(run.event(&world, &state, elsewhere), Progress::Unrelated);
    assert_eq!(run.done, 0);
    assert_eq!(run.status, Status::Running);
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
fn a_world_that_changes_under_a_running_quest_fails_it() {
    // The giver dies after the quest is offered.
    let nocturne = world("nocturne");
    let aldous = nocturne.character("aldous").unwrap();
    let before = WorldState::at(&nocturne, Some(2));
    let quest = plan(&nocturne, &before, aldous, &PlayerModel::default(), 3).unwrap();
    let mut run = QuestRun::new(quest.clone());
    assert_eq!(run.recheck(&nocturne, &before), Progress::Possible);
    let Progress::Failed { reason, .. } =
        run.recheck(&nocturne, &WorldState::at(&nocturne, Some(12)))
    else {
        panic!("a dead giver's quest still runs")
    };
    assert!(reason.contains("dead"), "{reason}");
    assert!(matches!(run.status, Status::Failed(_)));
    assert_eq!(
        run.event(&nocturne, &before, quest.steps[0].action),
        Progress::Ended
    );

    // Canon is edited so that an item the quest needs is no longer where it lay.
    let lanterns = world("lanterns");
    let state = WorldState::at(&lanterns, Some(3));
    let corvin = lanterns.character("corvin").unwrap();
    let fetch = quests(&lanterns, &state, corvin)
        .into_iter()
        .find(|q| {
            q.steps
                .iter()
                .any(|s| matches!(s.action, Action::Get { .. }))
        })
        .expect("Corvin can ask for something fetched");
    let Some(Action::Get { item }) = fetch
        .steps
        .iter()
        .map(|s| s.action)
        .find(|a| matches!(a, Action::Get { .. }))
    else {
        unreachable!()
    };
    let mut edited = state.clone();
    edited.location.remove(&item);
    let mut run = QuestRun::new(fetch);
    let Progress::Failed { reason, .. } = run.recheck(&lanterns, &edited) else {
        panic!("the quest survived losing its item")
    };
    assert!(reason.contains("does not say where"), "{reason}");
}
