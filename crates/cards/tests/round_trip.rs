//! The round trip over a corpus of cards written for it: import → export → import gives the
//! same canon, and the export of an imported card keeps every field and extension it had.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::path::{Path, PathBuf};

use base64::Engine;
use lore_canon::{CanonStore, World};
use lore_cards::{Card, Document, Placement, Spec};
use oxigraph::model::{GraphNameRef, NamedNodeRef};
use serde_json::Value;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

fn read(path: &Path) -> Document {
    lore_cards::read(path, &std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn no_names() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::new()
}

/// Imports `document` into `store` as the CLI does: in a production of its own.
fn import(store: &CanonStore, document: &Document) -> lore_cards::Mapped {
    let names = no_names();
    let placement = Placement {
        productions: &[],
        names: &names,
        tenant: Some("studio"),
    };
    let mapped = match document {
        Document::Card(card) => lore_cards::card_to_canon(card, &placement),
        Document::Lorebook(book) => lore_cards::lorebook_to_canon(book, "book", &placement),
    };
    store
        .replace_graphs(
            std::slice::from_ref(&mapped.graph),
            &mapped.quads,
            lore_canon::CommitMeta::new("test", "import"),
        )
        .unwrap();
    mapped
}

fn graph_quads(store: &CanonStore, graph: NamedNodeRef<'_>) -> Vec<String> {
    let mut quads: Vec<String> = store
        .oxigraph()
        .quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(graph)))
        .map(|q| q.unwrap().to_string())
        .collect();
    quads.sort();
    quads
}

fn export(store: &CanonStore, mapped: &lore_cards::Mapped, name: &str) -> Card {
    let production = format!("{}/production", mapped.subject.as_str());
    let world = World::load(store, &production).unwrap();
    let character = world.character(name).unwrap();
    lore_cards::card_from_canon(store, &world, character).unwrap()
}

/// Every field of `original`, recursively, is in `exported` with the same value.
fn assert_kept(original: &Value, exported: &Value, path: &str) {
    match (original, exported) {
        (Value::Object(o), Value::Object(e)) => {
            for (k, v) in o {
                let e = e.get(k).unwrap_or_else(|| panic!("{path}.{k} was lost"));
                assert_kept(v, e, &format!("{path}.{k}"));
            }
        }
        (Value::Array(o), Value::Array(e)) => {
            assert_eq!(o.len(), e.len(), "{path} changed length");
            for (i, (o, e)) in o.iter().zip(e).enumerate() {
                assert_kept(o, e, &format!("{path}[{i}]"));
            }
        }
        (o, e) => assert_eq!(o, e, "{path} changed"),
    }
}

fn round_trip_card(file: &str) {
    let path = corpus(file);
    let original: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let Document::Card(card) = read(&path) else {
        panic!("{file} is a card")
    };
    if card.spec == Spec::V1 {
        // There is no V1 writer: the round trip starts from the V3 card a V1 card becomes,
        // which must keep every V1 field.
        let store = CanonStore::in_memory().unwrap();
        let mapped = import(&store, &Document::Card(card.clone()));
        let (json, _) = lore_cards::card_json(&export(&store, &mapped, card.name()), Spec::V3);
        assert_kept(&original, &json["data"], &format!("{file}: $"));
        let v3 = tempfile::NamedTempFile::with_suffix(".json").unwrap();
        std::fs::write(v3.path(), lore_cards::pretty(&json)).unwrap();
        return round_trip_file(file, v3.path());
    }
    round_trip_file(file, &path);
}

fn round_trip_file(file: &str, path: &Path) {
    let original: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let Document::Card(card) = read(path) else {
        panic!("{file} is a card")
    };
    let store = CanonStore::in_memory().unwrap();
    let mapped = import(&store, &Document::Card(card.clone()));
    let exported = export(&store, &mapped, card.name());
    let (json, dropped) = lore_cards::card_json(&exported, card.spec);
    assert!(dropped.is_empty(), "{file}: {dropped:?}");
    assert_kept(&original, &json, &format!("{file}: $"));

    // Import the export again, into a fresh store: the same canon.
    let again = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(again.path(), lore_cards::pretty(&json)).unwrap();
    let store2 = CanonStore::in_memory().unwrap();
    let mapped2 = import(&store2, &read(again.path()));
    assert_eq!(mapped2.graph, mapped.graph);
    assert_eq!(
        graph_quads(&store, mapped.graph.as_ref()),
        graph_quads(&store2, mapped2.graph.as_ref()),
        "{file}: canon changed on the way round"
    );
}

#[test]
fn v3_card_with_every_field_round_trips() {
    round_trip_card("v3_full.json");
}

#[test]
fn v2_card_round_trips() {
    round_trip_card("v2_full.json");
}

#[test]
fn v1_card_round_trips_into_v3() {
    round_trip_card("v1_flat.json");
}

#[test]
fn empty_fields_and_nulls_round_trip() {
    round_trip_card("empty_fields.json");
}

#[test]
fn non_ascii_names_round_trip() {
    round_trip_card("non_ascii.json");
}

#[test]
fn huge_fields_round_trip() {
    let mut card: Value =
        serde_json::from_slice(&std::fs::read(corpus("v3_full.json")).unwrap()).unwrap();
    let huge = "The Moonwell remembers. ".repeat(80_000); // ~1.9 MB
    card["data"]["description"] = Value::String(huge.clone());
    card["data"]["character_book"]["entries"][0]["content"] =
        Value::String(format!("@@depth 1\n{huge}"));
    let file = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(file.path(), card.to_string()).unwrap();
    let Document::Card(read_card) = read(file.path()) else {
        panic!()
    };
    let store = CanonStore::in_memory().unwrap();
    let mapped = import(&store, &Document::Card(read_card));
    let exported = export(&store, &mapped, "Seraphine");
    let (json, _) = lore_cards::card_json(&exported, Spec::V3);
    assert_kept(&card["data"], &json["data"], "$.data");
}

#[test]
fn png_card_round_trips_with_both_chunks_and_prefers_ccv3() {
    let Document::Card(card) = read(&corpus("v3_full.json")) else {
        panic!()
    };
    let (png, dropped) = lore_cards::card_png(&card, Spec::V3);
    // The V2 backfill cannot hold V3's own fields, and says which.
    assert!(
        dropped.iter().any(|d| d.starts_with("$.data.nickname")),
        "{dropped:?}"
    );
    let texts = lore_cards::png::text_chunks(&png).unwrap();
    let keywords: Vec<_> = texts.iter().map(|t| t.keyword.as_str()).collect();
    assert_eq!(keywords, ["chara", "ccv3"]);
    let decode = |b: &[u8]| -> Value {
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(b).unwrap())
            .unwrap()
    };
    assert_eq!(decode(texts[0].text)["spec"], "chara_card_v2");
    assert_eq!(decode(texts[1].text)["spec"], "chara_card_v3");

    let file = tempfile::NamedTempFile::with_suffix(".png").unwrap();
    std::fs::write(file.path(), &png).unwrap();
    let Document::Card(from_png) = read(file.path()) else {
        panic!()
    };
    assert_eq!(from_png.spec, Spec::V3, "ccv3 is preferred over chara");
    assert_eq!(from_png.data, card.data);
    let store = CanonStore::in_memory().unwrap();
    let mapped = import(&store, &Document::Card(from_png.clone()));
    let exported = export(&store, &mapped, "Seraphine");
    assert_eq!(
        exported.portrait, from_png.portrait,
        "the portrait survives"
    );
    // Exported, imported and exported again: the same file, byte for byte (key order in the
    // JSON is canon's, whatever the first writer's was).
    let (png2, _) = lore_cards::card_png(&exported, Spec::V3);
    std::fs::write(file.path(), &png2).unwrap();
    let store2 = CanonStore::in_memory().unwrap();
    let mapped2 = import(&store2, &read(file.path()));
    let (png3, _) = lore_cards::card_png(&export(&store2, &mapped2, "Seraphine"), Spec::V3);
    assert_eq!(png3, png2, "a PNG card exported again is the same file");

    // A PNG with only a V2 chunk reads as V2.
    let v2_only = lore_cards::png::with_card_chunks(&png, &[("chara", texts[0].text)]).unwrap();
    std::fs::write(file.path(), &v2_only).unwrap();
    let Document::Card(v2) = read(file.path()) else {
        panic!()
    };
    assert_eq!(v2.spec, Spec::V2);
}

#[test]
fn charx_round_trips_with_its_assets() {
    let Document::Card(mut card) = read(&corpus("v3_full.json")) else {
        panic!()
    };
    card.files = vec![lore_cards::AssetFile {
        path: "assets/emotion/image/happy.png".into(),
        bytes: lore_cards::png::placeholder(),
    }];
    let charx = lore_cards::card_charx(&card);
    let file = tempfile::NamedTempFile::with_suffix(".charx").unwrap();
    std::fs::write(file.path(), &charx).unwrap();
    let Document::Card(read_back) = read(file.path()) else {
        panic!()
    };
    assert_eq!(read_back.files, card.files);
    let store = CanonStore::in_memory().unwrap();
    let mapped = import(&store, &Document::Card(read_back));
    let exported = export(&store, &mapped, "Seraphine");
    assert_eq!(exported.files, card.files);
    let charx2 = lore_cards::card_charx(&exported);
    std::fs::write(file.path(), &charx2).unwrap();
    let store2 = CanonStore::in_memory().unwrap();
    let mapped2 = import(&store2, &read(file.path()));
    assert_eq!(
        lore_cards::card_charx(&export(&store2, &mapped2, "Seraphine")),
        charx2,
        "CHARX exported again is the same archive"
    );
}

#[test]
fn standalone_lorebooks_round_trip_and_several_books_share_a_production() {
    let store = CanonStore::in_memory().unwrap();
    let card = import(&store, &read(&corpus("v3_full.json")));
    let production = World::load(&store, &format!("{}/production", card.subject.as_str()))
        .unwrap()
        .production;
    let names = no_names();
    let placement = Placement {
        productions: std::slice::from_ref(&production),
        names: &names,
        tenant: None,
    };
    let mut books = Vec::new();
    for file in ["lorebook_v3.json", "worldinfo_st.json"] {
        let Document::Lorebook(book) = read(&corpus(file)) else {
            panic!("{file} is a lorebook")
        };
        let mapped = lore_cards::lorebook_to_canon(&book, file, &placement);
        store
            .replace_graphs(
                std::slice::from_ref(&mapped.graph),
                &mapped.quads,
                lore_canon::CommitMeta::new("test", "import"),
            )
            .unwrap();
        books.push((file, book, mapped));
    }
    // The production now sees the card's book and both standalone books.
    let production = World::load(&store, &production.iri).unwrap().production;
    let listed = lore_cards::lorebooks(&store, &production).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (file, book, mapped) in &books {
        let exported =
            lore_cards::lorebook_from_canon(&store, &production, mapped.subject.as_str()).unwrap();
        let json = lore_cards::lorebook_json(&exported);
        assert_kept(
            &Value::Object(book.book.clone()),
            &json["data"],
            &format!("{file}: $.data"),
        );
        // And once more through a file: the same canon.
        let again = tempfile::NamedTempFile::with_suffix(".json").unwrap();
        std::fs::write(again.path(), lore_cards::pretty(&json)).unwrap();
        let Document::Lorebook(book2) = read(again.path()) else {
            panic!()
        };
        let store2 = CanonStore::in_memory().unwrap();
        let mapped2 = lore_cards::lorebook_to_canon(&book2, file, &placement);
        store2
            .replace_graphs(
                std::slice::from_ref(&mapped2.graph),
                &mapped2.quads,
                lore_canon::CommitMeta::new("test", "import"),
            )
            .unwrap();
        assert_eq!(
            graph_quads(&store, mapped.graph.as_ref()),
            graph_quads(&store2, mapped2.graph.as_ref()),
            "{file}"
        );
    }
}

#[test]
fn sillytavern_world_info_keeps_its_own_fields() {
    let Document::Lorebook(book) = read(&corpus("worldinfo_st.json")) else {
        panic!()
    };
    let entries = book.book["entries"].as_array().unwrap();
    // Ordered by uid, numerically.
    let ids: Vec<_> = entries.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(ids, [Value::from(0), Value::from(2), Value::from(10)]);
    let mill = &entries[2];
    assert_eq!(mill["keys"], serde_json::json!(["Old Mill", "mill"]));
    assert_eq!(mill["secondary_keys"], serde_json::json!(["grain"]));
    assert_eq!(mill["enabled"], false);
    assert_eq!(mill["insertion_order"], 90);
    assert!(mill.get("position").is_none(), "position 4 has no V3 name");
    assert_eq!(mill["extensions"]["position"], 4);
    assert_eq!(mill["extensions"]["selectiveLogic"], 3);
    assert_eq!(entries[1]["position"], "after_char");
    assert_eq!(
        book.book["extensions"]["originalData"]["name"],
        "Moonvale rumours"
    );
}

#[test]
fn imported_cards_become_usable_canon() {
    let store = CanonStore::in_memory().unwrap();
    let mapped = import(&store, &read(&corpus("v3_full.json")));
    let world = World::load(&store, &format!("{}/production", mapped.subject.as_str())).unwrap();
    let id = world.character("Sera").expect("the nickname names her");
    let seraphine = &world.entities[id];
    let persona = seraphine.persona.as_deref().unwrap();
    assert!(
        persona.starts_with("Seraphine is the keeper of the Moonwell"),
        "{persona}"
    );
    assert!(persona.contains("gentle, wry, patient"));
    assert!(persona.contains("the player arrives at the Moonwell"));
    assert!(
        !persona.contains("poisoned"),
        "creator notes are writer-only"
    );
    assert!(
        seraphine
            .sample_lines
            .iter()
            .any(|l| l == "Deeper than the sky is high.")
    );
    assert!(
        seraphine
            .sample_lines
            .iter()
            .any(|l| l.contains("Welcome, the player"))
    );
    // Entries: decorators stripped, placeholders resolved, known by her, about what the keys name.
    let well = world
        .facts
        .iter()
        .find(|f| f.statement.contains("Moonwell;"))
        .unwrap();
    assert_eq!(
        well.statement,
        "Seraphine guards the Moonwell; the player may drink only at dawn."
    );
    assert!(well.known_by(id, None));
    let about: Vec<_> = well
        .about
        .iter()
        .map(|&e| world.entities[e].name.as_str())
        .collect();
    assert_eq!(about, ["Moonwell"]);
    // The disabled entry is not canon the engine uses; the constant one is about her.
    assert!(
        !world
            .facts
            .iter()
            .any(|f| f.statement.contains("Ravenhollow"))
    );
    let born = world
        .facts
        .iter()
        .find(|f| f.statement.contains("silver moon"))
        .unwrap();
    assert_eq!(born.about, [id]);
    // The writer-only note is in the store for writers (and export), not in the world.
    let lore_cards::Mapped { quads, .. } = &mapped;
    assert!(
        quads
            .iter()
            .any(|q| q.object.to_string().contains("poisoned"))
    );
}

#[test]
fn a_card_imported_again_replaces_the_first() {
    let store = CanonStore::in_memory().unwrap();
    let path = corpus("v2_full.json");
    let first = import(&store, &read(&path));
    let mut value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    value["data"]["character_book"]["entries"] = Value::Array(Vec::new());
    value["data"]["personality"] = Value::String("taciturn".into());
    let file = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(file.path(), value.to_string()).unwrap();
    let second = import(&store, &read(file.path()));
    assert_eq!(first.graph, second.graph);
    let quads = graph_quads(&store, second.graph.as_ref());
    assert!(
        !quads.iter().any(|q| q.contains("forty houses")),
        "the old entry is gone"
    );
    assert!(quads.iter().any(|q| q.contains("taciturn")));
    assert!(!quads.iter().any(|q| q.contains("chatty")));
}

/// The PNG and CHARX cards of the corpus, written by another tool (Python's zlib and zipfile,
/// a card chunk before the image data, an application's file in the archive), round trip in
/// their own container.
#[test]
fn png_and_charx_files_from_another_writer_round_trip() {
    for file in ["seraphine.png", "barnaby_v2.png", "seraphine.charx"] {
        let path = corpus(file);
        let Document::Card(card) = read(&path) else {
            panic!("{file} is a card")
        };
        let store = CanonStore::in_memory().unwrap();
        let mapped = import(&store, &Document::Card(card.clone()));
        let exported = export(&store, &mapped, card.name());
        let (original_json, _) = lore_cards::card_json(&card, card.spec);
        let (exported_json, _) = lore_cards::card_json(&exported, card.spec);
        assert_kept(&original_json, &exported_json, &format!("{file}: $"));
        let bytes = if file.ends_with(".png") {
            lore_cards::card_png(&exported, card.spec).0
        } else {
            lore_cards::card_charx(&exported)
        };
        let suffix = if file.ends_with(".png") {
            ".png"
        } else {
            ".charx"
        };
        let again = tempfile::NamedTempFile::with_suffix(suffix).unwrap();
        std::fs::write(again.path(), &bytes).unwrap();
        let Document::Card(card2) = read(again.path()) else {
            panic!()
        };
        assert_eq!(card2.spec, card.spec, "{file}");
        assert_eq!(card2.files, card.files, "{file}: the archive's files");
        let store2 = CanonStore::in_memory().unwrap();
        let mapped2 = import(&store2, &Document::Card(card2));
        assert_eq!(
            graph_quads(&store, mapped.graph.as_ref()),
            graph_quads(&store2, mapped2.graph.as_ref()),
            "{file}: canon changed on the way round"
        );
    }
}
