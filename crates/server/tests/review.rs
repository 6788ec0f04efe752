//! The writers' review queue on the real server: a session's fact proposed for canon with its
//! source, accepted after an edit as a commit, decided once under concurrent reviews, rails on
//! proposals, rejection with a reason, and everything in the audit log.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeSet;

use common::*;
use lore_server::Role;
use serde_json::{Value, json};

const LANTERNS: &str = "<https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns>";

fn statement_quad(subject: &str, text: &str) -> String {
    format!(
        "<https://lorekeeper.dev/worlds/brindlemoor#{subject}> <https://lorekeeper.dev/ns/lore#statement> {} {LANTERNS} .",
        Value::from(text)
    )
}

#[test]
fn proposals_are_reviewed_once_committed_on_accept_and_audited() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let url = |path: &str| format!("{}{path}", server.url);
    let player = server.key("brindlemoor", Role::Player);
    let writer = server.key("brindlemoor", Role::Writer);
    let other_writer = server.key("brindlemoor", Role::Writer);
    let rival = server.key("rival", Role::Writer);

    // A session learns something: a turn, then a game event.
    let session = open_session(&server, &player, "wren");
    let turn = post(
        &url(&format!("/v1/sessions/{session}/turns")),
        Some(&player),
        &json!({"input": "Good evening, Warden.", "stream": false}),
    );
    assert_eq!(turn.status, 200, "{}", turn.body);
    go_to_the_guildhall(&server, &player, &session);
    let memory =
        get(&url(&format!("/v1/sessions/{session}")), Some(&player)).json()["memory"].clone();
    let fact = memory
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"].as_str().unwrap().contains("Guildhall"))
        .unwrap()
        .clone();

    // The game (the session's owner) proposes it; a stranger cannot.
    let proposals = url(&format!("/v1/sessions/{session}/proposals"));
    let body = json!({"fact": fact["iri"]});
    assert_eq!(post(&proposals, Some(&other_writer), &body).status, 404);
    let missing = post(
        &proposals,
        Some(&player),
        &json!({"fact": "urn:lore:session:x#m999"}),
    );
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "unknown_fact")
    );
    let proposed = post(&proposals, Some(&player), &body);
    assert_eq!(proposed.status, 201, "{}", proposed.body);
    let proposed = proposed.json();
    let id = proposed["id"].as_str().unwrap().to_owned();
    assert_eq!(proposed["kind"], "session_fact");
    assert_eq!(proposed["status"], "pending");
    assert_eq!(proposed["source"]["session"], Value::from(session.clone()));
    assert_eq!(proposed["source"]["excerpt"][0], "Good evening, Warden.");
    assert!(proposed["source"]["provenance"].is_string());
    assert_eq!(proposed["rails_blocked"], false);
    let added = proposed["change"]["added"].to_string();
    assert!(
        added.contains("lore#knownBy") && added.contains("brindlemoor#odile"),
        "{added}"
    );

    // Writers see the queue; players and other studios do not.
    let queue = get(&url("/v1/proposals?status=pending"), Some(&writer)).json();
    assert_eq!(queue[0]["id"], Value::from(id.clone()));
    assert_eq!(get(&url("/v1/proposals"), Some(&player)).status, 403);
    assert_eq!(
        get(&url(&format!("/v1/proposals/{id}")), Some(&rival)).status,
        404
    );
    assert_eq!(
        get(&url("/v1/proposals?status=maybe"), Some(&writer)).status,
        400
    );

    // Accepted after an edit: the writer's wording becomes canon, in one commit that carries
    // the session's provenance.
    let subject = fact_subject(&proposed);
    let edited_text = "The player walked to the Guildhall <at dusk> & waited.";
    let mut edited_add: Vec<String> = proposed["change"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap().to_owned())
        .filter(|q| !q.contains("lore#statement"))
        .collect();
    edited_add.push(statement_quad(&subject, edited_text));
    let accepted = post(
        &url(&format!("/v1/proposals/{id}/accept")),
        Some(&writer),
        &json!({"add": edited_add, "message": "Wren's visit is canon"}),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let accepted = accepted.json();
    assert_eq!(accepted["status"], "accepted");
    let commit = accepted["commit"].as_str().unwrap().to_owned();
    let detail = get(&url(&format!("/v1/canon/commits/{commit}")), Some(&writer)).json();
    assert_eq!(detail["commit"]["message"], "Wren's visit is canon");
    assert_eq!(
        detail["commit"]["provenance"],
        proposed["source"]["provenance"]
    );
    assert!(detail["change"]["added"].to_string().contains("at dusk"));
    assert!(accepted["change"]["added"].to_string().contains("at dusk"));
    // Deciding it again: 409, whoever asks.
    for (route, body) in [("accept", json!({})), ("reject", json!({"reason": "late"}))] {
        let again = post(
            &url(&format!("/v1/proposals/{id}/{route}")),
            Some(&other_writer),
            &body,
        );
        assert_eq!(
            (again.status, again.code().as_str()),
            (409, "already_decided"),
            "{route}"
        );
    }

    // Two writers decide the same proposal at once: exactly one wins.
    let material = |text: &str| {
        post(
            &url("/v1/proposals"),
            Some(&writer),
            &json!({"production": "lanterns", "summary": text,
                    "add": [statement_quad("fact-rumour", text)]}),
        )
    };
    let contested = material("A rumour says the fog came early this year.").json();
    let contested_id = contested["id"].as_str().unwrap().to_owned();
    let outcomes: BTreeSet<u16> = std::thread::scope(|scope| {
        let accept = scope.spawn(|| {
            post(
                &url(&format!("/v1/proposals/{contested_id}/accept")),
                Some(&writer),
                &json!({}),
            )
            .status
        });
        let reject = scope.spawn(|| {
            post(
                &url(&format!("/v1/proposals/{contested_id}/reject")),
                Some(&other_writer),
                &json!({"reason": "not now"}),
            )
            .status
        });
        [accept.join().unwrap(), reject.join().unwrap()]
            .into_iter()
            .collect()
    });
    assert_eq!(outcomes, BTreeSet::from([200, 409]), "one decision wins");

    // Rails run on proposals: off-limits text (romance in a title for young readers) cannot be
    // accepted as it stands, only after an edit that passes.
    let romance = material("Odile and Quillon fall in love and kiss on the quay.");
    assert_eq!(romance.status, 201, "{}", romance.body);
    let romance = romance.json();
    assert_eq!(romance["rails_blocked"], true, "{romance}");
    assert!(!romance["rails"].as_array().unwrap().is_empty());
    let romance_id = romance["id"].as_str().unwrap();
    let refused = post(
        &url(&format!("/v1/proposals/{romance_id}/accept")),
        Some(&writer),
        &json!({}),
    );
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (422, "rails_blocked"),
        "{}",
        refused.body
    );
    let cleaned = post(
        &url(&format!("/v1/proposals/{romance_id}/accept")),
        Some(&writer),
        &json!({"add": [statement_quad("fact-rumour-2", "Odile and Quillon argue on the quay.")]}),
    );
    assert_eq!(cleaned.status, 200, "{}", cleaned.body);

    // Rejected with a reason (none: 400); deferred stays open.
    let doubtful = material("The Everlight is a fake.").json();
    let doubtful_id = doubtful["id"].as_str().unwrap();
    let reject = url(&format!("/v1/proposals/{doubtful_id}/reject"));
    assert_eq!(post(&reject, Some(&writer), &json!({})).status, 400);
    let deferred = post(
        &url(&format!("/v1/proposals/{doubtful_id}/defer")),
        Some(&writer),
        &json!({}),
    );
    assert_eq!(deferred.json()["status"], "deferred");
    let rejected = post(
        &reject,
        Some(&writer),
        &json!({"reason": "contradicts book two"}),
    );
    assert_eq!(rejected.json()["reason"], "contradicts book two");

    // Material for another studio's graph, or nothing at all, is refused at once.
    let foreign = post(
        &url("/v1/proposals"),
        Some(&writer),
        &json!({"production": "lanterns", "summary": "x",
                "add": ["<urn:rival:mara> <https://lorekeeper.dev/ns/lore#persona> \"x\" <urn:rival:g> ."]}),
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let empty = post(
        &url("/v1/proposals"),
        Some(&writer),
        &json!({"production": "lanterns", "summary": "x"}),
    );
    assert_eq!(empty.status, 400);

    // A character the writer asks the model for: drafted under a schema, signed, judged by
    // the rails, and canon once accepted. The 270M base model often drafts something unusable
    // (a sentence for a name, a name canon has): each such draft is refused with 422 naming
    // why, and another seed drafts again.
    let mut drafted = None;
    for seed in 0..12 {
        let reply = post(
            &url("/v1/proposals/character"),
            Some(&writer),
            &json!({"production": "lanterns", "brief": "A ferryman who smuggles lamp oil.", "seed": seed}),
        );
        match reply.status {
            201 => {
                drafted = Some(reply.json());
                break;
            }
            422 => {
                assert_eq!(reply.code(), "draft_failed", "{}", reply.body);
                assert!(reply.body.contains("the draft"), "{}", reply.body);
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    if let Some(drafted) = drafted {
        assert_eq!(drafted["kind"], "character");
        let signed: Value =
            serde_json::from_str(drafted["source"]["provenance"].as_str().unwrap()).unwrap();
        let record: Value = serde_json::from_str(signed["payload"].as_str().unwrap()).unwrap();
        assert_eq!(record["artefact"], "character");
        assert!(
            record["digital_source_type"]
                .as_str()
                .unwrap()
                .ends_with("trainedAlgorithmicMedia")
        );
        let added = drafted["change"]["added"].to_string();
        assert!(
            added.contains("lore#Character") && added.contains("lore#appearsIn"),
            "{added}"
        );
        if drafted["rails_blocked"] == false {
            let id = drafted["id"].as_str().unwrap();
            let accepted = post(
                &url(&format!("/v1/proposals/{id}/accept")),
                Some(&writer),
                &json!({}),
            );
            assert_eq!(accepted.status, 200, "{}", accepted.body);
            let name = drafted["summary"]
                .as_str()
                .unwrap()
                .trim_start_matches("New character: ");
            let characters = get(&url("/v1/productions/lanterns/characters"), Some(&player)).body;
            assert!(
                characters.contains(name),
                "{name} not served after acceptance: {characters}"
            );
        }
    }
    let ask = |key: &str, brief: &str| {
        post(
            &url("/v1/proposals/character"),
            Some(key),
            &json!({"production": "lanterns", "brief": brief}),
        )
        .status
    };
    assert_eq!(ask(&writer, " "), 400);
    assert_eq!(ask(&player, "a ferryman"), 403);
    assert_eq!(
        ask(&rival, "a ferryman"),
        404,
        "another studio's production is unknown"
    );

    // Undoing the accepted fact is a revert like any other.
    let revert = post(
        &url(&format!("/v1/canon/commits/{commit}/revert")),
        Some(&writer),
        &json!(null),
    );
    assert_eq!(revert.status, 201, "{}", revert.body);

    // The audit log has all of it, newest first, for this tenant only.
    let audit = get(&url("/v1/audit"), Some(&writer)).json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for action in [
        "proposal_created",
        "proposal_accepted",
        "proposal_rejected",
        "proposal_deferred",
        "canon_revert",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert_eq!(actions[0], "canon_revert");
    assert_eq!(get(&url("/v1/audit"), Some(&rival)).json(), json!([]));
    server.stop();
}

/// The local name of the fact a proposal adds (`fact-...`).
fn fact_subject(proposal: &Value) -> String {
    let first = proposal["change"]["added"][0].as_str().unwrap();
    let iri = first.split('>').next().unwrap();
    iri.rsplit('#').next().unwrap().to_owned()
}
