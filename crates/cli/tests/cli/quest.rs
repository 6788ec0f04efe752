//! `lore quest`: plans with their proofs, alone and in a stored session.

use super::*;

#[test]
fn quest_plans_with_a_proof_and_follows_the_player() {
    let (_dir, store) = sample_store();
    let quest = |extra: &[&str]| {
        let mut args = vec![
            "quest", "--store", &store, "-p", "lanterns", "-c", "odile", "--at", "3", "--json",
        ];
        args.extend_from_slice(extra);
        let run = lore(&args, "");
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()
    };
    let talk = quest(&["--likes", "talk"]);
    let combat = quest(&["--likes", "combat"]);
    assert_eq!(talk["style"], "talk");
    assert_eq!(combat["style"], "combat");
    for q in [&talk, &combat] {
        assert_eq!(q["verified"], true);
        let steps = q["steps"].as_array().unwrap();
        assert!(steps.len() >= 2);
        assert!(
            steps
                .iter()
                .all(|s| !s["proof"].as_array().unwrap().is_empty())
        );
    }
    fails_with(
        &lore(
            &[
                "quest", "--store", &store, "-p", "nocturne", "-c", "aldous", "--at", "12",
            ],
            "",
        ),
        &["Brother Aldous is dead"],
    );
}

#[test]
fn quest_plans_in_a_stored_session_over_what_its_events_changed() {
    use lore_server::db::{Db, SessionRow};
    let (dir, store) = sample_store();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("lore.db").display());
    let base = "https://lorekeeper.dev/worlds/brindlemoor#";
    let fact = "urn:lore:session:s-quest#m1";
    // The player walked Odile from the quay to the Guildhall.
    let log = serde_json::json!({
        "events": [
            {"verb": "goto", "targets": [format!("{base}lantern-quay")], "fact": "urn:lore:session:s-quest#m0"},
            {"verb": "escort", "targets": [format!("{base}odile"), format!("{base}guildhall")], "fact": fact},
        ],
    });
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Db::connect(&url).await.unwrap();
        db.sessions
            .insert(&SessionRow {
                id: "s-quest".into(),
                tenant: "studio".into(),
                owner_key: "k".into(),
                player: "p1".into(),
                production: format!("{base}lanterns"),
                character: format!("{base}odile"),
                beat: Some(2),
                at: None,
                conversation: None,
                turns: 0,
                memory_facts: 2,
                player_state: log.to_string(),
                created_ms: 1,
                updated_ms: 1,
                ended_ms: None,
                likeness_uses: "text".into(),
                territory: None,
            })
            .await
            .unwrap();
        db.close().await;
    });
    let quest = |character: &str| {
        lore(
            &[
                "quest",
                "--store",
                &store,
                "-p",
                "lanterns",
                "-c",
                character,
                "--session",
                "s-quest",
                "--database",
                &url,
                "--json",
            ],
            "",
        )
    };
    let run = quest("odile");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let planned: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(planned["beat"], 2, "the session's beat");
    let proofs: Vec<&str> = planned["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["proof"].as_array().unwrap())
        .map(|p| p["iri"].as_str().unwrap())
        .collect();
    assert!(proofs.contains(&fact), "{proofs:?}");
    fails_with(
        &quest("corvin"),
        &["session s-quest is with", "not with Corvin Dusk"],
    );
}
