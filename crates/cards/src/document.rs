//! Reading cards and lorebooks from their files, with every field checked against its spec.
//!
//! Values are kept as JSON, not as structs, so a field this code does not know (a newer spec's,
//! or an application's) survives to the export verbatim; only its type is checked where the
//! spec gives one.

use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value};

use crate::charx::{self, AssetFile};
use crate::error::CardError;
use crate::png;

/// The card spec a card was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// A flat V1 card (Tavern): the fields at the top level.
    V1,
    /// `chara_card_v2`.
    V2,
    /// `chara_card_v3`.
    V3,
}

impl Spec {
    /// The `spec` value of the format.
    pub fn name(self) -> &'static str {
        match self {
            Spec::V1 => "chara_card_v1",
            Spec::V2 => "chara_card_v2",
            Spec::V3 => "chara_card_v3",
        }
    }

    /// The spec named `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Spec> {
        [Spec::V1, Spec::V2, Spec::V3]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// A character card, whatever file it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The spec it was written to.
    pub spec: Spec,
    /// `spec_version` as written (absent for V1).
    pub spec_version: Option<Value>,
    /// The card's fields: the `data` object (for V1, the top-level object).
    pub data: Map<String, Value>,
    /// Top-level fields besides `spec`, `spec_version` and `data` (V2 writers repeat the V1
    /// fields there; applications add their own).
    pub envelope: Map<String, Value>,
    /// Files that came with the card: a CHARX's assets by their path in the archive.
    pub files: Vec<AssetFile>,
    /// The PNG the card came in: the character's portrait.
    pub portrait: Option<Vec<u8>>,
}

impl Card {
    /// The character's name (checked present and non-empty when read).
    pub fn name(&self) -> &str {
        self.data
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Where a standalone lorebook came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookFormat {
    /// `lorebook_v3`, or a bare V2/V3 character book.
    V3,
    /// SillyTavern world info: entries keyed by uid, with its own field names.
    WorldInfo,
}

/// A standalone lorebook, in the V3 lorebook shape whatever it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Lorebook {
    /// The format of the file.
    pub format: BookFormat,
    /// The book: `name`, `description`, `entries` and the rest.
    pub book: Map<String, Value>,
}

/// What a file held.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A character card.
    Card(Card),
    /// A lorebook.
    Lorebook(Lorebook),
}

/// Reads a card or lorebook from the bytes of `file`: a PNG with a `ccv3` or `chara` chunk, a
/// CHARX archive, or JSON (a V1/V2/V3 card, a `lorebook_v3`, SillyTavern world info).
pub fn read(file: &Path, bytes: &[u8]) -> Result<Document, CardError> {
    if bytes.starts_with(&png::SIGNATURE) {
        return read_png(file, bytes).map(Document::Card);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        let (json, files) = charx::read(file, bytes)?;
        let value = parse_json(file, Some("card.json in the CHARX".into()), &json)?;
        let mut card = card(file, value)?;
        card.files = files;
        return Ok(Document::Card(card));
    }
    // A file named for a container that does not hold one is named as such, not as bad JSON.
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => {
            return Err(CardError::new(
                file,
                None,
                png::PngError::NotPng.to_string(),
            ));
        }
        Some("charx") => {
            return Err(CardError::new(
                file,
                None,
                "not a CHARX archive (no zip signature)",
            ));
        }
        _ => {}
    }
    let value = parse_json(file, None, bytes)?;
    document(file, value)
}

fn read_png(file: &Path, bytes: &[u8]) -> Result<Card, CardError> {
    let texts = png::text_chunks(bytes).map_err(|e| CardError::new(file, None, e.to_string()))?;
    let chunk = ["ccv3", "chara"]
        .iter()
        .find_map(|k| texts.iter().find(|t| t.keyword == *k))
        .ok_or_else(|| {
            CardError::new(
                file,
                None,
                "PNG has no character card: no ccv3 or chara tEXt chunk",
            )
        })?;
    let at = format!("tEXt chunk {} at byte {}", chunk.keyword, chunk.offset);
    let text: Vec<u8> = chunk
        .text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let json = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| CardError::new(file, at.clone(), format!("not base64: {e}")))?;
    let value = parse_json(file, Some(at.clone()), &json)?;
    let mut card = card(file, value)?;
    // The portrait without its card: an export writes the card as canon has it then.
    card.portrait = Some(
        png::with_card_chunks(bytes, &[]).map_err(|e| CardError::new(file, None, e.to_string()))?,
    );
    Ok(card)
}

fn parse_json(file: &Path, at: Option<String>, bytes: &[u8]) -> Result<Value, CardError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        CardError::new(
            file,
            at.clone(),
            format!("not UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str(text).map_err(|e| {
        CardError::new(
            file,
            at,
            format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })
}

fn document(file: &Path, value: Value) -> Result<Document, CardError> {
    let Value::Object(object) = &value else {
        return Err(CardError::new(
            file,
            "$".to_owned(),
            format!("expected a JSON object, found {}", kind(&value)),
        ));
    };
    match object.get("spec") {
        Some(Value::String(s)) if s == "lorebook_v3" => {
            let Some(Value::Object(book)) = object.get("data") else {
                return Err(CardError::new(
                    file,
                    "$.data".to_owned(),
                    "a lorebook_v3 needs a data object",
                ));
            };
            check_book(file, "$.data", book)?;
            Ok(Document::Lorebook(Lorebook {
                format: BookFormat::V3,
                book: book.clone(),
            }))
        }
        Some(_) => card(file, value).map(Document::Card),
        None => match object.get("entries") {
            Some(Value::Object(_)) => world_info(file, object).map(Document::Lorebook),
            Some(Value::Array(_)) => {
                check_book(file, "$", object)?;
                Ok(Document::Lorebook(Lorebook {
                    format: BookFormat::V3,
                    book: object.clone(),
                }))
            }
            Some(other) => Err(CardError::new(
                file,
                "$.entries".to_owned(),
                format!(
                    "expected an array (a lorebook) or an object keyed by uid (SillyTavern world info), found {}",
                    kind(other)
                ),
            )),
            None if object.contains_key("name") => card(file, value).map(Document::Card),
            None => Err(CardError::new(
                file,
                None,
                "not a character card or lorebook: expected `spec` (chara_card_v2, chara_card_v3, lorebook_v3), a V1 card (name, description, first_mes) or SillyTavern world info (entries)",
            )),
        },
    }
}

fn card(file: &Path, value: Value) -> Result<Card, CardError> {
    let Value::Object(mut object) = value else {
        return Err(CardError::new(
            file,
            "$".to_owned(),
            format!("expected a JSON object, found {}", kind(&value)),
        ));
    };
    let (spec, spec_version, data, path) = match object.remove("spec") {
        None => (Spec::V1, None, std::mem::take(&mut object), "$"),
        Some(Value::String(name)) => {
            let spec = match Spec::from_name(&name) {
                Some(spec @ (Spec::V2 | Spec::V3)) => spec,
                _ => {
                    return Err(CardError::new(
                        file,
                        "$.spec".to_owned(),
                        format!(
                            "unknown card spec {name:?}; expected chara_card_v2 or chara_card_v3"
                        ),
                    ));
                }
            };
            let version = object.remove("spec_version");
            let major: u64 = if spec == Spec::V2 { 2 } else { 3 };
            let version_ok = match &version {
                Some(Value::String(v)) => v.split('.').next() == Some(major.to_string().as_str()),
                Some(Value::Number(n)) => n.as_f64().is_some_and(|v| v.trunc() == major as f64),
                _ => false,
            };
            if !version_ok {
                return Err(CardError::new(
                    file,
                    "$.spec_version".to_owned(),
                    format!(
                        "{} needs spec_version \"{major}.0\", found {}",
                        spec.name(),
                        version.as_ref().map_or("nothing".into(), Value::to_string)
                    ),
                ));
            }
            let data = match object.remove("data") {
                Some(Value::Object(data)) => data,
                Some(other) => {
                    return Err(CardError::new(
                        file,
                        "$.data".to_owned(),
                        format!("expected an object, found {}", kind(&other)),
                    ));
                }
                None => {
                    return Err(CardError::new(
                        file,
                        "$.data".to_owned(),
                        format!("a {} card needs a data object", spec.name()),
                    ));
                }
            };
            (spec, version, data, "$.data")
        }
        Some(other) => {
            return Err(CardError::new(
                file,
                "$.spec".to_owned(),
                format!("expected a string, found {}", kind(&other)),
            ));
        }
    };
    check_card(file, path, &data)?;
    Ok(Card {
        spec,
        spec_version,
        data,
        envelope: object,
        files: Vec::new(),
        portrait: None,
    })
}

/// The JSON type a field must have, where the specs give one.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Texts,
    Number,
    Bool,
    Object,
    TextOrNumber,
}

const CARD_FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("description", Kind::Text),
    ("personality", Kind::Text),
    ("scenario", Kind::Text),
    ("first_mes", Kind::Text),
    ("mes_example", Kind::Text),
    ("creator_notes", Kind::Text),
    ("system_prompt", Kind::Text),
    ("post_history_instructions", Kind::Text),
    ("alternate_greetings", Kind::Texts),
    ("tags", Kind::Texts),
    ("creator", Kind::Text),
    ("character_version", Kind::Text),
    ("extensions", Kind::Object),
    ("nickname", Kind::Text),
    ("creator_notes_multilingual", Kind::Object),
    ("source", Kind::Texts),
    ("group_only_greetings", Kind::Texts),
    ("creation_date", Kind::Number),
    ("modification_date", Kind::Number),
];

const BOOK_FIELDS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("description", Kind::Text),
    ("scan_depth", Kind::Number),
    ("token_budget", Kind::Number),
    ("recursive_scanning", Kind::Bool),
    ("extensions", Kind::Object),
];

const ENTRY_FIELDS: &[(&str, Kind)] = &[
    ("keys", Kind::Texts),
    ("content", Kind::Text),
    ("extensions", Kind::Object),
    ("enabled", Kind::Bool),
    ("insertion_order", Kind::Number),
    ("case_sensitive", Kind::Bool),
    ("use_regex", Kind::Bool),
    ("constant", Kind::Bool),
    ("name", Kind::Text),
    ("priority", Kind::Number),
    ("id", Kind::TextOrNumber),
    ("comment", Kind::Text),
    ("selective", Kind::Bool),
    ("secondary_keys", Kind::Texts),
    ("position", Kind::Text),
];

fn check_card(file: &Path, path: &str, data: &Map<String, Value>) -> Result<(), CardError> {
    check_fields(file, path, data, CARD_FIELDS)?;
    if data
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|n| n.trim().is_empty())
    {
        return Err(CardError::new(
            file,
            format!("{path}.name"),
            "a card needs a non-empty name",
        ));
    }
    if let Some(Value::Object(notes)) = data.get("creator_notes_multilingual") {
        for (language, note) in notes {
            expect(
                file,
                &format!("{path}.creator_notes_multilingual.{language}"),
                note,
                Kind::Text,
            )?;
        }
    }
    if let Some(assets) = data.get("assets").filter(|v| !v.is_null()) {
        let Value::Array(assets) = assets else {
            return Err(CardError::new(
                file,
                format!("{path}.assets"),
                format!("expected an array, found {}", kind(assets)),
            ));
        };
        for (i, asset) in assets.iter().enumerate() {
            let at = format!("{path}.assets[{i}]");
            let Value::Object(asset) = asset else {
                return Err(CardError::new(
                    file,
                    at,
                    format!("expected an object, found {}", kind(asset)),
                ));
            };
            check_fields(
                file,
                &at,
                asset,
                &[
                    ("type", Kind::Text),
                    ("uri", Kind::Text),
                    ("name", Kind::Text),
                    ("ext", Kind::Text),
                ],
            )?;
        }
    }
    match data.get("character_book") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(book)) => check_book(file, &format!("{path}.character_book"), book),
        Some(other) => Err(CardError::new(
            file,
            format!("{path}.character_book"),
            format!("expected an object, found {}", kind(other)),
        )),
    }
}

fn check_book(file: &Path, path: &str, book: &Map<String, Value>) -> Result<(), CardError> {
    check_fields(file, path, book, BOOK_FIELDS)?;
    let Some(Value::Array(entries)) = book.get("entries") else {
        return Err(CardError::new(
            file,
            format!("{path}.entries"),
            "a lorebook needs an entries array",
        ));
    };
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{path}.entries[{i}]");
        let Value::Object(entry) = entry else {
            return Err(CardError::new(
                file,
                at,
                format!("expected an object, found {}", kind(entry)),
            ));
        };
        check_fields(file, &at, entry, ENTRY_FIELDS)?;
        for required in ["keys", "content"] {
            if !entry.contains_key(required) {
                return Err(CardError::new(
                    file,
                    format!("{at}.{required}"),
                    "a lorebook entry needs keys and content",
                ));
            }
        }
    }
    Ok(())
}

fn check_fields(
    file: &Path,
    path: &str,
    object: &Map<String, Value>,
    fields: &[(&str, Kind)],
) -> Result<(), CardError> {
    for &(field, expected) in fields {
        if let Some(value) = object.get(field) {
            expect(file, &format!("{path}.{field}"), value, expected)?;
        }
    }
    Ok(())
}

/// `null` passes for every optional field: community tools write it for "not set".
fn expect(file: &Path, at: &str, value: &Value, expected: Kind) -> Result<(), CardError> {
    let ok = match (expected, value) {
        (_, Value::Null) | (Kind::Text, Value::String(_)) | (Kind::Number, Value::Number(_)) => {
            true
        }
        (Kind::Bool, Value::Bool(_)) | (Kind::Object, Value::Object(_)) => true,
        (Kind::TextOrNumber, Value::String(_) | Value::Number(_)) => true,
        (Kind::Texts, Value::Array(items)) => {
            if let Some(i) = items.iter().position(|v| !v.is_string()) {
                return Err(CardError::new(
                    file,
                    format!("{at}[{i}]"),
                    format!("expected a string, found {}", kind(&items[i])),
                ));
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let name = match expected {
            Kind::Text => "a string",
            Kind::Texts => "an array of strings",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::Object => "an object",
            Kind::TextOrNumber => "a string or a number",
        };
        Err(CardError::new(
            file,
            at.to_owned(),
            format!("expected {name}, found {}", kind(value)),
        ))
    }
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// SillyTavern world info (`{"entries": {"0": {"uid": 0, "key": [..], ..}}}`) in the V3
/// lorebook shape. Its fields with a V3 equivalent are renamed, as SillyTavern itself does when
/// it embeds a book in a card; every other field goes verbatim into the entry's `extensions`.
fn world_info(file: &Path, object: &Map<String, Value>) -> Result<Lorebook, CardError> {
    let Some(Value::Object(entries)) = object.get("entries") else {
        unreachable!("called only for an entries object")
    };
    let mut book = Map::new();
    let mut extensions = Map::new();
    for (field, value) in object {
        match field.as_str() {
            "entries" => {}
            "name" | "description" => {
                book.insert(field.clone(), value.clone());
            }
            _ => {
                extensions.insert(field.clone(), value.clone());
            }
        }
    }
    let mut converted = Vec::with_capacity(entries.len());
    // Keys are uids: "10" after "9", not after "1".
    let mut ordered: Vec<_> = entries.iter().collect();
    ordered.sort_by_key(|(uid, _)| (uid.parse::<u64>().unwrap_or(u64::MAX), uid.as_str()));
    for (uid, entry) in ordered {
        let at = format!("$.entries.{uid}");
        let Value::Object(entry) = entry else {
            return Err(CardError::new(
                file,
                at,
                format!("expected an object, found {}", kind(entry)),
            ));
        };
        check_fields(
            file,
            &at,
            entry,
            &[
                ("key", Kind::Texts),
                ("keysecondary", Kind::Texts),
                ("content", Kind::Text),
                ("comment", Kind::Text),
                ("constant", Kind::Bool),
                ("selective", Kind::Bool),
                ("disable", Kind::Bool),
                ("order", Kind::Number),
                ("uid", Kind::TextOrNumber),
            ],
        )?;
        let mut out = Map::new();
        let mut ext = Map::new();
        out.insert(
            "id".into(),
            entry
                .get("uid")
                .cloned()
                .unwrap_or_else(|| Value::String(uid.clone())),
        );
        for (field, value) in entry {
            let renamed = match field.as_str() {
                "uid" => continue,
                "key" => "keys",
                "keysecondary" => "secondary_keys",
                "content" | "comment" | "constant" | "selective" => field.as_str(),
                "order" => "insertion_order",
                "disable" => {
                    out.insert("enabled".into(), Value::Bool(value.as_bool() != Some(true)));
                    continue;
                }
                "position" => {
                    // 0 and 1 are V3's two positions; the others (author's note, depth, ...)
                    // have no V3 name and live on in the extension.
                    match value.as_i64() {
                        Some(0) => out.insert("position".into(), "before_char".into()),
                        Some(1) => out.insert("position".into(), "after_char".into()),
                        _ => None,
                    };
                    ext.insert(field.clone(), value.clone());
                    continue;
                }
                _ => {
                    ext.insert(field.clone(), value.clone());
                    continue;
                }
            };
            out.insert(renamed.into(), value.clone());
        }
        out.insert("extensions".into(), Value::Object(ext));
        converted.push(Value::Object(out));
    }
    book.insert("extensions".into(), Value::Object(extensions));
    book.insert("entries".into(), Value::Array(converted));
    // As V3 has it, so that a book exported and read again is the book that was read.
    fill_book(&mut book, Spec::V3);
    Ok(Lorebook {
        format: BookFormat::WorldInfo,
        book,
    })
}

/// Writes the fields a lorebook and its entries must have, empty, where they are missing.
pub(crate) fn fill_book(book: &mut Map<String, Value>, spec: Spec) {
    book.entry("extensions")
        .or_insert_with(|| Value::Object(Map::new()));
    let entries = book
        .entry("entries")
        .or_insert_with(|| Value::Array(Vec::new()));
    for entry in entries.as_array_mut().into_iter().flatten() {
        let Value::Object(entry) = entry else {
            continue;
        };
        entry
            .entry("keys")
            .or_insert_with(|| Value::Array(Vec::new()));
        entry
            .entry("content")
            .or_insert_with(|| Value::String(String::new()));
        entry
            .entry("extensions")
            .or_insert_with(|| Value::Object(Map::new()));
        entry.entry("enabled").or_insert(Value::Bool(true));
        entry.entry("insertion_order").or_insert(Value::from(0));
        if spec == Spec::V3 {
            entry.entry("use_regex").or_insert(Value::Bool(false));
        }
    }
}
