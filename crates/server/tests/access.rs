//! Every route × role × tenant: what each key may do, and what it may not even see.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::*;
use lore_server::Role;
use serde_json::json;

#[test]
fn every_route_enforces_role_and_tenant() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let url = |path: &str| format!("{}{path}", server.url);
    // The brindlemoor player owns the session every caller tries.
    let owner = server.key("brindlemoor", Role::Player);
    let session = open_session(&server, &owner, "owner");
    let roles = [Role::Player, Role::Writer, Role::Admin];
    let home_writer = server.key("brindlemoor", Role::Writer);
    let mut callers = vec![("brindlemoor", Role::Player, owner.clone())];
    for tenant in ["brindlemoor", "rival"] {
        for role in roles {
            if !(tenant == "brindlemoor" && role == Role::Player) {
                callers.push((tenant, role, server.key(tenant, role)));
            }
        }
    }
    let sparql = "/sparql?query=ASK%20%7B%20%3Fs%20%3Fp%20%3Fo%20%7D";
    let mut checked = 0;
    for (tenant, role, key) in &callers {
        let home = *tenant == "brindlemoor";
        let is_owner = *key == owner;
        let admin = *role == Role::Admin;
        let writer = *role >= Role::Writer;
        let seen = |yes: u16, no: u16| if home { yes } else { no };
        // A throwaway session and key for the destructive routes.
        let doomed_session = open_session(&server, &owner, "doomed");
        let doomed_key = server.key("brindlemoor", Role::Player);
        let doomed_key_id = doomed_key.split('_').nth(1).unwrap().to_owned();
        // Proposals for the review routes, each decided at most once.
        let proposal = |n: &str| {
            post(
                &url("/v1/proposals"),
                Some(&home_writer),
                &json!({"production": "lanterns", "summary": n,
                        "add": [format!("<urn:x:{n}> <urn:x:p> \"{tenant} {role:?}\" <https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns> .")]}),
            )
            .json()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let (to_read, to_accept, to_reject) =
            (proposal("read"), proposal("accept"), proposal("reject"));
        let writes = |ok: u16| match (writer, home) {
            (false, _) => 403,
            (true, true) => ok,
            (true, false) => 404,
        };
        let cases: Vec<(&str, String, Option<serde_json::Value>, u16)> = vec![
            ("GET", url("/v1/productions"), None, (200)),
            ("GET", url("/v1/productions/lanterns"), None, seen(200, 404)),
            (
                "GET",
                url("/v1/productions/lanterns/characters"),
                None,
                seen(200, 404),
            ),
            (
                "GET",
                url("/v1/productions/lanterns/characters/odile"),
                None,
                seen(200, 404),
            ),
            (
                "POST",
                url("/v1/productions/lanterns/characters/odile/rails"),
                Some(json!({"text": "Good evening."})),
                writes(200),
            ),
            (
                "POST",
                url("/v1/sessions"),
                Some(json!({"production": "lanterns", "character": "odile", "player": "x"})),
                seen(201, 404),
            ),
            ("GET", url("/v1/sessions"), None, (200)),
            (
                "GET",
                url(&format!("/v1/sessions/{session}")),
                None,
                (if home && (is_owner || admin) {
                    200
                } else {
                    404
                }),
            ),
            (
                "POST",
                url(&format!("/v1/sessions/{session}/turns")),
                Some(json!({"input": "Good evening."})),
                (if is_owner { 200 } else { 404 }),
            ),
            (
                "POST",
                url(&format!("/v1/sessions/{session}/quests")),
                Some(json!({})),
                (if is_owner { 201 } else { 404 }),
            ),
            // After the owner's offer above: the first caller is the owner.
            (
                "POST",
                url(&format!("/v1/sessions/{session}/quests/0/refuse")),
                Some(json!({})),
                (if is_owner { 200 } else { 404 }),
            ),
            (
                "POST",
                url(&format!("/v1/sessions/{session}/events")),
                Some(json!({"action": "goto", "targets": ["Lantern Quay"]})),
                (if is_owner { 200 } else { 404 }),
            ),
            (
                "GET",
                url(&format!("/v1/sessions/{session}/quests")),
                None,
                (if home && (is_owner || admin) {
                    200
                } else {
                    404
                }),
            ),
            (
                "GET",
                url(&format!("/v1/sessions/{session}/events?follow=false")),
                None,
                (if home && (is_owner || admin) {
                    200
                } else {
                    404
                }),
            ),
            // After the owner's turn above: the first caller is the owner.
            (
                "GET",
                url(&format!("/v1/sessions/{session}/export?format=replies")),
                None,
                (if home && (is_owner || admin) {
                    200
                } else {
                    404
                }),
            ),
            (
                "DELETE",
                url(&format!("/v1/sessions/{doomed_session}")),
                None,
                (if home && (is_owner || admin) {
                    204
                } else {
                    404
                }),
            ),
            (
                "GET",
                url("/v1/keys"),
                None,
                (if admin { 200 } else { 403 }),
            ),
            (
                "POST",
                url("/v1/keys"),
                Some(json!({"role": "player", "label": "made in test"})),
                (if admin { 201 } else { 403 }),
            ),
            (
                "DELETE",
                url(&format!("/v1/keys/{doomed_key_id}")),
                None,
                (match (admin, home) {
                    (false, _) => 403,
                    (true, true) => 204,
                    (true, false) => 404,
                }),
            ),
            ("GET", url("/v1/models"), None, (200)),
            ("GET", url("/v1/provenance/keys"), None, (200)),
            (
                "POST",
                url("/v1/verify"),
                Some(json!({"text": "Mind the ropes, love."})),
                (200),
            ),
            (
                "POST",
                url("/v1/chat/completions"),
                Some(
                    json!({"model": "lanterns/odile", "messages": [{"role": "user", "content": "Hello?"}]}),
                ),
                seen(200, 404),
            ),
            ("GET", url(sparql), None, (if writer { 200 } else { 403 })),
            (
                "POST",
                url(&format!("/v1/sessions/{session}/proposals")),
                Some(json!({"fact": format!("urn:lore:session:{session}#m0")})),
                (if home && (is_owner || admin) {
                    201
                } else {
                    404
                }),
            ),
            (
                "GET",
                url("/v1/proposals"),
                None,
                (if writer { 200 } else { 403 }),
            ),
            (
                "POST",
                url("/v1/proposals"),
                Some(json!({"production": "lanterns", "summary": "s",
                        "add": [format!("<urn:x:new> <urn:x:p> \"{tenant} {role:?}\" <https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns> .")]})),
                writes(201),
            ),
            (
                "GET",
                url(&format!("/v1/proposals/{to_read}")),
                None,
                writes(200),
            ),
            (
                "POST",
                url(&format!("/v1/proposals/{to_read}/defer")),
                Some(json!({})),
                writes(200),
            ),
            (
                "POST",
                url(&format!("/v1/proposals/{to_accept}/accept")),
                Some(json!({})),
                writes(200),
            ),
            (
                "POST",
                url(&format!("/v1/proposals/{to_reject}/reject")),
                Some(json!({"reason": "no"})),
                writes(200),
            ),
            (
                "GET",
                url("/v1/audit"),
                None,
                (if writer { 200 } else { 403 }),
            ),
            (
                "GET",
                url("/v1/canon/commits"),
                None,
                (if writer { 200 } else { 403 }),
            ),
            // By the time a rival key asks, the newest commit changed only brindlemoor's graphs.
            (
                "GET",
                url("/v1/canon/commits/head"),
                None,
                (match (writer, home) {
                    (false, _) => 403,
                    (true, true) => 200,
                    (true, false) => 404,
                }),
            ),
            (
                "GET",
                url("/v1/canon/diff?from=root&to=head"),
                None,
                (if writer { 200 } else { 403 }),
            ),
            (
                "POST",
                url("/v1/canon/commits"),
                Some(json!({
                    "base": "head",
                    "message": "a note",
                    "add": [format!(
                        "<https://lorekeeper.dev/worlds/brindlemoor#odile> <http://www.w3.org/2000/01/rdf-schema#comment> \"{tenant} {role:?}\" <https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns>"
                    )],
                })),
                (match (writer, home) {
                    (false, _) => 403,
                    (true, true) => 201,
                    (true, false) => 403,
                }),
            ),
            (
                "POST",
                url("/v1/canon/commits/head/revert"),
                None,
                (match (writer, home) {
                    (false, _) => 403,
                    (true, true) => 201,
                    (true, false) => 404,
                }),
            ),
            (
                "GET",
                url("/metrics"),
                None,
                (if admin { 200 } else { 403 }),
            ),
        ];
        for (method, target, body, expected) in cases {
            let bytes = body.map(|b| b.to_string().into_bytes());
            let reply = call(method, &target, Some(key), bytes.as_deref(), None);
            assert_eq!(
                reply.status, expected,
                "{method} {target} as {tenant} {role:?}: {}",
                reply.body
            );
            // Without a key, every one of these routes is 401.
            let anonymous = call(method, &target, None, bytes.as_deref(), None);
            assert_eq!(anonymous.status, 401, "{method} {target} without a key");
            checked += 1;
        }
        // Lists show only the caller's tenant (and, below admin, only the caller's sessions).
        let productions = get(&url("/v1/productions"), Some(key)).body;
        assert_eq!(productions.contains("lanterns"), home, "{productions}");
        assert_eq!(productions.contains("harbour"), !home, "{productions}");
        let models = get(&url("/v1/models"), Some(key)).body;
        assert_eq!(models.contains("lanterns/odile"), home);
        let sessions = get(&url("/v1/sessions"), Some(key)).body;
        assert_eq!(
            sessions.contains(&session),
            home && (is_owner || admin),
            "{sessions}"
        );
    }
    assert_eq!(checked, callers.len() * 38);
    server.stop();
}
