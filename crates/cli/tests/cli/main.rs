//! The `lore` binary end to end: real store, real model, and every bad input the foundation
//! issue lists, each with a clear message and a non-zero exit.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod authenticity;
mod canon;
mod chat;
mod eval;
mod quest;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn lore(args: &[&str], stdin: &str) -> Run {
    lore_with(args, stdin, &[])
}

/// [`lore`] with extra environment variables.
fn lore_with(args: &[&str], stdin: &str, env: &[(&str, &Path)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lore"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("LORE_HOME")
        .env("HOME", std::env::temp_dir().join("lore-cli-test-home"))
        .env(
            "LORE_MODEL",
            cached("LORE_MODEL", "models/gemma-3-270m-q4_k_m.gguf"),
        )
        .env(
            "LORE_ENCODER",
            cached("LORE_ENCODER", "models/all-minilm-l6-v2"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// `$var`, else `path` in the set-up's cache under the real home (the runs get a temp one).
fn cached(var: &str, path: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/lorekeeper")
                .join(path)
        },
        PathBuf::from,
    )
}

fn sample_world() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../world/brindlemoor.trig")
        .display()
        .to_string()
}

/// A temp store with the sample world imported.
fn sample_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../world/policy.trig")
        .display()
        .to_string();
    let run = lore(&["import", "--store", &store, &policy, &sample_world()], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("quads"), "{}", run.stdout);
    (dir, store)
}

/// `lore eval topics` on `set` over `store`.
fn eval_topics(store: &str, set: &Path) -> Run {
    lore(
        &[
            "eval",
            "topics",
            "--store",
            store,
            "--set",
            &set.display().to_string(),
        ],
        "",
    )
}

fn fails_with(run: &Run, needles: &[&str]) {
    assert_eq!(
        run.code, 1,
        "expected failure; stdout: {} stderr: {}",
        run.stdout, run.stderr
    );
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}
