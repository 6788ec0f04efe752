//! Quest write-ups on the real model: every quest the sample world's characters can give
//! gets one within the schema's bounds, from the model or, where that fails the checks, from
//! the plan's own words.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::path::PathBuf;
use std::sync::Arc;

use lore_canon::{CanonStore, World};
use lore_engine::{SessionOptions, TurnPlanner, write_up_schema};
use lore_gen::{Backend, EmbeddedBackend, EmbeddedConfig};
use lore_quest::{LoggedQuest, WorldState, quests};

fn model_path() -> PathBuf {
    std::env::var_os("LORE_MODEL").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/lorekeeper/models/gemma-3-270m-q4_k_m.gguf")
        },
        PathBuf::from,
    )
}

/// The sample world's store and its Lanterns production.
fn lanterns() -> (CanonStore, Arc<World>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../world");
    let store = CanonStore::in_memory().unwrap();
    store
        .import(
            &[root.join("policy.trig"), root.join("brindlemoor.trig")],
            lore_canon::CommitMeta::new("test", "import"),
            |_| (),
        )
        .unwrap();
    let world = Arc::new(World::load(&store, "lanterns").unwrap());
    (store, world)
}

#[test]
fn every_quest_gets_a_write_up_within_its_schema() {
    let (store, world) = lanterns();
    let mut config = EmbeddedConfig::new(model_path());
    config.n_ctx = 4096;
    let backend = EmbeddedBackend::load(config).unwrap();
    let schema = write_up_schema();
    let mut by_model = 0;
    let mut written = 0;
    for character in ["odile", "corvin"] {
        let resolved = world.resolve(&store, character, Some("2")).unwrap();
        let planner = TurnPlanner::new(world.clone(), resolved, SessionOptions::default()).unwrap();
        let state = WorldState::at(&world, resolved.beat);
        let mut session = backend.open_session().unwrap();
        for (i, quest) in quests(&world, &state, resolved.character)
            .iter()
            .take(3)
            .enumerate()
        {
            let logged = LoggedQuest::new(&world, i, quest);
            let write_up = planner.write_up(&mut *session, &backend.info(), &logged, None);
            let value = serde_json::json!({
                "title": write_up.title,
                "hook": write_up.hook,
                "lines": write_up.lines,
            });
            assert_eq!(schema.check(&value), Ok(()), "{value}");
            match write_up.written_by.as_str() {
                "model" => by_model += 1,
                "plan" => assert!(write_up.lines[0].contains(&logged.steps[0].text)),
                other => panic!("written by {other}"),
            }
            eprintln!("{}: {value}", write_up.written_by);
            written += 1;
        }
    }
    assert_eq!(written, 6);
    eprintln!("{by_model} of {written} written by the model");
}

/// A backend session that answers with fixed texts: tests the checks around generation.
struct Canned(Vec<String>);

impl lore_gen::Session for Canned {
    fn generate(
        &mut self,
        _: &lore_gen::Conversation,
        _: &lore_gen::GenParams,
        _: &mut dyn FnMut(&str) -> bool,
    ) -> Result<lore_gen::Generation, lore_gen::GenError> {
        Ok(lore_gen::Generation::scripted(self.0.remove(0)))
    }
}

#[test]
fn a_write_up_that_strays_from_its_quest_is_replaced_by_the_plans_words() {
    let (store, world) = lanterns();
    let resolved = world.resolve(&store, "odile", Some("2")).unwrap();
    let planner = TurnPlanner::new(world.clone(), resolved, SessionOptions::default()).unwrap();
    let state = WorldState::at(&world, resolved.beat);
    let quest = quests(&world, &state, resolved.character)
        .into_iter()
        .find(|q| {
            q.targets()
                .iter()
                .any(|&t| world.entities[t].name == "Pip Tallow")
        })
        .unwrap();
    let logged = LoggedQuest::new(&world, 0, &quest);
    let info = lore_gen::BackendInfo {
        kind: "test",
        model: String::new(),
        chat_template: false,
        model_sha256: None,
    };
    let written = |text: &str| {
        planner
            .write_up(&mut Canned(vec![text.to_owned()]), &info, &logged, None)
            .written_by
    };
    let good = r#"{"title": "A word with Pip", "hook": "Pip Tallow saw something, love.", "lines": ["Find Pip Tallow at the Guildhall."]}"#;
    assert_eq!(written(good), "model");
    for stray in [
        // Names someone the quest is not about.
        r#"{"title": "A word with Pip", "hook": "Ask Corvin Dusk, love.", "lines": ["Find Pip Tallow."]}"#,
        // Names nothing the quest is about.
        r#"{"title": "An errand", "hook": "I need a hand, love.", "lines": ["Off you go."]}"#,
        // All but empty.
        r#"{"title": " ", "hook": "Pip Tallow saw something.", "lines": ["Go."]}"#,
        // Not JSON at all (a server that ignored the schema).
        "Pip Tallow? Go and ask him.",
    ] {
        assert_eq!(written(stray), "plan", "{stray}");
    }
}
