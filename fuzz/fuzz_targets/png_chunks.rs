//! The PNG chunk reader and writer: any bytes, no panic; what reads, rewrites and reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lore_cards::png;

fuzz_target!(|data: &[u8]| {
    let Ok(texts) = png::text_chunks(data) else {
        return;
    };
    let refs: Vec<(&str, &[u8])> = texts
        .iter()
        .filter(|t| png::CARD_KEYWORDS.contains(&t.keyword.as_str()))
        .map(|t| (t.keyword.as_str(), t.text))
        .collect();
    let rewritten = png::with_card_chunks(data, &refs).expect("a PNG that reads can be rewritten");
    png::chunks(&rewritten).expect("what we write reads");
});
