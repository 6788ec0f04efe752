//! The card and lorebook parser (JSON, PNG, CHARX by their first bytes), and the writers after
//! a successful read: what we write must read again.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lore_cards::{Document, Spec};

fuzz_target!(|data: &[u8]| {
    let Ok(document) = lore_cards::read(Path::new("fuzz"), data) else {
        return;
    };
    match document {
        Document::Card(card) => {
            let (json, _) = lore_cards::card_json(&card, Spec::V3);
            let again = lore_cards::read(Path::new("fuzz.json"), &lore_cards::pretty(&json))
                .expect("a card we write reads");
            assert!(matches!(again, Document::Card(_)));
            lore_cards::card_json(&card, Spec::V2);
            lore_cards::card_png(&card, Spec::V3);
            lore_cards::card_charx(&card);
        }
        Document::Lorebook(book) => {
            let json = lore_cards::lorebook_json(&book.book);
            lore_cards::read(Path::new("fuzz.json"), &lore_cards::pretty(&json))
                .expect("a lorebook we write reads");
        }
    }
});
