//! Watermark keys, `lore verify`, and exports with their C2PA sidecars.

use super::*;

#[test]
fn watermark_keys_rotate_and_verify_gives_a_verdict_for_every_text() {
    let keys = tempfile::tempdir().unwrap();
    let env = [("LORE_KEYS", keys.path())];
    let made = lore_with(&["keys", "watermark", "new"], "", &env);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let first = made.stdout.trim().to_owned();
    assert!(first.starts_with("wm-"), "{first}");
    let second = lore_with(&["keys", "watermark", "new", "--gamma", "0.5"], "", &env);
    let second = second.stdout.trim().to_owned();
    let list = lore_with(&["keys", "watermark", "list"], "", &env).stdout;
    assert!(list.contains(&format!("{second}\tcurrent")), "{list}");
    assert!(list.contains(&format!("{first}\tactive")), "{list}");
    assert!(!list.contains("secret"), "{list}");
    assert_eq!(
        lore_with(&["keys", "watermark", "retire", &second], "", &env).code,
        0
    );
    let list = lore_with(&["keys", "watermark", "list"], "", &env).stdout;
    assert!(list.contains(&format!("{second}\tretired")), "{list}");
    assert!(list.contains(&format!("{first}\tcurrent")), "{list}");
    fails_with(
        &lore_with(&["keys", "watermark", "retire", "wm-nope"], "", &env),
        &["wm-nope"],
    );
    fails_with(
        &lore_with(&["keys", "watermark", "new", "--gamma", "1.5"], "", &env),
        &["gamma"],
    );

    let human = "Call me Ishmael. Some years ago, never mind how long precisely, having little or \
        no money in my purse, and nothing particular to interest me on shore, I thought I would \
        sail about a little and see the watery part of the world. It is a way I have of driving \
        off the spleen and regulating the circulation.";
    let verdict = lore_with(&["verify", "text", "-", "--json"], human, &env);
    assert_eq!(verdict.code, 2, "{}", verdict.stderr);
    let json: serde_json::Value = serde_json::from_str(&verdict.stdout).unwrap();
    assert_eq!(json["watermarked"], false);
    assert!(json["key_id"].is_null());
    assert!(json["tokens_scored"].as_u64().unwrap() >= 16, "{json}");
    assert!(json["z"].as_f64().unwrap() < 4.0 && json["p_value"].as_f64().is_some());

    let empty = lore_with(&["verify", "text", "-"], "", &env);
    assert_eq!(empty.code, 2);
    assert!(empty.stdout.contains("too short"), "{}", empty.stdout);

    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("blob.txt");
    std::fs::write(&binary, [0x66, 0x6f, 0xff, 0xfe]).unwrap();
    fails_with(
        &lore_with(&["verify", "text", binary.to_str().unwrap()], "", &env),
        &["blob.txt", "not UTF-8", "offset 2"],
    );
    fails_with(
        &lore_with(&["verify", "text", "/nonexistent/reply.txt"], "", &env),
        &["/nonexistent/reply.txt"],
    );
}

/// `lore verify FILE --json`, parsed.
fn verify_json(file: &Path, extra: &[&str], env: &[(&str, &Path)]) -> (i32, serde_json::Value) {
    let mut args = vec!["verify", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let run = lore_with(&args, "", env);
    assert!(run.code == 0 || run.code == 2, "{}", run.stderr);
    (run.code, serde_json::from_str(&run.stdout).unwrap())
}

#[test]
fn a_chat_export_carries_a_sidecar_and_verify_names_what_failed() {
    let (dir, store) = sample_store();
    let keys = dir.path().join("keys");
    let env = [("LORE_KEYS", keys.as_path())];
    let out = dir.path().join("odile.txt");
    let run = lore_with(
        &[
            "chat",
            "--store",
            &store,
            "-p",
            "lanterns",
            "-c",
            "odile",
            "--max-tokens",
            "120",
            "--seed",
            "7",
            "--json",
            "--export",
            out.to_str().unwrap(),
            "--export-format",
            "replies",
        ],
        "Tell me about the ferry and the river crossing.\nWhat do you think of the lighthouse keeper?\nWhat happened on the night of the storm?\n",
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("odile.txt.c2pa"), "{}", run.stderr);

    let (code, json) = verify_json(&out, &[], &env);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["valid"], true);
    assert_eq!(json["sidecar"]["valid"], true, "{json}");
    let record = &json["sidecar"]["provenance"]["record"];
    assert_eq!(record["artefact"], "export");
    assert!(record["character"].as_str().unwrap().ends_with("odile"));
    let parts = json["sidecar"]["provenance"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    // The replies are generated unless a rail answered with an authored line instead; which
    // happens depends on the text, and the text on the watermark key drawn for this
    // installation. The export's source type must say which it was.
    let sampled = parts
        .iter()
        .filter(|p| {
            let payload: serde_json::Value =
                serde_json::from_str(p["payload"].as_str().unwrap()).unwrap();
            !payload["sampling"].is_null()
        })
        .count();
    assert!(sampled > 0, "{json}");
    let expected = if sampled == parts.len() {
        "trainedAlgorithmicMedia"
    } else {
        "compositeSynthetic"
    };
    assert_eq!(
        json["sidecar"]["digital_source_type"],
        format!("http://cv.iptc.org/newscodes/digitalsourcetype/{expected}"),
        "{json}"
    );
    let key = json["watermark"]["claimed"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wm-"), "{json}");
    assert!(
        json["watermark"]["tokens_scored"].as_u64().unwrap() >= 16,
        "{json}"
    );
    // Whether three short replies reach z 4 depends on the key drawn; a found mark must be the
    // claimed key's, and a miss on vouched-for bytes is not a failure.
    if json["watermark"]["watermarked"] == true {
        assert_eq!(json["watermark"]["key_id"], key.as_str(), "{json}");
    }
    assert_eq!(json["watermark"]["ok"], true);
    let keyring = std::fs::read_to_string(keys.join("watermark-keys.json")).unwrap();
    assert!(
        keyring.contains(&key),
        "the claim names this installation's key"
    );

    // The text edited: the hash fails (and the watermark may survive a small edit).
    let original = std::fs::read_to_string(&out).unwrap();
    std::fs::write(&out, original.replacen(' ', "  ", 1)).unwrap();
    let (code, json) = verify_json(&out, &[], &env);
    assert_eq!(code, 2);
    assert_eq!(json["failed"][0], "sidecar", "{json}");
    // No valid sidecar vouches for the text now: a claimed mark must be found in it.
    assert_eq!(
        json["watermark"]["ok"], json["watermark"]["watermarked"],
        "{json}"
    );
    assert!(
        json["sidecar"]["reason"]
            .as_str()
            .unwrap()
            .contains("file was changed"),
        "{json}"
    );
    std::fs::write(&out, &original).unwrap();

    // The sidecar truncated, then missing.
    let sidecar = dir.path().join("odile.txt.c2pa");
    let signed = std::fs::read(&sidecar).unwrap();
    std::fs::write(&sidecar, &signed[..signed.len() / 3]).unwrap();
    let (code, json) = verify_json(&out, &[], &env);
    assert_eq!(code, 2);
    assert!(
        json["sidecar"]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{json}"
    );
    std::fs::remove_file(&sidecar).unwrap();
    let run = lore_with(&["verify", out.to_str().unwrap()], "", &env);
    assert_eq!(run.code, 2);
    assert!(
        run.stdout.contains("sidecar    FAILED: no sidecar at"),
        "{}",
        run.stdout
    );
    std::fs::write(&sidecar, &signed).unwrap();

    // Another studio's CA does not vouch for this one's exports.
    let other_keys = dir.path().join("other-keys");
    let other_ca = lore_with(&["keys", "c2pa", "ca"], "", &[("LORE_KEYS", &other_keys)]);
    assert!(other_ca.stdout.starts_with("-----BEGIN CERTIFICATE-----"));
    let pem = dir.path().join("other-ca.pem");
    std::fs::write(&pem, other_ca.stdout).unwrap();
    let (code, json) = verify_json(&out, &["--trust", pem.to_str().unwrap()], &env);
    assert_eq!(code, 2);
    assert_eq!(
        json["sidecar"]["failures"][0],
        "signingCredential.untrusted"
    );

    // A human text under a valid-looking name: no sidecar, no mark claimed or found.
    let human = dir.path().join("human.txt");
    std::fs::write(
        &human,
        "It was a bright cold day in April, and the clocks were striking.",
    )
    .unwrap();
    let (code, json) = verify_json(&human, &[], &env);
    assert_eq!(code, 2);
    assert_eq!(json["failed"], serde_json::json!(["sidecar"]));
    assert_eq!(json["watermark"]["watermarked"], false);
    fails_with(
        &lore_with(&["verify", "/nonexistent/odile.txt"], "", &env),
        &["/nonexistent/odile.txt"],
    );
}

#[test]
fn a_stored_session_exports_with_its_turns_records() {
    use lore_server::db::{Db, SessionRow, TurnRecord, TurnRow};
    let (dir, store) = sample_store();
    let keys = dir.path().join("keys");
    let env = [("LORE_KEYS", keys.as_path())];
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("lore.db").display());
    let base = "https://lorekeeper.dev/worlds/brindlemoor#";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Db::connect(&url).await.unwrap();
        db.sessions
            .insert(&SessionRow {
                id: "s-export".into(),
                tenant: "studio".into(),
                owner_key: "k".into(),
                player: "p1".into(),
                production: format!("{base}lanterns"),
                character: format!("{base}odile"),
                beat: None,
                at: None,
                conversation: None,
                turns: 0,
                memory_facts: 0,
                player_state: "{}".into(),
                created_ms: 1,
                updated_ms: 1,
                ended_ms: None,
                likeness_uses: "text".into(),
                territory: None,
            })
            .await
            .unwrap();
        db.sessions
            .record_turn(TurnRecord {
                session_id: "s-export".into(),
                turn: TurnRow {
                    turn: 0,
                    input: "Evening!".into(),
                    reply: "Evening, traveller.".into(),
                    recalled: "[]".into(),
                    facts_used: "[]".into(),
                    created_ms: 2,
                    rails: "[]".into(),
                    output_rail: "{}".into(),
                    provenance: None,
                },
                memory: Vec::new(),
                ends_session: false,
                memory_start: 0,
            })
            .await
            .unwrap();
        db.close().await;
    });
    let out = dir.path().join("session.txt");
    let run = lore_with(
        &[
            "export",
            "--store",
            &store,
            "--database",
            &url,
            "--session",
            "s-export",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.ends_with("Odile Marrow: Evening, traveller.\n"),
        "{text}"
    );
    let (code, json) = verify_json(&out, &[], &env);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        json["sidecar"]["digital_source_type"],
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    );
    assert_eq!(
        json["sidecar"]["provenance"]["record"]["session"],
        "s-export"
    );
    assert!(json["watermark"]["claimed"].is_null());

    fails_with(
        &lore_with(
            &[
                "export",
                "--store",
                &store,
                "--database",
                &url,
                "--session",
                "s-nope",
                "--out",
                out.to_str().unwrap(),
            ],
            "",
            &env,
        ),
        &["no session \"s-nope\""],
    );
}
