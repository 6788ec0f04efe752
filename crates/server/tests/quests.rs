//! Quests over HTTP on the real server and model: offered with a proof and a write-up decoded
//! under its JSON schema, advanced by game events, failed and replaced when the session's
//! events make them impossible, and told on the session's event stream.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use lore_server::Role;
use serde_json::{Value, json};

/// The kinds of `events` (a quest route's answer).
fn kinds(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn quests_are_offered_tracked_failed_replaced_and_streamed() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let key = server.key("brindlemoor", Role::Player);
    let id = open_session(&server, &key, "wren");
    let url = |path: &str| format!("{}/v1/sessions/{id}{path}", server.url);

    // A listener on the session's events, from the start.
    let (seen, heard) = mpsc::channel();
    let stream_url = url("/events");
    let stream_key = key.clone();
    std::thread::spawn(move || {
        let mut events = Events::get(&stream_url, &stream_key);
        while let Some((name, data)) = events.next_event() {
            let data: Value = serde_json::from_str(&data).unwrap();
            if seen.send((name, data)).is_err() {
                break;
            }
        }
    });

    // Offered: a plan with a proof for every step, written up in the giver's voice.
    let offer = post(&url("/quests?seed=3"), Some(&key), &json!({}));
    assert_eq!(offer.status, 201, "{}", offer.body);
    let offer = offer.json();
    let quest = &offer["quest"];
    assert_eq!(quest["status"], "offered");
    let steps = quest["steps"].as_array().unwrap().clone();
    assert!(steps.len() >= 2, "{quest}");
    assert!(
        steps
            .iter()
            .all(|s| !s["proof"].as_array().unwrap().is_empty())
    );
    let write_up = &quest["write_up"];
    assert!(
        ["model", "plan"].contains(&write_up["written_by"].as_str().unwrap()),
        "{write_up}"
    );
    let title = write_up["title"].as_str().unwrap();
    assert!(!title.is_empty() && title.chars().count() <= 48, "{title}");
    let lines = write_up["lines"].as_array().unwrap();
    assert!((1..=2).contains(&lines.len()), "{write_up}");
    // Signed as a quest over the write-up's content, which /v1/verify checks.
    let record: Value =
        serde_json::from_str(write_up["provenance"]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(record["artefact"], "quest", "{record}");
    let content = json!({
        "title": write_up["title"],
        "hook": write_up["hook"],
        "lines": write_up["lines"],
    })
    .to_string();
    let verdict = post(
        &format!("{}/v1/verify", server.url),
        Some(&key),
        &json!({"text": content, "provenance": write_up["provenance"]}),
    );
    assert_eq!(
        verdict.json()["provenance"]["valid"],
        true,
        "{}",
        verdict.body
    );
    let mut told = kinds(&offer["events"]);
    assert_eq!(told, ["quest_offered"]);

    let accepted = post(&url("/quests/0/accept"), Some(&key), &json!({}));
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(accepted.json()["quest"]["status"], "running");
    told.extend(kinds(&accepted.json()["events"]));
    for (path, status, code) in [
        ("/quests/0/accept", 409, "quest_not_offered"),
        ("/quests/9/accept", 404, "unknown_quest"),
        ("/quests/0/shrug", 404, "unknown_route"),
    ] {
        let reply = post(&url(path), Some(&key), &json!({}));
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{path}"
        );
    }

    // Bad events are named and change nothing.
    let last = steps.last().unwrap();
    for (body, status, needle) in [
        (
            json!({"action": "dance", "targets": ["Odile"]}),
            400,
            "unknown action",
        ),
        (
            json!({"action": "give", "targets": ["the Sunstone", "Odile"]}),
            400,
            "Sunstone",
        ),
        (
            json!({"action": "give", "targets": ["Odile"]}),
            400,
            "takes 2",
        ),
        // Reporting before setting out: the player is not where Odile is.
        (
            json!({"action": last["action"], "targets": last["targets"]}),
            409,
            "not at",
        ),
    ] {
        let reply = post(&url("/events"), Some(&key), &body);
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert!(reply.body.contains(needle), "{body}: {}", reply.body);
    }

    // The steps, in order, as game events: each done, the last completes it, and Odile,
    // pleased, says so on every later turn.
    for (i, step) in steps.iter().enumerate() {
        let reply = post(
            &url("/events"),
            Some(&key),
            &json!({"action": step["action"], "targets": step["targets"]}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let got = kinds(&reply.json()["events"]);
        let expected: Vec<&str> = if i + 1 == steps.len() {
            vec!["event_recorded", "quest_completed", "regard_changed"]
        } else {
            vec!["event_recorded", "step_done"]
        };
        assert_eq!(got, expected, "step {i}");
        told.extend(got);
    }
    let quests = get(&url("/quests"), Some(&key)).json();
    assert_eq!(quests["quests"][0]["status"], "completed");
    assert_eq!(quests["quests"][0]["done"], steps.len());
    assert_eq!(quests["events"], steps.len());
    assert!(
        quests["regard"]
            .as_object()
            .unwrap()
            .values()
            .all(|r| r.as_f64().unwrap() > 0.0)
    );

    // A second quest; then the player walks Odile off to the Guildhall, so that nothing can
    // be reported to her where the plan said she would be: it fails, and she offers another
    // planned over where she is now, which the session's own fact proves.
    let offer = post(&url("/quests"), Some(&key), &json!({}));
    assert_eq!(offer.status, 201, "{}", offer.body);
    told.extend(kinds(&offer.json()["events"]));
    let accepted = post(&url("/quests/1/accept"), Some(&key), &json!({}));
    told.extend(kinds(&accepted.json()["events"]));
    let escort = post(
        &url("/events"),
        Some(&key),
        &json!({"action": "escort", "targets": ["Odile Marrow", "the Guildhall"]}),
    );
    assert_eq!(escort.status, 200, "{}", escort.body);
    let escort = escort.json();
    let got = kinds(&escort["events"]);
    assert_eq!(got, ["event_recorded", "quest_failed", "quest_offered"]);
    told.extend(got);
    let failed = &escort["events"][1];
    assert_eq!(failed["quest"], 1);
    assert!(
        failed["reason"].as_str().unwrap().contains("Guildhall"),
        "{failed}"
    );
    let escort_fact = escort["events"][0]["fact"].as_str().unwrap().to_owned();
    let quests = get(&url("/quests"), Some(&key)).json();
    let replacement = &quests["quests"][2];
    assert_eq!(replacement["replaces"], 1);
    assert_eq!(replacement["status"], "offered");
    let proofs: Vec<&str> = replacement["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["proof"].as_array().unwrap())
        .map(|p| p["iri"].as_str().unwrap())
        .collect();
    assert!(
        proofs.contains(&escort_fact.as_str()),
        "{proofs:?} lacks {escort_fact}"
    );

    // The listener heard every event, in order; a late reader replays them from the store.
    let mut heard_kinds = Vec::new();
    while heard_kinds.len() < told.len() {
        let (name, data) = heard.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(data["kind"], name.as_str());
        heard_kinds.push(name);
    }
    assert_eq!(heard_kinds, told);
    let replay = call(
        "GET",
        &url("/events?follow=false&after=2"),
        Some(&key),
        None,
        None,
    );
    assert_eq!(replay.status, 200);
    assert_eq!(
        replay.body.matches("\nid: ").count() + usize::from(replay.body.starts_with("id: ")),
        told.len() - 3,
        "{}",
        replay.body
    );

    // What happened is in the session's graph, and a turn after it still records.
    let session = get(&url(""), Some(&key)).json();
    let memory = session["memory"].as_array().unwrap();
    assert!(
        memory
            .iter()
            .any(|m| m["kind"] == "regard" && m["text"].as_str().unwrap().contains("grateful"))
    );
    assert!(memory.iter().any(|m| {
        m["iri"] == escort_fact.as_str()
            && m["text"]
                .as_str()
                .unwrap()
                .contains("escort Odile Marrow to the Guildhall")
    }));
    // Odile recalls it when asked, and her regard for the player is with her on every turn.
    let turn = post(
        &url("/turns"),
        Some(&key),
        &json!({"input": "Remember when I walked you to the Guildhall?"}),
    );
    assert_eq!(turn.status, 200, "{}", turn.body);
    let used: Vec<String> = turn.json()["facts_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert!(used.contains(&escort_fact), "{used:?}");
    let regard_fact = memory.iter().find(|m| m["kind"] == "regard").unwrap()["iri"]
        .as_str()
        .unwrap();
    assert!(used.iter().any(|f| f == regard_fact), "{used:?}");
    server.stop();
}
