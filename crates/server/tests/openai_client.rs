//! The official `openai` Python package against the real server (`scripts/test.sh` installs
//! it into a virtual environment and sets `LORE_TEST_PYTHON`).
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::*;
use lore_server::Role;

#[test]
fn the_openai_python_client_talks_to_a_character() {
    let python = std::env::var("LORE_TEST_PYTHON").expect(
        "LORE_TEST_PYTHON names a Python with the `openai` package; scripts/test.sh sets it up",
    );
    let canon = canon();
    let server = start(
        &canon,
        Options::new(sqlite_url(canon.dir.path()), embedded()),
    );
    let key = server.key("brindlemoor", Role::Player);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let output = std::process::Command::new(python)
        .args([script, &server.url, &key])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    server.stop();
}
