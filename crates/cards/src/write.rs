//! Writing cards and lorebooks in the community formats.

use base64::Engine;
use serde_json::{Map, Value};

use crate::charx;
use crate::document::{Card, Spec, fill_book};
use crate::png;

/// Fields only V3 has: a V2 card cannot hold them.
const V3_ONLY: &[&str] = &[
    "nickname",
    "creator_notes_multilingual",
    "source",
    "group_only_greetings",
    "creation_date",
    "modification_date",
    "assets",
];

/// The card as `spec` (V2 or V3) JSON, and the JSON paths of what that spec cannot hold.
///
/// Fields the spec requires and the card lacks are written empty; every other field, known or
/// not, is written as the card has it. A card written to the spec it was read as comes out with
/// the same fields and values it went in with.
pub fn card_json(card: &Card, spec: Spec) -> (Value, Vec<String>) {
    let mut data = card.data.clone();
    let mut dropped = Vec::new();
    if spec == Spec::V2 {
        for field in V3_ONLY {
            if data.remove(*field).is_some() {
                dropped.push(format!("$.data.{field}"));
            }
        }
        if let Some(Value::Object(book)) = data.get_mut("character_book")
            && let Some(Value::Array(entries)) = book.get_mut("entries")
        {
            for (i, entry) in entries.iter_mut().enumerate() {
                if let Value::Object(entry) = entry
                    && entry.remove("use_regex").is_some()
                {
                    dropped.push(format!("$.data.character_book.entries[{i}].use_regex"));
                }
            }
        }
    }
    let mut required: Vec<(&str, Value)> = [
        "name",
        "description",
        "personality",
        "scenario",
        "first_mes",
        "mes_example",
        "creator_notes",
        "system_prompt",
        "post_history_instructions",
        "creator",
        "character_version",
    ]
    .iter()
    .map(|f| (*f, Value::String(String::new())))
    .collect();
    required.extend([
        ("alternate_greetings", Value::Array(Vec::new())),
        ("tags", Value::Array(Vec::new())),
        ("extensions", Value::Object(Map::new())),
    ]);
    if spec == Spec::V3 {
        required.push(("group_only_greetings", Value::Array(Vec::new())));
    }
    for (field, empty) in required {
        data.entry(field).or_insert(empty);
    }
    if let Some(Value::Object(book)) = data.get_mut("character_book") {
        fill_book(book, spec);
    }
    // Top-level fields (old readers' copies of the V1 fields, applications' own) go back as
    // they came.
    let mut out = card.envelope.clone();
    out.insert("spec".into(), Value::String(spec.name().into()));
    let version = match (&card.spec_version, card.spec == spec) {
        (Some(version), true) => version.clone(),
        _ => Value::String(if spec == Spec::V2 { "2.0" } else { "3.0" }.into()),
    };
    out.insert("spec_version".into(), version);
    out.insert("data".into(), Value::Object(data));
    (Value::Object(out), dropped)
}

/// A PNG card on the card's portrait (or a plain one). As `spec` V3, as the community tools
/// write them: the V3 card in `ccv3` and a V2 backfill in `chara` for older readers; as V2, the
/// `chara` chunk alone. Returns what the V2 card could not hold.
pub fn card_png(card: &Card, spec: Spec) -> (Vec<u8>, Vec<String>) {
    let encode = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let (v2, dropped) = card_json(card, Spec::V2);
    let mut chunks = vec![("chara", encode(&v2))];
    if spec == Spec::V3 {
        chunks.push(("ccv3", encode(&card_json(card, Spec::V3).0)));
    }
    let chunks: Vec<(&str, &[u8])> = chunks.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    let image = card.portrait.clone().unwrap_or_else(png::placeholder);
    // A stored portrait was checked when it was read; should it have been damaged since, a
    // plain one carries the card rather than failing the export.
    let png = png::with_card_chunks(&image, &chunks).unwrap_or_else(|_| {
        png::with_card_chunks(&png::placeholder(), &chunks).expect("the placeholder is a valid PNG")
    });
    let note = if spec == Spec::V3 {
        " (in the V2 chara backfill only)"
    } else {
        ""
    };
    (
        png,
        dropped.into_iter().map(|p| format!("{p}{note}")).collect(),
    )
}

/// A CHARX archive: the V3 card as `card.json` and the card's files.
pub fn card_charx(card: &Card) -> Vec<u8> {
    let (json, _) = card_json(card, Spec::V3);
    charx::write(&pretty(&json), &card.files)
}

/// A `lorebook_v3` document.
pub fn lorebook_json(book: &Map<String, Value>) -> Value {
    let mut book = book.clone();
    fill_book(&mut book, Spec::V3);
    let mut out = Map::new();
    out.insert("spec".into(), Value::String("lorebook_v3".into()));
    out.insert("data".into(), Value::Object(book));
    Value::Object(out)
}

/// JSON as written to files: indented, with a final newline.
pub fn pretty(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).expect("JSON values serialise");
    out.push(b'\n');
    out
}
