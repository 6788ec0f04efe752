//! Canon in and out: import, check, query, context, names, cards and lorebooks.

use super::*;

#[test]
fn import_check_query_and_context() {
    let (_dir, store) = sample_store();
    let check = lore(&["check", "--store", &store], "");
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("0 errors"));

    let table = lore(
        &[
            "query",
            "--store",
            &store,
            "SELECT ?name WHERE { GRAPH ?g { ?c a <https://lorekeeper.dev/ns/lore#Character> ; <http://www.w3.org/2000/01/rdf-schema#label> ?name } } ORDER BY ?name",
        ],
        "",
    );
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("Odile Marrow") && table.stdout.contains("(9 rows)"),
        "{}",
        table.stdout
    );

    let json = lore(
        &[
            "query",
            "--store",
            &store,
            "--format",
            "json",
            "ASK { GRAPH ?g { ?s ?p ?o } }",
        ],
        "",
    );
    assert_eq!(json.stdout.trim(), r#"{"head":{},"boolean":true}"#);
    let csv = lore(
        &[
            "query",
            "--store",
            &store,
            "--format",
            "csv",
            "SELECT (1 AS ?one) WHERE {}",
        ],
        "",
    );
    assert_eq!(csv.stdout.replace('\r', ""), "one\n1\n");

    let context = lore(
        &[
            "context",
            "--store",
            &store,
            "-p",
            "lanterns",
            "-c",
            "pip",
            "--at",
            "4",
            "--json",
            "Where is the Everlight?",
        ],
        "",
    );
    assert_eq!(context.code, 0, "{}", context.stderr);
    let value: serde_json::Value = serde_json::from_str(&context.stdout).unwrap();
    assert_eq!(value["character"], "Pip Tallow");
    assert_eq!(value["beat"], 4);
    let retrieved: Vec<&str> = value["retrieved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(
        retrieved
            .iter()
            .any(|id| id.ends_with("#fact-everlight-hidden")),
        "{retrieved:?}"
    );
    assert!(
        value["retrieved"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("mentioned")
    );

    let text = lore(
        &[
            "context",
            "--store",
            &store,
            "-p",
            "lanterns",
            "-c",
            "odile",
            "Have you seen Pip?",
        ],
        "",
    );
    assert!(
        text.stdout.contains("relationship with Pip Tallow"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_line_that_names_nothing_finds_its_fact_by_meaning_and_never_an_unknown_one() {
    let (_dir, store) = sample_store();
    let context = |character: &str, at: &str, line: &str| {
        let run = lore(
            &[
                "context", "--store", &store, "-p", "lanterns", "-c", character, "--at", at,
                "--json", line,
            ],
            "",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        value["retrieved"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let id = f["id"].as_str().unwrap();
                let reason = f["reason"].as_str().unwrap();
                (
                    id[id.find('#').unwrap() + 1..].to_owned(),
                    reason.to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    // No name in the line: the mayor's fact is found by what the line means.
    let found = context("odile", "2", "Who runs this city?");
    assert!(
        found
            .iter()
            .any(|(id, why)| id == "fact-hestia-mayor" && why.starts_with("close in meaning")),
        "{found:?}"
    );
    // Nessa was never told where the Everlight is hidden, however close the line comes.
    let found = context("nessa", "3", "Where is the stolen lantern hidden?");
    assert!(
        !found.iter().any(|(id, _)| id == "fact-everlight-hidden"),
        "{found:?}"
    );
}

#[test]
fn an_update_is_refused_and_garbage_is_not_sparql() {
    let (_dir, store) = sample_store();
    fails_with(
        &lore(
            &["query", "--store", &store, "DELETE WHERE { ?s ?p ?o }"],
            "",
        ),
        &["updates are refused"],
    );
    fails_with(
        &lore(&["query", "--store", &store, "SHOW ME EVERYTHING"], ""),
        &["not a SPARQL query"],
    );
    let still = lore(
        &["query", "--store", &store, "ASK { GRAPH ?g { ?s ?p ?o } }"],
        "",
    );
    assert!(still.stdout.contains("true"));
}

#[test]
fn malformed_turtle_names_line_and_column_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let bad = dir.path().join("bad.ttl");
    std::fs::write(&bad, "@prefix : <urn:x:> .\n:a :b :c .\n:a :b :c :d .\n").unwrap();
    let run = lore(
        &[
            "import",
            "--store",
            &store,
            &sample_world(),
            &bad.display().to_string(),
        ],
        "",
    );
    fails_with(&run, &["bad.ttl:3:", "nothing was imported"]);
    let count = lore(
        &[
            "query",
            "--store",
            &store,
            "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }",
        ],
        "",
    );
    assert_eq!(
        count.stdout.lines().nth(2).map(str::trim),
        Some("0"),
        "{}",
        count.stdout
    );
}

#[test]
fn unknown_names_are_errors_that_list_what_exists() {
    let (_dir, store) = sample_store();
    fails_with(
        &lore(
            &[
                "context", "--store", &store, "-p", "atlantis", "-c", "odile", "hi",
            ],
            "",
        ),
        &["no production named 'atlantis'", "lanterns", "nocturne"],
    );
    fails_with(
        &lore(
            &[
                "context", "--store", &store, "-p", "lanterns", "-c", "gandalf", "hi",
            ],
            "",
        ),
        &["no character named 'gandalf'", "pip"],
    );
    fails_with(
        &lore(
            &[
                "context", "--store", &store, "-p", "lanterns", "-c", "tamsin", "hi",
            ],
            "",
        ),
        &["does not appear in production", "nocturne"],
    );
    fails_with(
        &lore(
            &[
                "context", "--store", &store, "-p", "lanterns", "-c", "pip", "--at", "teatime",
                "hi",
            ],
            "",
        ),
        &["no beat named 'teatime'", "The Relighting"],
    );
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        &lore(
            &[
                "context",
                "--store",
                &dir.path().join("none").display().to_string(),
                "-p",
                "x",
                "-c",
                "y",
                "hi",
            ],
            "",
        ),
        &["no canon store", "lore import"],
    );
}

fn card_corpus(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cards/tests/corpus")
        .join(file)
        .display()
        .to_string()
}

fn count_quads(store: &str) -> String {
    let run = lore(
        &[
            "query",
            "--store",
            store,
            "--format",
            "csv",
            "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
}

#[test]
fn cards_join_a_production_and_export_without_loss() {
    let (dir, store) = sample_store();
    let seraphine = card_corpus("seraphine.png");
    let gazetteer = card_corpus("lorebook_v3.json");

    // One bad file: nothing at all is imported, and the error names the file and the path.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"X","tags":["a",1]}}"#,
    )
    .unwrap();
    let before = count_quads(&store);
    let import = |files: &[&str]| {
        let mut all = vec!["import", "--store", &store, "--production", "lanterns"];
        all.extend_from_slice(files);
        lore(&all, "")
    };
    let run = import(&[&seraphine, broken.to_str().unwrap()]);
    fails_with(
        &run,
        &["broken.json", "$.data.tags[1]", "expected a string"],
    );
    assert_eq!(
        count_quads(&store),
        before,
        "a failed import wrote something"
    );

    let run = import(&[&seraphine, &gazetteer]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for needle in [
        "$.data.creator_notes: lore:writerNote (writer-only",
        "$.data.character_book.entries[0]: fact <",
        "joins <https://lorekeeper.dev/worlds/brindlemoor#lanterns>",
        "$.entries[2]",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} not in {}",
            run.stdout
        );
    }
    let check = lore(&["check", "--store", &store], "");
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);

    // The card's character talks in Lanterns, and its book is retrieved by its keys.
    let context = lore(
        &[
            "context",
            "--store",
            &store,
            "-p",
            "lanterns",
            "-c",
            "sera",
            "--json",
            "Can I drink from the Moonwell?",
        ],
        "",
    );
    assert_eq!(context.code, 0, "{}", context.stderr);
    assert!(
        context.stdout.contains("book/0/entry/0"),
        "{}",
        context.stdout
    );
    assert!(
        !context.stdout.contains("poisoned"),
        "a writer-only note reached a prompt"
    );

    // Out again as PNG: the V3 card is the one that went in, field for field.
    let export = |args: &[&str]| {
        let mut all = vec!["export", "--store", &store, "--production", "lanterns"];
        all.extend_from_slice(args);
        lore(&all, "")
    };
    let out = dir.path().join("seraphine-out.png");
    let run = export(&[
        "--character",
        "Seraphine",
        "--format",
        "card-v3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(card_corpus("v3_full.json")).unwrap())
            .unwrap();
    let exported = export(&["--character", "Seraphine", "--format", "card-v3"]);
    let exported: serde_json::Value = serde_json::from_str(&exported.stdout).unwrap();
    assert_eq!(exported, original);
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x89PNG"));

    // A character written in canon becomes a card too.
    let pip = export(&["--character", "pip", "--format", "card-v2"]);
    assert_eq!(pip.code, 0, "{}", pip.stderr);
    let pip: serde_json::Value = serde_json::from_str(&pip.stdout).unwrap();
    assert_eq!(pip["spec"], "chara_card_v2");
    assert_eq!(pip["data"]["name"], "Pip Tallow");
    let text = |field: &str| pip["data"][field].as_str().unwrap().to_owned();
    assert!(text("description").contains("apprentice lamplighter"));
    assert!(text("mes_example").contains("{{char}}: Blimey"));

    let book = export(&["--format", "lorebook"]);
    assert_eq!(book.code, 0, "{}", book.stderr);
    let book: serde_json::Value = serde_json::from_str(&book.stdout).unwrap();
    assert_eq!(book["data"]["name"], "Moonvale Gazetteer");

    fails_with(
        &export(&[
            "--character",
            "nobody",
            "--format",
            "charx",
            "--out",
            "x.charx",
        ]),
        &["no character \"nobody\"", "Pip Tallow"],
    );
    fails_with(
        &lore(
            &[
                "import",
                "--store",
                &store,
                &sample_world().replace(".trig", ".png"),
            ],
            "",
        ),
        &["brindlemoor.png"],
    );
}
