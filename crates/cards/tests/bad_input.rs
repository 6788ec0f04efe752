//! Bad cards get an error naming the file and the place; nothing panics.
#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on the first unexpected error"
)]

use std::path::Path;

use base64::Engine;
use lore_cards::png;

fn error(bytes: &[u8]) -> String {
    lore_cards::read(Path::new("cards/bad.json"), bytes)
        .expect_err("should be refused")
        .to_string()
}

fn png_with(keyword: &str, text: &[u8]) -> Vec<u8> {
    png::with_card_chunks(&png::placeholder(), &[(keyword, text)]).unwrap()
}

#[test]
fn json_errors_name_the_path() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"A","tags":["x",3]}}"#,
            "$.data.tags[1]: expected a string, found the number 3",
        ),
        (
            r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"A","character_book":{"entries":[{"keys":["k"],"content":5}]}}}"#,
            "$.data.character_book.entries[0].content: expected a string",
        ),
        (
            r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"A","character_book":{"entries":[{"content":"x"}]}}}"#,
            "$.data.character_book.entries[0].keys",
        ),
        (
            r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":""}}"#,
            "$.data.name: a card needs a non-empty name",
        ),
        (
            r#"{"spec":"chara_card_v4","data":{}}"#,
            "$.spec: unknown card spec \"chara_card_v4\"",
        ),
        (
            r#"{"spec":"chara_card_v2","spec_version":"3.0","data":{"name":"A"}}"#,
            "$.spec_version: chara_card_v2 needs spec_version \"2.0\"",
        ),
        (
            r#"{"spec":"chara_card_v2","spec_version":"2.0"}"#,
            "$.data: a chara_card_v2 card needs a data object",
        ),
        (
            r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"A","extensions":[]}}"#,
            "$.data.extensions: expected an object, found an array",
        ),
        (
            r#"{"spec":"lorebook_v3","data":{"entries":{}}}"#,
            "$.data.entries: a lorebook needs an entries array",
        ),
        (
            r#"{"entries":{"0":{"key":"x"}}}"#,
            "$.entries.0.key: expected an array of strings",
        ),
        (
            r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"A","assets":[{"type":1}]}}"#,
            "$.data.assets[0].type",
        ),
        (r#"[1,2]"#, "$: expected a JSON object"),
        (r#"{"hello":1}"#, "not a character card or lorebook"),
        (
            "{\"name\": \"A\",\n  \"description\": }",
            "invalid JSON at line 2 column",
        ),
    ];
    for (json, expected) in cases {
        let message = error(json.as_bytes());
        assert!(message.starts_with("cards/bad.json: "), "{message}");
        assert!(
            message.contains(expected),
            "{json}\n  gave: {message}\n  wanted: {expected}"
        );
    }
    assert!(error(&[0xff, 0xfe, b'{']).contains("not UTF-8 at byte 0"));
}

#[test]
fn png_errors_name_the_chunk() {
    let not_png = lore_cards::read(Path::new("cards/x.png"), b"GIF89a...").unwrap_err();
    assert_eq!(
        not_png.to_string(),
        "cards/x.png: not a PNG file (no PNG signature)"
    );
    let not_zip = lore_cards::read(Path::new("cards/x.charx"), b"{}").unwrap_err();
    assert!(
        not_zip.to_string().contains("not a CHARX archive"),
        "{not_zip}"
    );
    assert!(error(&png::placeholder()).contains("no ccv3 or chara tEXt chunk"));
    let message = error(&png_with("ccv3", b"!!not base64!!"));
    assert!(
        message.contains("tEXt chunk ccv3 at byte") && message.contains("not base64"),
        "{message}"
    );
    let json = base64::engine::general_purpose::STANDARD.encode(b"{\"spec\":");
    let message = error(&png_with("chara", json.as_bytes()));
    assert!(
        message.contains("tEXt chunk chara") && message.contains("invalid JSON"),
        "{message}"
    );
    let mut truncated = png_with("chara", b"eyJ9");
    truncated.truncate(truncated.len() - 20);
    assert!(
        error(&truncated).contains("truncated PNG"),
        "{}",
        error(&truncated)
    );
}

#[test]
fn garbage_never_panics() {
    // A cheap sweep over prefixes and bit flips of valid inputs; the fuzz targets go further.
    let card =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v3_full.json"))
            .unwrap();
    let json = String::from_utf8(card.clone()).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&card);
    let png = png_with("ccv3", encoded.as_bytes());
    for input in [card, png] {
        for cut in (0..input.len()).step_by(97) {
            let _ = lore_cards::read(Path::new("x"), &input[..cut]);
        }
        for i in (0..input.len()).step_by(31) {
            let mut flipped = input.clone();
            flipped[i] ^= 0x5a;
            let _ = lore_cards::read(Path::new("x"), &flipped);
        }
    }
    assert!(!json.is_empty());
}
