//! The web UI in a real browser: Playwright drives Debian's Chromium against the real server
//! and model (`scripts/test.sh` installs both; `LORE_TEST_PYTHON` has the `playwright`
//! package). The screenshots it takes of each page go to `docs/screenshots/`.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::*;
use lore_server::Role;
use serde_json::json;

#[test]
fn writers_and_players_use_the_web_ui_in_chromium() {
    let python = std::env::var("LORE_TEST_PYTHON")
        .expect("LORE_TEST_PYTHON names a Python with `playwright`; scripts/test.sh sets it up");
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let url = |path: &str| format!("{}{path}", server.url);
    let player = server.key("brindlemoor", Role::Player);
    let writer = server.key("brindlemoor", Role::Writer);

    // A game proposes what one of its sessions learned.
    let session = open_session(&server, &player, "Wren");
    go_to_the_guildhall(&server, &player, &session);
    let proposed = post(
        &url(&format!("/v1/sessions/{session}/proposals")),
        Some(&player),
        &json!({"fact": format!("urn:lore:session:{session}#m0"), "summary": "Wren went to the Guildhall"}),
    );
    assert_eq!(proposed.status, 201, "{}", proposed.body);
    // Markup in canon text, to be shown as text.
    let hostile = post(
        &url("/v1/proposals"),
        Some(&writer),
        &json!({"production": "lanterns", "summary": "Markup test",
                "add": ["<https://lorekeeper.dev/worlds/brindlemoor#fact-markup> <https://lorekeeper.dev/ns/lore#statement> \"<script>alert('pwned')</script>\" <https://lorekeeper.dev/worlds/brindlemoor/graph/lanterns> ."]}),
    );
    assert_eq!(hostile.status, 201, "{}", hostile.body);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui_browser.py");
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/screenshots");
    let output = std::process::Command::new(python)
        .args([script, &server.url, &writer, &player, shots])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    server.stop();
}

#[test]
fn the_playground_shows_a_long_conversation_a_page_at_a_time() {
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let player = server.key("brindlemoor", Role::Player);
    let session = open_session(&server, &player, "Wren");
    // Lines the input rail deflects are recorded turns without generation: quick to make.
    for i in 0..25 {
        let reply = post(
            &format!("{}/v1/sessions/{session}/turns", server.url),
            Some(&player),
            &json!({ "input": format!("Would you kiss me, Odile? (asking for the {i}th time)") }),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let shown = |page: &Reply| -> Vec<usize> {
        (0..25)
            .filter(|i| page.body.contains(&format!("id=\"turn-{i}\"")))
            .collect()
    };

    let newest = ui_page(&format!("{}/ui/play/{session}", server.url), &player);
    assert_eq!(newest.status, 200, "{}", newest.body);
    assert_eq!(shown(&newest), (5..25).collect::<Vec<_>>());
    assert!(
        newest
            .body
            .contains(&format!("href=\"/ui/play/{session}?from=0\""))
    );

    let earliest = ui_page(&format!("{}/ui/play/{session}?from=0", server.url), &player);
    assert_eq!(shown(&earliest), (0..20).collect::<Vec<_>>());
    assert!(earliest.body.contains("Newest turns"));
    // Each shown reply is checked: signature and watermark verdicts are on the page.
    assert_eq!(
        earliest.body.matches("Provenance and watermark").count(),
        20
    );

    // Out of range is clamped, not an error.
    let beyond = ui_page(
        &format!("{}/ui/play/{session}?from=999", server.url),
        &player,
    );
    assert_eq!(beyond.status, 200);
    assert!(shown(&beyond).is_empty());
    server.stop();
}
