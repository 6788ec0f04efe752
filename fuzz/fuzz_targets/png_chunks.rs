//! The PNG chunk reader and writer: any bytes, no panic; what reads, rewrites and reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lore_cards::png;

fuzz_target!(|data: &[u8]| {
    let Ok(texts) = png::text_chunks(data) else {
        return;
    };
    let kept: Vec<(String, Vec<u8>)> = texts
        .iter()
        .map(|(k, t, _)| (k.clone(), t.to_vec()))
        .filter(|(k, _)| png::CARD_KEYWORDS.contains(&k.as_str()))
        .collect();
    let refs: Vec<(&str, &[u8])> = kept.iter().map(|(k, t)| (k.as_str(), t.as_slice())).collect();
    let rewritten = png::with_card_chunks(data, &refs).expect("a PNG that reads can be rewritten");
    png::chunks(&rewritten).expect("what we write reads");
});
