//! The real server on loopback, with the real embedded model and SQLite.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::*;
use lore_server::Role;
use serde_json::json;

#[test]
fn a_session_streams_turns_remembers_and_survives_a_restart() {
    let canon = canon();
    let database = sqlite_url(canon.dir.path());
    let backend = embedded();
    let mut options = Options::new(database.clone(), backend.clone());
    // A window of two lines: the first line leaves the prompt after one more turn.
    options.history_lines = 2;
    let server = start(&canon, options);
    let key = server.key("brindlemoor", Role::Player);
    let id = open_session(&server, &key, "ada");

    // Streamed: deltas, then one final event whose reply is the deltas joined.
    let turns = format!("{}/v1/sessions/{id}/turns", server.url);
    let mut events = Events::open(
        &turns,
        &key,
        &json!({ "input": "My name is Wren. I hid the brass lantern key under the mill bridge." }),
    );
    let mut streamed = String::new();
    let final_event = loop {
        let (name, data) = events.next_event().expect("a final event");
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        match name.as_str() {
            "delta" => streamed.push_str(data["text"].as_str().unwrap()),
            "final" => break data,
            other => panic!("unexpected event {other}: {data}"),
        }
    };
    assert_eq!(final_event["reply"], streamed.as_str());
    assert_eq!(final_event["turn"], 0);
    assert!(final_event["rails"].is_array());
    assert!(final_event.get("provenance").is_some());
    assert!(!final_event["facts_used"].as_array().unwrap().is_empty());

    // Not streamed: the same final object.
    let reply = post(
        &turns,
        Some(&key),
        &json!({ "input": "Do you like the fog?" }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["turn"], 1);
    server.stop();

    // A new server process over the same database continues the session, and the first line,
    // long gone from the prompt, is recalled from the session's graph.
    let server = start(&canon, Options::new(database, backend));
    let turns = format!("{}/v1/sessions/{id}/turns", server.url);
    let reply = post(
        &turns,
        Some(&key),
        &json!({ "input": "Where did I hide the key?" }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let out = reply.json();
    assert_eq!(out["turn"], 2);
    let used: Vec<&str> = out["facts_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let graph = format!("urn:lore:session:{id}#");
    assert!(used.iter().any(|f| f.starts_with(&graph)), "{used:?}");

    let detail = get(&format!("{}/v1/sessions/{id}", server.url), Some(&key)).json();
    assert_eq!(detail["session"]["turns"], 3);
    assert_eq!(detail["transcript"].as_array().unwrap().len(), 3);
    assert_eq!(detail["transcript"][1]["input"], "Do you like the fog?");
    let memory = detail["memory"].as_array().unwrap();
    assert!(
        memory
            .iter()
            .any(|m| m["kind"] == "name" && m["text"].as_str().unwrap().contains("Wren"))
    );
    assert!(
        memory
            .iter()
            .any(|m| m["text"].as_str().unwrap().contains("mill bridge"))
    );

    let listed = get(
        &format!("{}/v1/sessions?player=ada", server.url),
        Some(&key),
    )
    .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let deleted = call(
        "DELETE",
        &format!("{}/v1/sessions/{id}", server.url),
        Some(&key),
        None,
        None,
    );
    assert_eq!(deleted.status, 204);
    assert_eq!(
        get(&format!("{}/v1/sessions/{id}", server.url), Some(&key)).status,
        404
    );
    server.stop();
}

#[test]
fn bad_requests_get_stable_codes_and_never_touch_the_session() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let key = server.key("brindlemoor", Role::Player);
    let id = open_session(&server, &key, "p");
    let turns = format!("{}/v1/sessions/{id}/turns", server.url);
    let raw = |body: &[u8], content_type: &str| {
        call("POST", &turns, Some(&key), Some(body), Some(content_type))
    };

    let r = raw(b"{\"input\": ", "application/json");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    let r = raw(b"{\"input\": \"hi\", \"mood\": 3}", "application/json");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));
    assert!(r.body.contains("mood"), "{}", r.body);
    let r = raw(b"{\"input\": 7}", "application/json");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));
    let r = raw(b"{\"input\": \"\xff\xfe\"}", "application/json");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = raw(b"input=hi", "text/plain");
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
    let huge = format!("{{\"input\": \"{}\"}}", "a".repeat(65 * 1024));
    let r = raw(huge.as_bytes(), "application/json");
    assert_eq!((r.status, r.code().as_str()), (413, "body_too_large"));
    let r = raw(b"{\"input\": \"   \"}", "application/json");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));

    let r = post(
        &format!("{}/v1/sessions/nope/turns", server.url),
        Some(&key),
        &json!({"input": "hi"}),
    );
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_session"));
    let open = |production: &str, character: &str, at: Option<&str>| {
        post(
            &format!("{}/v1/sessions", server.url),
            Some(&key),
            &json!({ "production": production, "character": character, "player": "p", "at": at }),
        )
    };
    let r = open("harbour", "mara", None);
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "unknown_production"),
        "another tenant's"
    );
    let r = open("lanterns", "nobody", None);
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_character"));
    assert!(r.body.contains("odile"), "lists who exists: {}", r.body);
    let r = open("lanterns", "odile", Some("the end of time"));
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));

    // Keys: missing, malformed, wrong, expired, revoked are 401; a weak role is 403.
    let url = format!("{}/v1/productions", server.url);
    let r = get(&url, None);
    assert_eq!((r.status, r.code().as_str()), (401, "missing_key"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(get(&url, Some("nonsense")).code(), "invalid_key");
    // Change the secret's last character (to one it is not already).
    let last = if key.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(get(&url, Some(&wrong)).status, 401);
    let expired = server
        .runtime
        .block_on(lore_server::auth::create_key(
            &server.app.db,
            "brindlemoor",
            Role::Player,
            "short",
            Some(Duration::from_millis(1)),
        ))
        .unwrap()
        .key;
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(get(&url, Some(&expired)).code(), "expired_key");
    let admin = server.key("brindlemoor", Role::Admin);
    let doomed = server.key("brindlemoor", Role::Player);
    let doomed_id = doomed.split('_').nth(1).unwrap();
    assert_eq!(get(&url, Some(&doomed)).status, 200);
    let r = call(
        "DELETE",
        &format!("{}/v1/keys/{doomed_id}", server.url),
        Some(&admin),
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(get(&url, Some(&doomed)).code(), "revoked_key");
    let r = get(&format!("{}/v1/keys", server.url), Some(&key));
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));

    // Unknown routes and methods are JSON errors too.
    assert_eq!(
        get(&format!("{}/v2/nothing", server.url), Some(&key)).code(),
        "unknown_route"
    );
    let r = call(
        "PUT",
        &format!("{}/v1/sessions", server.url),
        Some(&key),
        None,
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (405, "method_not_allowed"));

    // None of it touched the session.
    let detail = get(&format!("{}/v1/sessions/{id}", server.url), Some(&key)).json();
    assert_eq!(detail["session"]["turns"], 0);
    server.stop();
}

#[test]
fn a_full_queue_answers_503_and_a_client_that_leaves_cancels_its_turn() {
    let canon = canon();
    let mut options = Options::new(sqlite_url(canon.dir.path()), embedded());
    options.max_in_flight = 1;
    // A reply that runs on for seconds: the client leaves while it is being written.
    options.max_tokens = 400;
    options.stop_rules = false;
    let server = start(&canon, options);
    let key = server.key("brindlemoor", Role::Player);
    let first = open_session(&server, &key, "a");
    let second = open_session(&server, &key, "b");

    let mut events = Events::open(
        &format!("{}/v1/sessions/{first}/turns", server.url),
        &key,
        &json!({ "input": "Tell me the whole history of the Lamplighters' Guild, slowly." }),
    );
    let (name, _) = events.next_event().unwrap();
    assert_eq!(name, "delta");
    let r = post(
        &format!("{}/v1/sessions/{second}/turns", server.url),
        Some(&key),
        &json!({"input": "hi"}),
    );
    assert_eq!((r.status, r.code().as_str()), (503, "busy"));
    assert_eq!(r.header("retry-after"), Some("1"));

    // The client hangs up mid-stream: generation stops and nothing is recorded.
    drop(events);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.app.turns.in_flight() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the turn was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let detail = get(&format!("{}/v1/sessions/{first}", server.url), Some(&key)).json();
    assert_eq!(detail["session"]["turns"], 0);
    assert!(
        server
            .app
            .metrics
            .render()
            .contains("lore_turns_total{outcome=\"cancelled\"} 1")
    );

    // The session is consistent: its next turn is turn 0.
    let r = post(
        &format!("{}/v1/sessions/{first}/turns", server.url),
        Some(&key),
        &json!({"input": "Hello."}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["turn"], 0);
    server.stop();
}

#[test]
fn shutdown_finishes_the_turn_in_flight_and_refuses_new_ones() {
    let canon = canon();
    let mut options = Options::new(sqlite_url(canon.dir.path()), embedded());
    options.max_tokens = 48;
    let mut server = start(&canon, options);
    let key = server.key("brindlemoor", Role::Player);
    let id = open_session(&server, &key, "a");
    let turns = format!("{}/v1/sessions/{id}/turns", server.url);
    let mut events = Events::open(&turns, &key, &json!({ "input": "What do you guard?" }));
    assert_eq!(events.next_event().unwrap().0, "delta");
    server.begin_shutdown();
    std::thread::sleep(Duration::from_millis(100));
    // New work is refused: the listener is closed (or, if a request slips in, 503).
    let late = agent()
        .post(&turns)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(r#"{"input": "One more?"}"#);
    if let Ok(response) = late {
        assert_eq!(response.status().as_u16(), 503);
    }
    let finished = loop {
        let (name, data) = events
            .next_event()
            .expect("the stream ends with a final event");
        if name != "delta" {
            break (name, data);
        }
    };
    assert_eq!(finished.0, "final", "{}", finished.1);
    let database = sqlite_url(canon.dir.path());
    server.stop();
    let server = start(&canon, Options::new(database, embedded()));
    let detail = get(&format!("{}/v1/sessions/{id}", server.url), Some(&key)).json();
    assert_eq!(
        detail["session"]["turns"], 1,
        "the finished turn was recorded"
    );
    server.stop();
}

#[test]
fn health_readiness_openapi_and_metrics() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    assert_eq!(get(&format!("{}/healthz", server.url), None).status, 200);
    assert_eq!(
        get(&format!("{}/readyz", server.url), None).json()["status"],
        "ready"
    );
    let doc = get(&format!("{}/openapi.json", server.url), None).json();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/productions",
        "/v1/productions/{production}/characters/{character}",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/turns",
        "/v1/sessions/{id}/quests",
        "/v1/sessions/{id}/quests/{quest}/{answer}",
        "/v1/sessions/{id}/events",
        "/v1/keys",
        "/v1/models",
        "/v1/chat/completions",
        "/sparql",
        "/metrics",
        "/v1/canon/commits",
        "/v1/canon/commits/{commit}",
        "/v1/canon/commits/{commit}/revert",
        "/v1/canon/diff",
        "/v1/proposals",
        "/v1/proposals/{id}/accept",
        "/v1/sessions/{id}/proposals",
        "/v1/audit",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["TurnOut"].is_object());
    assert!(doc["components"]["schemas"]["QuestOut"].is_object());
    assert!(doc["components"]["schemas"]["SessionEventOut"].is_object());
    let admin = server.key("brindlemoor", Role::Admin);
    let metrics = get(&format!("{}/metrics", server.url), Some(&admin));
    assert_eq!(metrics.status, 200);
    for name in [
        "lore_turns_total",
        "lore_queue_depth",
        "lore_http_responses_total",
        "lore_generating",
    ] {
        assert!(
            metrics.body.contains(name),
            "{name} missing:\n{}",
            metrics.body
        );
    }
    server.stop();
}

#[test]
fn writers_query_their_own_canon_read_only() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let writer = server.key("brindlemoor", Role::Writer);
    let rival = server.key("rival", Role::Writer);
    let sparql = |key: &str, query: &str| {
        let url = format!("{}/sparql?query={}", server.url, urlencode(query));
        get(&url, Some(key))
    };
    let ask = "ASK { ?s <http://www.w3.org/2000/01/rdf-schema#label> \"Odile Marrow\" }";
    assert_eq!(sparql(&writer, ask).json()["boolean"], true);
    assert_eq!(
        sparql(&rival, ask).json()["boolean"],
        false,
        "another tenant's canon is invisible"
    );
    let named = "SELECT ?g WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g";
    let graphs = sparql(&rival, named).json();
    let graphs: Vec<&str> = graphs["results"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["g"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(graphs, ["urn:rival:g"]);
    let from = "SELECT * FROM <https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns> WHERE { ?s ?p ?o }";
    let r = sparql(&rival, from);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = sparql(&writer, "INSERT DATA { <urn:a> <urn:b> <urn:c> }");
    assert_eq!((r.status, r.code().as_str()), (403, "update_refused"));
    let r = sparql(&writer, "SELECT WHERE {");
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_query"));
    let r = sparql(
        &writer,
        "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }",
    );
    assert_eq!(r.status, 400, "SERVICE is refused: {}", r.body);
    let system = "SELECT * WHERE { GRAPH <https://lorekeeper.dev/ns/lore#system> { ?s ?p ?o } }";
    assert_eq!(
        sparql(&writer, system).json()["results"]["bindings"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let posted = call(
        "POST",
        &format!("{}/sparql", server.url),
        Some(&writer),
        Some(ask.as_bytes()),
        Some("application/sparql-query"),
    );
    assert_eq!(posted.json()["boolean"], true);
    let csv = ureq_accept(
        &format!("{}/sparql?query={}", server.url, urlencode(named)),
        &writer,
        "text/csv",
    );
    assert!(csv.starts_with("g\r\n"), "{csv}");
    server.stop();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ureq_accept(url: &str, key: &str, accept: &str) -> String {
    agent()
        .get(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Accept", accept)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}
