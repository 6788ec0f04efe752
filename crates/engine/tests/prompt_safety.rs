//! No assembled prompt contains a writer-only note, a fact's giveaways, or a fact its speaker
//! does not know at the session's beat: checked for every character of the sample world, at
//! every beat, for player lines naming every entity.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::path::PathBuf;
use std::sync::Arc;

use lore_canon::{CanonStore, EntityKind, QueryOutput, Resolved, World};
use lore_engine::{SessionOptions, TurnPlanner};
use oxigraph::model::Term;

fn sample_store() -> CanonStore {
    let world = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../world/brindlemoor.trig");
    let store = CanonStore::in_memory().unwrap();
    store
        .import(
            &[world],
            lore_canon::CommitMeta::new("test", "import"),
            |_| (),
        )
        .unwrap();
    store
}

fn writer_notes(store: &CanonStore) -> Vec<String> {
    let QueryOutput::Solutions { rows, .. } = store
        .query("SELECT ?note WHERE { GRAPH ?g { ?s <https://lorekeeper.dev/ns/lore#writerNote> ?note } }")
        .unwrap()
    else {
        panic!("expected solutions")
    };
    rows.into_iter()
        .map(|r| match &r[0] {
            Some(Term::Literal(l)) => l.value().to_owned(),
            other => panic!("{other:?}"),
        })
        .collect()
}

const BEATS: [Option<i64>; 9] = [
    None,
    Some(1),
    Some(2),
    Some(3),
    Some(4),
    Some(5),
    Some(10),
    Some(11),
    Some(12),
];

#[test]
fn no_prompt_leaks_notes_or_unknown_facts() {
    let store = sample_store();
    let notes = writer_notes(&store);
    assert!(
        notes.len() >= 5,
        "the sample world should exercise writer notes"
    );
    let mut checked = 0;
    for production in ["lanterns", "nocturne"] {
        let world = Arc::new(World::load(&store, production).unwrap());
        let everyone: Vec<String> = world
            .entities
            .iter()
            .map(|e| format!("Tell me about {}.", e.name))
            .collect();
        for (character, entity) in world.entities.iter().enumerate() {
            if entity.kind != EntityKind::Character {
                continue;
            }
            for beat in BEATS {
                let planner = TurnPlanner::new(
                    world.clone(),
                    Resolved { character, beat },
                    SessionOptions {
                        facts_per_turn: 100,
                        ..SessionOptions::default()
                    },
                )
                .unwrap();
                for input in everyone.iter().chain([&everyone.join(" ")]) {
                    let (conversation, _) = planner.plan(input, &Default::default());
                    let prompts = [
                        conversation.transcript(),
                        format!("{:?}", conversation.messages()),
                    ];
                    for prompt in &prompts {
                        for note in &notes {
                            assert!(
                                !prompt.contains(note.as_str()),
                                "writer note in {}'s prompt: {note}",
                                entity.name
                            );
                        }
                        for fact in &world.facts {
                            for giveaway in &fact.giveaways {
                                assert!(
                                    !prompt.contains(giveaway.as_str()),
                                    "a giveaway of <{}> in {}'s prompt: {giveaway}",
                                    fact.iri,
                                    entity.name
                                );
                            }
                            if !(fact.span.holds_at(beat) && fact.known_by(character, beat)) {
                                assert!(
                                    !prompt.contains(fact.statement.as_str()),
                                    "{} at {beat:?} in {production} must not see <{}>",
                                    entity.name,
                                    fact.iri
                                );
                            }
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 500, "{checked}");
}

fn context(
    store: &CanonStore,
    production: &str,
    character: &str,
    beat: Option<&str>,
    input: &str,
) -> Vec<String> {
    let world = Arc::new(World::load(store, production).unwrap());
    let resolved = world.resolve(store, character, beat).unwrap();
    let planner = TurnPlanner::new(world, resolved, SessionOptions::default()).unwrap();
    let context = planner.context(input);
    context
        .standing
        .facts
        .iter()
        .chain(&context.retrieved)
        .map(|f| f.iri.rsplit('#').next().unwrap().to_owned())
        .collect()
}

#[test]
fn pip_learns_the_thiefs_secret_at_the_chase() {
    let store = sample_store();
    let before = context(&store, "lanterns", "pip", Some("2"), "Is Corvin a friend?");
    assert!(!before.contains(&"fact-corvin-thief".to_owned()));
    let theft = context(
        &store,
        "lanterns",
        "pip",
        Some("The Night of the Theft"),
        "Is Corvin a friend?",
    );
    assert!(!theft.contains(&"fact-corvin-thief".to_owned()));
    let after = context(&store, "lanterns", "pip", Some("4"), "Is Corvin a friend?");
    assert!(after.contains(&"fact-corvin-thief".to_owned()), "{after:?}");
    assert!(
        after.contains(&"rel-pip-corvin-after".to_owned()),
        "{after:?}"
    );
    assert!(!after.contains(&"rel-pip-corvin".to_owned()));
}

#[test]
fn the_everlight_moves_over_story_time() {
    let store = sample_store();
    let at = |beat: &str, who: &str| {
        context(
            &store,
            "lanterns",
            who,
            Some(beat),
            "Where is the Everlight?",
        )
    };
    assert!(at("2", "odile").contains(&"fact-everlight-in-guildhall".to_owned()));
    let odile_4 = at("4", "odile");
    assert!(odile_4.contains(&"fact-everlight-stolen".to_owned()));
    assert!(
        !odile_4.contains(&"fact-everlight-hidden".to_owned()),
        "Odile does not know where it is hidden"
    );
    assert!(at("4", "pip").contains(&"fact-everlight-hidden".to_owned()));
    let odile_5 = at("5", "odile");
    assert!(odile_5.contains(&"fact-everlight-returned".to_owned()));
    assert!(!odile_5.contains(&"fact-everlight-stolen".to_owned()));
}

#[test]
fn the_shared_character_differs_per_production() {
    let store = sample_store();
    let lanterns = World::load(&store, "lanterns").unwrap();
    let nocturne = World::load(&store, "Brindlemoor Nocturne").unwrap();
    let odile = |w: &World| w.entities[w.character("odile").unwrap()].clone();
    assert_ne!(odile(&lanterns).persona, odile(&nocturne).persona);
    assert!(odile(&nocturne).persona.unwrap().contains("dismissed"));
    // Properties the production does not override stay shared.
    assert_eq!(odile(&lanterns).aliases, odile(&nocturne).aliases);
    let rum = context(
        &store,
        "nocturne",
        "odile",
        Some("11"),
        "Fancy a drink at the Salt Cellar?",
    );
    assert!(rum.contains(&"fact-odile-rum".to_owned()));
    assert!(
        !context(&store, "lanterns", "odile", Some("2"), "the Salt Cellar?")
            .contains(&"fact-odile-rum".to_owned())
    );
    // A superseded shared fact is gone from the production that supersedes it.
    assert!(
        !nocturne
            .facts
            .iter()
            .any(|f| f.iri.ends_with("fact-odile-quay"))
    );
    assert!(
        lanterns
            .facts
            .iter()
            .any(|f| f.iri.ends_with("fact-odile-quay"))
    );
}

#[test]
fn tamsin_never_learns_the_mayors_secret() {
    let store = sample_store();
    for beat in ["10", "11", "12"] {
        let facts = context(
            &store,
            "nocturne",
            "tamsin",
            Some(beat),
            "What about Hestia Brandt and the Fogrunners?",
        );
        assert!(!facts.contains(&"fact-hestia-patron".to_owned()));
    }
    let silas = context(
        &store,
        "nocturne",
        "silas",
        Some("11"),
        "What about Hestia Brandt?",
    );
    assert!(silas.contains(&"fact-hestia-patron".to_owned()));
}
