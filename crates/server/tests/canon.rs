//! Writers change canon over HTTP on the real server: edits are commits, the served canon and
//! warm sessions follow them, stale edits are refused naming the triples, reverts restore the
//! earlier canon, and SPARQL reads canon as of a commit.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::*;
use lore_server::Role;
use serde_json::{Value, json};

const ODILE: &str = "<https://lorekeeper.dev/worlds/brindlemoor#odile>";
const PERSONA: &str = "<https://lorekeeper.dev/ns/lore#persona>";
const LANTERNS: &str = "<https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns>";
const SHARED: &str = "<https://lorekeeper.dev/worlds/brindlemoor/graph/shared>";

fn persona_statement(persona: &str, graph: &str) -> String {
    format!("{ODILE} {PERSONA} {} {graph} .", Value::from(persona))
}

#[test]
fn writers_commit_revert_and_read_canon_as_of_a_commit() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let url = |path: &str| format!("{}{path}", server.url);
    let writer = server.key("brindlemoor", Role::Writer);
    let rival = server.key("rival", Role::Writer);
    let player = server.key("brindlemoor", Role::Player);

    // Where Odile's persona lives, as the writer finds it through the commit that added it.
    let log = get(&url("/v1/canon/commits"), Some(&writer)).json();
    let import = log[0]["id"].as_str().unwrap().to_owned();
    let character = url("/v1/productions/lanterns/characters/odile");
    let old_persona = get(&character, Some(&player)).json()["persona"]
        .as_str()
        .unwrap()
        .to_owned();
    let old = persona_statement(&old_persona, SHARED);
    let detail = get(
        &url(&format!("/v1/canon/commits/{}", &import[..8])),
        Some(&writer),
    )
    .json();
    assert!(
        detail["change"]["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == &Value::from(old.clone())),
        "the import's change lists the persona"
    );
    // The rival tenant sees the import (it brought the rival's canon too) but none of ours.
    let theirs = get(&url(&format!("/v1/canon/commits/{import}")), Some(&rival)).json();
    let theirs = theirs["change"]["added"].to_string();
    assert!(
        !theirs.contains("brindlemoor") && theirs.contains("urn:rival:"),
        "{theirs}"
    );

    // A session warm before the edit.
    let session = open_session(&server, &player, "wren");
    let turn = |input: &str| {
        post(
            &url(&format!("/v1/sessions/{session}/turns")),
            Some(&player),
            &json!({"input": input, "stream": false}),
        )
        .json()
    };
    assert_eq!(canon_revision(&turn("Good evening.")), import);

    // The writer edits the persona where it lives: the shared graph, which only brindlemoor's
    // productions read, so its writers may change it. Markup is canon text like any other.
    let new_persona = "Odile Marrow is the Harbour Warden, <b>sharp</b> & tired.";
    let edit = json!({
        "base": import,
        "message": "Odile grows tired",
        "add": [persona_statement(new_persona, SHARED)],
        "remove": [old.clone()],
    });
    let reply = post(&url("/v1/canon/commits"), Some(&writer), &edit);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let edited = reply.json();
    let edited_id = edited["id"].as_str().unwrap().to_owned();
    assert_eq!(edited["added"], 1);
    assert_eq!(edited["removed"], 1);
    assert!(edited["author"].as_str().unwrap().starts_with("key "));
    // Served canon follows at once; the warm session reads it at its next turn.
    assert_eq!(
        get(&character, Some(&player)).json()["persona"],
        new_persona
    );
    assert_eq!(canon_revision(&turn("Are you tired?")), edited_id);

    // The same edit again, made against the import: a conflict naming the persona triple.
    let stale = post(&url("/v1/canon/commits"), Some(&writer), &edit);
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(stale.code(), "conflict");
    assert!(
        stale.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Harbour Warden")
    );
    // Removing what canon does not hold, on the newest base: 409 not_held.
    let gone = post(
        &url("/v1/canon/commits"),
        Some(&writer),
        &json!({"base": edited_id, "message": "x", "remove": [old.clone()]}),
    );
    assert_eq!(
        (gone.status, gone.code().as_str()),
        (409, "not_held"),
        "{}",
        gone.body
    );
    // Malformed statements and unknown fields name the field.
    let bad = post(
        &url("/v1/canon/commits"),
        Some(&writer),
        &json!({"base": "head", "message": "x", "add": ["<urn:a> <urn:b>"]}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("add[0]"), "{}", bad.body);
    let unknown = post(
        &url("/v1/canon/commits"),
        Some(&writer),
        &json!({"base": "head", "message": "x", "ad": []}),
    );
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    // Another studio may not write our graphs, nor the reserved ones.
    let foreign = post(
        &url("/v1/canon/commits"),
        Some(&rival),
        &json!({"base": "head", "message": "x", "add": [persona_statement("Mara's", LANTERNS)]}),
    );
    assert_eq!(
        (foreign.status, foreign.code().as_str()),
        (403, "graph_not_writable")
    );
    let reserved = post(
        &url("/v1/canon/commits"),
        Some(&writer),
        &json!({"base": "head", "message": "x",
                "add": ["<urn:a> <urn:b> \"c\" <https://lorekeeper.dev/ns/lore#history> ."]}),
    );
    assert_eq!(reserved.status, 403, "{}", reserved.body);

    // A second edit on top, then reverting the first alone is refused; together it lands.
    let second = post(
        &url("/v1/canon/commits"),
        Some(&writer),
        &json!({"base": edited_id, "message": "sharper still",
                "add": [persona_statement("Odile, sharper still.", SHARED)],
                "remove": [persona_statement(new_persona, SHARED)]}),
    );
    assert_eq!(second.status, 201, "{}", second.body);
    let blocked = post(
        &url(&format!("/v1/canon/commits/{edited_id}/revert")),
        Some(&writer),
        &json!(null),
    );
    assert_eq!(
        (blocked.status, blocked.code().as_str()),
        (409, "revert_blocked"),
        "{}",
        blocked.body
    );
    let reverted = post(
        &url(&format!(
            "/v1/canon/commits/{edited_id}/revert?with_dependents=true"
        )),
        Some(&writer),
        &json!(null),
    );
    assert_eq!(reverted.status, 201, "{}", reverted.body);
    assert_eq!(reverted.json()["reverts"].as_array().unwrap().len(), 2);
    assert_eq!(
        get(&character, Some(&player)).json()["persona"],
        old_persona
    );
    let net = get(
        &url(&format!("/v1/canon/diff?from={import}&to=head")),
        Some(&writer),
    )
    .json();
    assert_eq!(net, json!({"added": [], "removed": []}));

    // SPARQL as of the edit sees the persona it set.
    let query = format!("SELECT ?p WHERE {{ {ODILE} {PERSONA} ?p }}");
    let as_of = get(
        &url(&format!(
            "/sparql?as_of={edited_id}&query={}",
            urlencode(&query)
        )),
        Some(&writer),
    );
    assert_eq!(as_of.status, 200, "{}", as_of.body);
    assert!(as_of.body.contains("sharp"), "{}", as_of.body);
    let now = get(
        &url(&format!("/sparql?query={}", urlencode(&query))),
        Some(&writer),
    );
    assert!(!now.body.contains("sharp"), "{}", now.body);
    // Players never see history.
    assert_eq!(get(&url("/v1/canon/commits"), Some(&player)).status, 403);
    server.stop();
}

/// The canon commit a turn's signed provenance record names.
fn canon_revision(turn: &Value) -> String {
    let record: Value =
        serde_json::from_str(turn["provenance"]["payload"].as_str().unwrap()).unwrap();
    record["canon_revision"].as_str().unwrap().to_owned()
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
